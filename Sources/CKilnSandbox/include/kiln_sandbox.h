// The part of kiln's sandbox that runs between clone() and execve().
//
// Why C: a Swift process is multithreaded as soon as the runtime starts a thread, and the kernel
// refuses unshare(CLONE_NEWUSER) in a multithreaded process (EINVAL). clone() with namespace flags
// works, but the child it creates is a copy of one thread of a multithreaded process: until it
// calls execve() it may only make async-signal-safe calls (no allocation, no locks, no Swift).
// So the parent (Swift) prepares every string, path and buffer, and the child here only makes
// system calls, reporting the first failure as {step, errno, detail} over a close-on-exec pipe.
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What one entry of the mount plan does. Paths are absolute paths in the setup view:
/// host paths are prefixed with `/oldroot`, sandbox paths with `/newroot` (the parent does that).
typedef enum {
    /// Bind `source` (a host path) onto `target`; `KILN_MOUNT_READONLY` makes it read-only.
    KILN_MOUNT_BIND = 1,
    /// A fresh tmpfs at `target`, `size` bytes (0: the kernel default), mode 1777 if `mode` is 0.
    KILN_MOUNT_TMPFS = 2,
    /// A fresh procfs at `target` for the sandbox's pid namespace.
    KILN_MOUNT_PROC = 3,
    /// A directory at `target` (and its parents), mode `mode`.
    KILN_MOUNT_DIR = 4,
    /// A symlink at `target` whose content is `source`.
    KILN_MOUNT_SYMLINK = 5,
    /// A regular file at `target` holding `size` bytes of `source`, mode `mode`.
    KILN_MOUNT_FILE = 6,
    /// Make the existing mount at `target` read-only (used for /proc/sys and friends).
    KILN_MOUNT_REMOUNT_READONLY = 7,
    /// Hide `target` (a file) under a read-only bind of /dev/null, or (a directory) under an
    /// empty read-only tmpfs.
    KILN_MOUNT_MASK = 8,
    /// Write `size` bytes of `source` into the existing file `target` (a /proc/sys setting of
    /// the sandbox's own namespaces, before /proc/sys becomes read-only).
    KILN_MOUNT_WRITE = 9,
} kiln_mount_kind;

enum {
    KILN_MOUNT_READONLY = 1u << 0,
    /// The source is a directory (else a file): decides what mount point to create.
    KILN_MOUNT_SOURCE_IS_DIR = 1u << 1,
    /// Keep device nodes working (only for the /dev binds kiln itself makes).
    KILN_MOUNT_ALLOW_DEVICES = 1u << 2,
    /// A missing target is not an error (masks of /proc files that a kernel may not have).
    KILN_MOUNT_OPTIONAL = 1u << 3,
};

typedef struct {
    uint32_t kind;      // kiln_mount_kind
    uint32_t flags;     // KILN_MOUNT_*
    uint32_t mode;      // for DIR, FILE, TMPFS
    uint64_t size;      // TMPFS size limit, or FILE content length
    const char *_Nullable source;
    const char *_Nullable target;
} kiln_mount;

typedef struct {
    int resource;       // RLIMIT_*
    uint64_t limit;     // soft and hard
} kiln_rlimit;

/// Everything the child needs, prepared by the parent (every pointer is set; they are marked
/// nullable only so Swift can zero-initialise the struct). Every pointer stays valid until
/// kiln_sandbox_clone returns (the child has its own copy of memory after that).
typedef struct {
    /// CLONE_NEW* flags for clone(); CLONE_NEWCGROUP is done with unshare() after the parent has
    /// moved the child into its cgroups, so the namespace's root is the sandbox's own cgroup.
    int clone_flags;
    int unshare_cgroup;

    const char *_Nullable uid_map;     // "1000 <host uid> 1"
    const char *_Nullable gid_map;
    const char *_Nullable hostname;
    int bring_up_loopback;

    /// The setup view's base directory: a tmpfs is mounted there in the child's own mount
    /// namespace (the host never sees it) and becomes the temporary root.
    const char *_Nullable base_dir;

    const kiln_mount *_Nullable mounts;
    size_t mount_count;

    const char *_Nullable const *_Nullable argv;   // NULL-terminated
    const char *_Nullable const *_Nullable envp;   // NULL-terminated
    const char *_Nullable search_path;            // PATH used to find argv[0] when it has no '/'
    const char *_Nullable cwd;                    // inside the sandbox

    const kiln_rlimit *_Nullable rlimits;
    size_t rlimit_count;

    /// CPU affinity: `cpu_mask_size` bytes of a cpu_set_t, or 0 to keep the inherited affinity.
    const void *_Nullable cpu_mask;
    size_t cpu_mask_size;

    /// The command's standard streams: a descriptor to dup2 onto 0/1/2, or -1 to inherit.
    int stdin_fd, stdout_fd, stderr_fd;

    /// Pipes: before it starts the command, the child reads from `sync_fd` a header
    /// `{uint8 go = 1, uint8 0, uint16 n}` (the parent has joined it to its cgroups) and then n
    /// `struct sock_filter`s, the seccomp filter, which the parent compiles while the child builds
    /// its root; end of file instead means stop. The child reports a setup failure on `report_fd`; the sandbox's pid 1 writes the command's
    /// wait status on `status_fd` when it exits. All three are close-on-exec.
    int sync_fd, report_fd, status_fd;
    /// The parent's ends, which the child closes at once.
    int parent_fds[3];

    /// NULL: the sandbox's root is a fresh tmpfs. Else a host directory under /oldroot (an extracted image) that
    /// is bound read-only as the root before any mount step runs: every mount target must then
    /// exist in it or lie inside an earlier mount.
    const char *_Nullable root_bind;
} kiln_spawn_config;

/// What the child reports when a step fails. Written in one write() (smaller than PIPE_BUF).
typedef struct {
    int32_t step;       // kiln_step
    int32_t error;      // errno
    char detail[240];   // the path or value the step was working on, NUL-terminated
} kiln_report;

/// The setup steps, for error messages ("mount /data on /work/data: ENOENT").
typedef enum {
    KILN_STEP_WAIT_PARENT = 1,
    KILN_STEP_SETGROUPS,
    KILN_STEP_UID_MAP,
    KILN_STEP_GID_MAP,
    KILN_STEP_UNSHARE_CGROUP,
    KILN_STEP_HOSTNAME,
    KILN_STEP_LOOPBACK,
    KILN_STEP_MOUNT_PRIVATE,
    KILN_STEP_MOUNT_BASE,
    KILN_STEP_PIVOT_SETUP,
    KILN_STEP_MKDIR,
    KILN_STEP_MOUNT_BIND,
    KILN_STEP_REMOUNT_READONLY,
    KILN_STEP_MOUNT_TMPFS,
    KILN_STEP_MOUNT_PROC,
    KILN_STEP_SYMLINK,
    KILN_STEP_WRITE_FILE,
    KILN_STEP_MASK,
    KILN_STEP_PIVOT_FINAL,
    KILN_STEP_DETACH_OLD_ROOT,
    KILN_STEP_READONLY_ROOT,
    KILN_STEP_CHDIR,
    KILN_STEP_RLIMIT,
    KILN_STEP_AFFINITY,
    KILN_STEP_NO_NEW_PRIVS,
    KILN_STEP_DROP_CAPABILITIES,
    KILN_STEP_FORK,
    KILN_STEP_SETSID,
    KILN_STEP_STDIO,
    KILN_STEP_CLOSE_FDS,
    KILN_STEP_SECCOMP,
    KILN_STEP_EXEC,
    KILN_STEP_SIGNALS,
    KILN_STEP_WRITE_SETTING,
} kiln_step;

/// A short name for `step` ("mount bind"), for messages.
const char *_Nonnull kiln_step_name(int32_t step);

/// Clones the sandbox's pid 1 with `config->clone_flags` (plus CLONE_PIDFD and SIGCHLD).
/// Returns its host pid and stores a pidfd in `*pidfd`; returns -errno on failure.
/// Call it on a thread that outlives the sandbox: the child's parent-death signal fires when
/// the *thread* that created it exits.
pid_t kiln_sandbox_clone(const kiln_spawn_config *_Nonnull config, int *_Nonnull pidfd);

/// Sends `signal` through a pidfd (no pid-reuse race). Returns 0 or -errno.
int kiln_pidfd_send_signal(int pidfd, int signal);

/// wait4() that also returns the rusage; retries EINTR. Returns the pid, or -errno.
pid_t kiln_wait4(pid_t pid, int *_Nonnull status, void *_Nonnull rusage);

/// Closes every descriptor above 2 that is not in `keep`: used before execve. Async-signal-safe.
void kiln_close_fds_except(const int *_Nullable keep, size_t keep_count);

/// Makes `signals`, when this process receives them, go to the process behind `pidfd` instead
/// (the handler only calls pidfd_send_signal). One target per process: for the CLI, whose
/// Ctrl-C must reach the sandbox. Returns 0 or -errno.
int kiln_forward_signals_begin(int pidfd, const int *_Nonnull signals, size_t count);
/// Stops forwarding (before the pidfd is closed) and restores the default actions.
void kiln_forward_signals_end(const int *_Nonnull signals, size_t count);

/// `kiln run`'s interrupts: each of `signals` writes its number, one byte, to `fd` (a pipe's
/// non-blocking write end) from a handler, for a thread that reads the other end. A handler,
/// not only sigwait, because libdispatch parks the main thread in sigsuspend with every signal
/// unblocked, where a default action would kill kiln. A signal ignored at start stays ignored,
/// as shells expect of their background jobs. Returns 0 or -errno.
int kiln_interrupt_pipe_begin(int fd, const int *_Nonnull signals, size_t count);

/// The highest capability number this kernel knows, or -1.
int kiln_last_capability(void);

// Linux-only definitions Swift's Glibc module does not export (they need _GNU_SOURCE).
// Their values are kernel ABI, the same on x86_64 and arm64.
enum {
    KILN_CLONE_NEWNS = 0x00020000,
    KILN_CLONE_NEWCGROUP = 0x02000000,
    KILN_CLONE_NEWUTS = 0x04000000,
    KILN_CLONE_NEWIPC = 0x08000000,
    KILN_CLONE_NEWUSER = 0x10000000,
    KILN_CLONE_NEWPID = 0x20000000,
    KILN_CLONE_NEWNET = 0x40000000,
    KILN_RLIMIT_DATA = 2,
    KILN_RLIMIT_CORE = 4,
    KILN_RLIMIT_NPROC = 6,
};

/// write() that cannot raise SIGPIPE (the reader may have died): SIGPIPE is blocked on this thread
/// for the call and a pending one discarded. Returns the bytes written or -errno (-EPIPE).
long kiln_write_without_sigpipe(int fd, const void *_Nonnull buffer, size_t length);

/// pipe2(fds, O_CLOEXEC). Returns 0 or -errno.
int kiln_pipe_cloexec(int fds[_Nonnull 2]);
/// sched_getaffinity of this thread into `mask` (`size` bytes). Returns 0 or -errno.
int kiln_get_affinity(void *_Nonnull mask, size_t size);
/// memfd_create(name, MFD_CLOEXEC). Returns the descriptor or -errno.
int kiln_memfd(const char *_Nonnull name);

#ifdef __cplusplus
}
#endif
#endif
