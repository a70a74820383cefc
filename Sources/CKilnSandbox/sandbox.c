#include "kiln_sandbox.h"
int kiln_placeholder(void) { return 0; }
