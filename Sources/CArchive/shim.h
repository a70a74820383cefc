// libarchive's headers, for KilnStore's deterministic archives and safe extraction.
#ifndef KILN_CARCHIVE_SHIM_H
#define KILN_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
