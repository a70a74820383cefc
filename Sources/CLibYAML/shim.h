// libyaml's event parser (Debian's libyaml-dev, pkg-config yaml-0.1). KilnRecipe uses it instead of
// Yams, whose Foundation import loads ICU and adds ~1.7 ms to every kiln start-up (DESIGN.md, Modules).
#ifndef KILN_CLIBYAML_SHIM_H
#define KILN_CLIBYAML_SHIM_H
#include <yaml.h>
#endif
