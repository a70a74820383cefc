// libseccomp's rule and action macros (SCMP_ACT_ERRNO, SCMP_A0, …) and its variadic
// seccomp_rule_add cannot be imported into Swift; these inline wrappers can.
#ifndef KILN_CSECCOMP_SHIM_H
#define KILN_CSECCOMP_SHIM_H
#include <seccomp.h>
#include <stdint.h>

static inline uint32_t kiln_scmp_act_errno(uint16_t err) { return SCMP_ACT_ERRNO(err); }
static inline uint32_t kiln_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }

/// Adds a rule with zero or one argument comparison (the array form of seccomp_rule_add).
static inline int kiln_scmp_rule_add(scmp_filter_ctx ctx, uint32_t action, int syscall,
                                     unsigned int argCount, const struct scmp_arg_cmp *args) {
    return seccomp_rule_add_array(ctx, action, syscall, argCount, args);
}
#endif
