// The sandbox's child side. See kiln_sandbox.h for why this is C and what the parent prepares.
//
// The life of a sandbox, after kiln_sandbox_clone():
//   pid 1 (this file): close inherited fds → uid/gid maps → hostname → loopback up → mounts (a
//     tmpfs base holding /oldroot = the host and /newroot = the sandbox root, then pivot into
//     /newroot and detach the host) → rlimits, affinity → wait for the parent (cgroups joined)
//     → cgroup namespace → no_new_privs, drop capabilities → load seccomp → start the command →
//     reap zombies and forward signals until the command exits → write its wait status → exit.
//   the command (pid 2): own session, umask 022, stdio, close fds, no capabilities, seccomp, execve.
// Everything here is async-signal-safe: system calls and plain memory operations only.
#define _GNU_SOURCE
#include "kiln_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

// The kernel's struct mount_attr, declared here so the code does not depend on libc headers
// that may or may not define it.
struct kiln_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

static const char *const step_names[] = {
    [KILN_STEP_WAIT_PARENT] = "wait for parent",
    [KILN_STEP_SETGROUPS] = "write /proc/self/setgroups",
    [KILN_STEP_UID_MAP] = "write /proc/self/uid_map",
    [KILN_STEP_GID_MAP] = "write /proc/self/gid_map",
    [KILN_STEP_UNSHARE_CGROUP] = "unshare cgroup namespace",
    [KILN_STEP_HOSTNAME] = "sethostname",
    [KILN_STEP_LOOPBACK] = "bring up loopback",
    [KILN_STEP_MOUNT_PRIVATE] = "make mounts private",
    [KILN_STEP_MOUNT_BASE] = "mount setup tmpfs",
    [KILN_STEP_PIVOT_SETUP] = "pivot_root into setup root",
    [KILN_STEP_MKDIR] = "create mount point",
    [KILN_STEP_MOUNT_BIND] = "bind mount",
    [KILN_STEP_REMOUNT_READONLY] = "make read-only",
    [KILN_STEP_MOUNT_TMPFS] = "mount tmpfs",
    [KILN_STEP_MOUNT_PROC] = "mount proc",
    [KILN_STEP_SYMLINK] = "create symlink",
    [KILN_STEP_WRITE_FILE] = "write file",
    [KILN_STEP_MASK] = "mask",
    [KILN_STEP_PIVOT_FINAL] = "pivot_root into sandbox root",
    [KILN_STEP_DETACH_OLD_ROOT] = "detach host root",
    [KILN_STEP_READONLY_ROOT] = "make sandbox root read-only",
    [KILN_STEP_CHDIR] = "chdir",
    [KILN_STEP_RLIMIT] = "setrlimit",
    [KILN_STEP_AFFINITY] = "sched_setaffinity",
    [KILN_STEP_NO_NEW_PRIVS] = "set no_new_privs",
    [KILN_STEP_DROP_CAPABILITIES] = "drop capabilities",
    [KILN_STEP_FORK] = "fork command",
    [KILN_STEP_SETSID] = "setsid",
    [KILN_STEP_STDIO] = "set up stdin/stdout/stderr",
    [KILN_STEP_CLOSE_FDS] = "close inherited descriptors",
    [KILN_STEP_SECCOMP] = "load seccomp filter",
    [KILN_STEP_EXEC] = "execve",
    [KILN_STEP_SIGNALS] = "set up signals",
    [KILN_STEP_WRITE_SETTING] = "write setting",
};

const char *kiln_step_name(int32_t step) {
    if (step > 0 && (size_t)step < sizeof(step_names) / sizeof(step_names[0]) && step_names[step])
        return step_names[step];
    return "unknown step";
}

// MARK: - Async-signal-safe helpers

static size_t safe_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/// Reports a failed step to the parent and exits. `detail` is shown to the user.
__attribute__((noreturn)) static void fail(const kiln_spawn_config *cfg, int step, int error,
                                           const char *detail, int exit_code) {
    kiln_report report;
    memset(&report, 0, sizeof(report));
    report.step = step;
    report.error = error;
    if (detail) {
        // Keep the end of long paths: it is the part that tells them apart.
        size_t len = safe_strlen(detail);
        size_t max = sizeof(report.detail) - 1;
        const char *start = len > max ? detail + (len - max) : detail;
        memcpy(report.detail, start, len > max ? max : len);
    }
    ssize_t ignored = write(cfg->report_fd, &report, sizeof(report));
    (void)ignored;
    _exit(exit_code);
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_file(const char *path, const char *data, size_t len, int create_mode) {
    int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
    if (create_mode) flags |= O_CREAT | O_EXCL;
    int fd = open(path, flags, create_mode);
    if (fd < 0) return -1;
    int rc = write_all(fd, data, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/// mkdir -p of `path`'s parent directories (and of `path` itself when `include_last`).
static int make_dirs(const char *path, int include_last, mode_t mode) {
    char buf[4096];
    size_t len = safe_strlen(path);
    if (len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i] == '\0' && !include_last) break;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
        buf[i] = saved;
    }
    return 0;
}

/// Creates what a bind needs to land on: a directory, or an empty file.
static int make_mount_point(const char *target, int is_dir) {
    if (make_dirs(target, is_dir, 0755) < 0) return -1;
    if (is_dir) return 0;
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        // An existing mount point (a read-only file, a directory bind's file) is fine.
        if (errno == EEXIST || errno == EROFS || errno == EISDIR) return 0;
        return -1;
    }
    close(fd);
    return 0;
}

/// Sets mount attributes on `target` and everything below it. Falls back to a classic
/// remount, which must keep the flags the kernel locked on mounts from the parent namespace.
static int set_mount_attributes(const char *target, uint64_t attrs) {
    struct kiln_mount_attr attr = {.attr_set = attrs};
    if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof(attr)) == 0) return 0;
    if (errno != ENOSYS) return -1;
    struct statfs sfs;
    if (statfs(target, &sfs) < 0) return -1;
    unsigned long flags = MS_REMOUNT | MS_BIND;
    if (attrs & MOUNT_ATTR_RDONLY) flags |= MS_RDONLY;
    if (attrs & MOUNT_ATTR_NOSUID) flags |= MS_NOSUID;
    if (attrs & MOUNT_ATTR_NODEV) flags |= MS_NODEV;
    if (attrs & MOUNT_ATTR_NOEXEC) flags |= MS_NOEXEC;
    unsigned long locked = ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME | ST_RELATIME;
    flags |= (unsigned long)sfs.f_flags & locked;
    return mount(NULL, target, NULL, flags, NULL);
}

static int bring_up_loopback(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

void kiln_close_fds_except(const int *keep, size_t keep_count) {
    // Close the gaps between the kept descriptors, in ascending order.
    int sorted[16];
    size_t n = 0;
    for (size_t i = 0; i < keep_count && n < 16; i++) {
        if (keep[i] > 2) sorted[n++] = keep[i];
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    }
    unsigned int from = 3;
    for (size_t i = 0; i <= n; i++) {
        unsigned int to = i < n ? (unsigned int)sorted[i] - 1 : ~0U;
        if (i < n && (unsigned int)sorted[i] < from) continue;
        if (to >= from && syscall(SYS_close_range, from, to, 0) < 0) {
            // Kernels before 5.9: close one at a time up to the descriptor limit.
            struct rlimit rl;
            unsigned int last = to;
            if (to == ~0U) last = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1u << 20) ? (unsigned int)rl.rlim_cur : 65536;
            for (unsigned int fd = from; fd <= last && fd != ~0U; fd++) close((int)fd);
        }
        if (i < n) from = (unsigned int)sorted[i] + 1;
    }
}

static int drop_capabilities(void) {
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &header, data);
}

static int read_exactly(int fd, void *buffer, size_t size) {
    char *p = buffer;
    while (size > 0) {
        ssize_t n = read(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/// The seccomp filter arrives on the sync pipe (see kiln_spawn_config.sync_fd); BPF programs are
/// at most 4096 instructions.
static struct sock_filter seccomp_program[4096];

static int load_seccomp(uint16_t length) {
    if (length == 0) return 0;
    struct sock_fprog prog = {.len = length, .filter = seccomp_program};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

// MARK: - Mounts

static void apply_mount(const kiln_spawn_config *cfg, const kiln_mount *m) {
    const char *target = m->target;
    int optional = (m->flags & KILN_MOUNT_OPTIONAL) != 0;
    switch (m->kind) {
    case KILN_MOUNT_BIND: {
        int is_dir = (m->flags & KILN_MOUNT_SOURCE_IS_DIR) != 0;
        if (make_mount_point(target, is_dir) < 0) fail(cfg, KILN_STEP_MKDIR, errno, target, 125);
        if (mount(m->source, target, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (optional && errno == ENOENT) return;
            fail(cfg, KILN_STEP_MOUNT_BIND, errno, m->source, 125);
        }
        uint64_t attrs = MOUNT_ATTR_NOSUID;
        if (!(m->flags & KILN_MOUNT_ALLOW_DEVICES)) attrs |= MOUNT_ATTR_NODEV;
        if (m->flags & KILN_MOUNT_READONLY) attrs |= MOUNT_ATTR_RDONLY;
        if (set_mount_attributes(target, attrs) < 0) fail(cfg, KILN_STEP_REMOUNT_READONLY, errno, target, 125);
        return;
    }
    case KILN_MOUNT_TMPFS:
        if (make_dirs(target, 1, 0755) < 0) fail(cfg, KILN_STEP_MKDIR, errno, target, 125);
        // `source` holds the preformatted options ("mode=1777,size=…"): no formatting here.
        if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, m->source) < 0)
            fail(cfg, KILN_STEP_MOUNT_TMPFS, errno, target, 125);
        if ((m->flags & KILN_MOUNT_READONLY) && set_mount_attributes(target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) < 0)
            fail(cfg, KILN_STEP_REMOUNT_READONLY, errno, target, 125);
        return;
    case KILN_MOUNT_PROC:
        if (make_dirs(target, 1, 0555) < 0) fail(cfg, KILN_STEP_MKDIR, errno, target, 125);
        if (mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            fail(cfg, KILN_STEP_MOUNT_PROC, errno, target, 125);
        return;
    case KILN_MOUNT_DIR:
        if (make_dirs(target, 1, m->mode ? m->mode : 0755) < 0) fail(cfg, KILN_STEP_MKDIR, errno, target, 125);
        return;
    case KILN_MOUNT_SYMLINK:
        if (make_dirs(target, 0, 0755) < 0) fail(cfg, KILN_STEP_MKDIR, errno, target, 125);
        if (symlink(m->source, target) < 0 && errno != EEXIST) fail(cfg, KILN_STEP_SYMLINK, errno, target, 125);
        return;
    case KILN_MOUNT_FILE:
        if (make_dirs(target, 0, 0755) < 0) fail(cfg, KILN_STEP_MKDIR, errno, target, 125);
        if (write_file(target, m->source ? m->source : "", (size_t)m->size, m->mode ? (int)m->mode : 0644) < 0)
            fail(cfg, KILN_STEP_WRITE_FILE, errno, target, 125);
        return;
    case KILN_MOUNT_REMOUNT_READONLY:
        if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (optional && errno == ENOENT) return;
            fail(cfg, KILN_STEP_REMOUNT_READONLY, errno, target, 125);
        }
        if (set_mount_attributes(target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) < 0)
            fail(cfg, KILN_STEP_REMOUNT_READONLY, errno, target, 125);
        return;
    case KILN_MOUNT_MASK: {
        struct stat st;
        if (lstat(target, &st) < 0) {
            if (optional && errno == ENOENT) return;
            fail(cfg, KILN_STEP_MASK, errno, target, 125);
        }
        int rc = S_ISDIR(st.st_mode)
            ? mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555")
            : mount(m->source, target, NULL, MS_BIND, NULL);
        if (rc < 0) fail(cfg, KILN_STEP_MASK, errno, target, 125);
        if (!S_ISDIR(st.st_mode) && set_mount_attributes(target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC) < 0)
            fail(cfg, KILN_STEP_MASK, errno, target, 125);
        return;
    }
    case KILN_MOUNT_WRITE:
        if (write_file(target, m->source ? m->source : "", (size_t)m->size, 0) < 0)
            fail(cfg, KILN_STEP_WRITE_SETTING, errno, target, 125);
        return;
    default:
        fail(cfg, KILN_STEP_MKDIR, EINVAL, target, 125);
    }
}

/// Builds the sandbox's file system and enters it. On return `/` is the sandbox root, read-only,
/// and the host's root is no longer reachable from this mount namespace.
static void build_root(const kiln_spawn_config *cfg) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(cfg, KILN_STEP_MOUNT_PRIVATE, errno, "/", 125);
    // The setup root: a tmpfs over base_dir (in this namespace only) holding oldroot and newroot.
    if (mount("tmpfs", cfg->base_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") < 0)
        fail(cfg, KILN_STEP_MOUNT_BASE, errno, cfg->base_dir, 125);
    if (chdir(cfg->base_dir) < 0) fail(cfg, KILN_STEP_MOUNT_BASE, errno, cfg->base_dir, 125);
    if (mkdir("newroot", 0755) < 0 || mkdir("oldroot", 0755) < 0) fail(cfg, KILN_STEP_MKDIR, errno, "newroot", 125);
    if (!cfg->root_bind && mount("tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
        fail(cfg, KILN_STEP_MOUNT_BASE, errno, "/newroot", 125);
    // After this the host's root is /oldroot, and base_dir shows the host's own again beneath it.
    if (syscall(SYS_pivot_root, ".", "oldroot") < 0) fail(cfg, KILN_STEP_PIVOT_SETUP, errno, cfg->base_dir, 125);
    if (chdir("/") < 0) fail(cfg, KILN_STEP_PIVOT_SETUP, errno, "/", 125);
    if (cfg->root_bind) {
        // An image's tree as the root (its path is under /oldroot, the host's own base_dir showing
        // again). Read-only at once: nothing the setup does may write into the tree on the host.
        if (mount(cfg->root_bind, "/newroot", NULL, MS_BIND | MS_REC, NULL) < 0)
            fail(cfg, KILN_STEP_MOUNT_BIND, errno, cfg->root_bind, 125);
        if (set_mount_attributes("/newroot", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) < 0)
            fail(cfg, KILN_STEP_REMOUNT_READONLY, errno, "/newroot", 125);
    }

    for (size_t i = 0; i < cfg->mount_count; i++) apply_mount(cfg, &cfg->mounts[i]);

    // Enter newroot; the setup root (with the host under it) ends up stacked on top of it and is
    // detached lazily, with everything mounted below it.
    if (chdir("/newroot") < 0) fail(cfg, KILN_STEP_PIVOT_FINAL, errno, "/newroot", 125);
    if (syscall(SYS_pivot_root, ".", ".") < 0) fail(cfg, KILN_STEP_PIVOT_FINAL, errno, "/newroot", 125);
    if (umount2(".", MNT_DETACH) < 0) fail(cfg, KILN_STEP_DETACH_OLD_ROOT, errno, "/", 125);
    if (chdir("/") < 0) fail(cfg, KILN_STEP_PIVOT_FINAL, errno, "/", 125);
    struct kiln_mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof(attr)) < 0 &&
        mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        fail(cfg, KILN_STEP_READONLY_ROOT, errno, "/", 125);
}

// MARK: - The command

static void reset_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &sa, NULL);  // Fails harmlessly for the signals glibc reserves.
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

__attribute__((noreturn)) static void exec_command(const kiln_spawn_config *cfg) {
    reset_signals();
    // Its own session: no controlling terminal, so TIOCSTI cannot reach the caller's.
    if (setsid() < 0) fail(cfg, KILN_STEP_SETSID, errno, NULL, 125);
    umask(022);
    int stdio[3] = {cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (stdio[i] >= 0 && stdio[i] != i && dup2(stdio[i], i) < 0) fail(cfg, KILN_STEP_STDIO, errno, NULL, 125);
    }
    int keep[1] = {cfg->report_fd};
    kiln_close_fds_except(keep, 1);
    // Capabilities are already gone and the seccomp filter is in place: both come from pid 1.

    const char *file = cfg->argv[0];
    char *const *argv = (char *const *)cfg->argv;
    char *const *envp = (char *const *)cfg->envp;
    int error = ENOENT;
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        error = errno;
    } else {
        // execvpe's search, without its allocation.
        char path[4096];
        size_t file_len = safe_strlen(file);
        const char *p = cfg->search_path;
        int seen_eacces = 0;
        while (*p) {
            const char *end = strchr(p, ':');
            size_t dir_len = end ? (size_t)(end - p) : safe_strlen(p);
            if (dir_len > 0 && dir_len + 1 + file_len < sizeof(path)) {
                memcpy(path, p, dir_len);
                path[dir_len] = '/';
                memcpy(path + dir_len + 1, file, file_len + 1);
                execve(path, argv, envp);
                if (errno == EACCES) seen_eacces = 1;
                else if (errno != ENOENT && errno != ENOTDIR) {
                    error = errno;
                    break;
                }
            }
            if (!end) break;
            p = end + 1;
        }
        if (error == ENOENT && seen_eacces) error = EACCES;
    }
    fail(cfg, KILN_STEP_EXEC, error, file, error == ENOENT ? 127 : 126);
}

static int command_main(void *cfg) {
    exec_command((const kiln_spawn_config *)cfg);
}

// MARK: - pid 1

/// Reaps every child and forwards signals to the command until the command exits; then reports
/// its wait status. When pid 1 exits, the kernel kills everything left in the namespace.
__attribute__((noreturn)) static void supervise(const kiln_spawn_config *cfg, pid_t command, const sigset_t *all) {
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            // The command leads its own process group: signal all of it, as a terminal would.
            if (kill(-command, sig) < 0) kill(command, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0) break;
            if (pid == command) {
                int32_t word = status;
                ssize_t ignored = write(cfg->status_fd, &word, sizeof(word));
                (void)ignored;
                _exit(0);
            }
        }
    }
}

__attribute__((noreturn)) static void child_main(const kiln_spawn_config *cfg) {
    // Die with the thread that cloned us; then make sure it had not already gone.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    prctl(PR_SET_NAME, "kiln-init", 0, 0, 0);
    // Another sandbox may be starting on another thread: do not hold its pipes open.
    int keep[6] = {cfg->sync_fd, cfg->report_fd, cfg->status_fd, cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd};
    kiln_close_fds_except(keep, 6);
    umask(0);

    if (write_file("/proc/self/setgroups", "deny", 4, 0) < 0 && errno != ENOENT)
        fail(cfg, KILN_STEP_SETGROUPS, errno, NULL, 125);
    if (write_file("/proc/self/uid_map", cfg->uid_map, safe_strlen(cfg->uid_map), 0) < 0)
        fail(cfg, KILN_STEP_UID_MAP, errno, cfg->uid_map, 125);
    if (write_file("/proc/self/gid_map", cfg->gid_map, safe_strlen(cfg->gid_map), 0) < 0)
        fail(cfg, KILN_STEP_GID_MAP, errno, cfg->gid_map, 125);
    if ((cfg->clone_flags & CLONE_NEWUTS) && sethostname(cfg->hostname, safe_strlen(cfg->hostname)) < 0)
        fail(cfg, KILN_STEP_HOSTNAME, errno, cfg->hostname, 125);
    if (cfg->bring_up_loopback && bring_up_loopback() < 0) fail(cfg, KILN_STEP_LOOPBACK, errno, "lo", 125);

    build_root(cfg);
    if (chdir(cfg->cwd) < 0) fail(cfg, KILN_STEP_CHDIR, errno, cfg->cwd, 125);

    for (size_t i = 0; i < cfg->rlimit_count; i++) {
        struct rlimit rl = {.rlim_cur = cfg->rlimits[i].limit, .rlim_max = cfg->rlimits[i].limit};
        if (setrlimit(cfg->rlimits[i].resource, &rl) < 0) fail(cfg, KILN_STEP_RLIMIT, errno, NULL, 125);
    }
    if (cfg->cpu_mask_size > 0 && sched_setaffinity(0, cfg->cpu_mask_size, (const cpu_set_t *)cfg->cpu_mask) < 0)
        fail(cfg, KILN_STEP_AFFINITY, errno, NULL, 125);
    // Wait for the parent, which has been moving us into our cgroups meanwhile (a cgroup v1
    // migration waits for an RCU grace period: milliseconds better spent on the setup above).
    // The command must start inside them; and if the parent died, nothing runs.
    // Then the seccomp filter, which the parent compiled meanwhile.
    struct { uint8_t go; uint8_t pad; uint16_t length; } header;
    if (read_exactly(cfg->sync_fd, &header, sizeof(header)) < 0 || header.go != 1) _exit(125);
    if (header.length > sizeof(seccomp_program) / sizeof(seccomp_program[0])) fail(cfg, KILN_STEP_SECCOMP, E2BIG, NULL, 125);
    if (read_exactly(cfg->sync_fd, seccomp_program, header.length * sizeof(struct sock_filter)) < 0) _exit(125);
    close(cfg->sync_fd);
    // Now the cgroup namespace's root is the sandbox's own cgroup.
    if (cfg->unshare_cgroup && unshare(CLONE_NEWCGROUP) < 0) fail(cfg, KILN_STEP_UNSHARE_CGROUP, errno, NULL, 125);

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(cfg, KILN_STEP_NO_NEW_PRIVS, errno, NULL, 125);
    if (drop_capabilities() < 0) fail(cfg, KILN_STEP_DROP_CAPABILITIES, errno, NULL, 125);
    // Keep the command out of pid 1's /proc entries and memory.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    // Block every signal before the command starts: pid 1 takes them with sigwaitinfo (a
    // namespace's init would otherwise ignore them), and the command unblocks them before execve.
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, NULL) < 0) fail(cfg, KILN_STEP_SIGNALS, errno, NULL, 125);

    // The filter goes on last, once: the command inherits it.
    if (load_seccomp(header.length) < 0) fail(cfg, KILN_STEP_SECCOMP, errno, NULL, 125);

    // The command starts as posix_spawn does: sharing pid 1's memory on its own stack, pid 1
    // suspended until it has called execve, so nothing of the address space is copied. (Not
    // fork(): glibc's fork takes locks that another thread of kiln may have held at clone time.)
    static char command_stack[64 * 1024] __attribute__((aligned(16)));
    pid_t command = clone(command_main, command_stack + sizeof(command_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)cfg);
    if (command < 0) fail(cfg, KILN_STEP_FORK, errno, NULL, 125);

    // pid 1 keeps nothing the command's readers wait on: stdio and the report pipe go.
    close(cfg->report_fd);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++) {
        if (null_fd >= 0) dup2(null_fd, fd);
        else close(fd);
    }
    if (null_fd > 2) close(null_fd);
    int keep_status[1] = {cfg->status_fd};
    kiln_close_fds_except(keep_status, 1);
    supervise(cfg, command, &all);
}

pid_t kiln_sandbox_clone(const kiln_spawn_config *cfg, int *pidfd) {
    int fd = -1;
    // A raw clone with no stack behaves like fork(), but can take namespace flags in a
    // multithreaded process, and CLONE_PIDFD hands back a descriptor free of pid reuse races.
    long pid = syscall(SYS_clone, (unsigned long)cfg->clone_flags | CLONE_PIDFD | SIGCHLD, NULL, &fd, NULL, NULL);
    if (pid < 0) return -errno;
    if (pid == 0) {
        for (int i = 0; i < 3; i++) {
            if (cfg->parent_fds[i] >= 0) close(cfg->parent_fds[i]);
        }
        child_main(cfg);
    }
    *pidfd = fd;
    return (pid_t)pid;
}

int kiln_pidfd_send_signal(int pidfd, int signal) {
    if (syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) < 0) return -errno;
    return 0;
}

pid_t kiln_wait4(pid_t pid, int *status, void *rusage) {
    for (;;) {
        pid_t r = wait4(pid, status, 0, (struct rusage *)rusage);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

int kiln_last_capability(void) {
    int cap = 0;
    while (prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0) cap++;
    return cap;
}

int kiln_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int kiln_get_affinity(void *mask, size_t size) {
    return sched_getaffinity(0, size, (cpu_set_t *)mask) == 0 ? 0 : -errno;
}

int kiln_memfd(const char *name) {
    int fd = (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */);
    return fd >= 0 ? fd : -errno;
}

static volatile sig_atomic_t forward_target = -1;

static void forward_signal(int signal) {
    int saved = errno;
    int fd = forward_target;
    if (fd >= 0) syscall(SYS_pidfd_send_signal, fd, signal, NULL, 0);
    errno = saved;
}

int kiln_forward_signals_begin(int pidfd, const int *signals, size_t count) {
    forward_target = pidfd;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < count; i++) {
        if (sigaction(signals[i], &sa, NULL) < 0) return -errno;
        sigaddset(&set, signals[i]);
    }
    // kiln may have been started with these blocked (a parent's mask is inherited).
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0 ? 0 : -EINVAL;
}

void kiln_forward_signals_end(const int *signals, size_t count) {
    forward_target = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < count; i++) sigaction(signals[i], &sa, NULL);
}

static volatile sig_atomic_t interrupt_fd = -1;

static void interrupt_signal(int signal) {
    int saved = errno;
    unsigned char byte = (unsigned char)signal;
    int fd = interrupt_fd;
    if (fd >= 0) {
        ssize_t ignored = write(fd, &byte, 1);  // A full pipe already holds enough signals.
        (void)ignored;
    }
    errno = saved;
}

int kiln_interrupt_pipe_begin(int fd, const int *signals, size_t count) {
    interrupt_fd = fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = interrupt_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < count; i++) {
        // Ignored when kiln started (a background job of a shell without job control): stay so.
        struct sigaction old;
        if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        if (sigaction(signals[i], &sa, NULL) < 0) return -errno;
    }
    return 0;
}

long kiln_write_without_sigpipe(int fd, const void *buffer, size_t length) {
    sigset_t pipe_only, saved;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    // Only ours to discard if it was not already pending before this write.
    sigset_t pending;
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &saved);
    ssize_t n;
    do n = write(fd, buffer, length);
    while (n < 0 && errno == EINTR);
    int error = n < 0 ? errno : 0;
    if (error == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return n < 0 ? -error : n;
}
