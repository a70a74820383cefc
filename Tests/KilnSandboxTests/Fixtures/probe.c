// kiln-probe (compiled with `cc -static` by the isolation suite): one attack (or one observation) per subcommand, run inside the sandbox by the
// isolation suite. It prints a single result line the tests match exactly:
//   ok                  the operation succeeded
//   errno:NAME          it failed with that errno
//   other text          an observation (counts, ids, capability masks)
// C, because most probes are raw system calls that no higher-level language exposes.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EACCES: return "EACCES";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ETXTBSY: return "ETXTBSY";
    case EBADF: return "EBADF";
    case ENOTTY: return "ENOTTY";
    case EIO: return "EIO";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "E%d", e);
        return buf;
    }
    }
}

static int result(long rc) {
    if (rc < 0) printf("errno:%s\n", errno_name(errno));
    else printf("ok\n");
    return 0;
}

static int probe_connect_tcp(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return result(-1);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return result(connect(fd, (struct sockaddr *)&addr, sizeof addr));
}

static int probe_abstract(const char *name) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return result(-1);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    if (len > sizeof(addr.sun_path) - 2) len = sizeof(addr.sun_path) - 2;
    memcpy(addr.sun_path + 1, name, len);  // sun_path[0] == 0: the abstract namespace
    return result(connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)));
}

static int count_pids(void) {
    DIR *d = opendir("/proc");
    if (!d) return result(-1);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') n++;
    }
    closedir(d);
    printf("count:%d\n", n);
    return 0;
}

static int list_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return result(-1);
    int self = dirfd(d);
    int fds[256], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        int fd = atoi(e->d_name);
        if (fd != self) fds[n++] = fd;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) { int t = fds[j]; fds[j] = fds[j - 1]; fds[j - 1] = t; }
    printf("fds:");
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", fds[i]);
    printf("\n");
    return 0;
}

static int capabilities(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return result(-1);
    char line[256], eff[32] = "?", prm[32] = "?", bnd[32] = "?", amb[32] = "?", inh[32] = "?";
    int nnp = -1, seccomp = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "CapEff: %31s", eff);
        sscanf(line, "CapPrm: %31s", prm);
        sscanf(line, "CapBnd: %31s", bnd);
        sscanf(line, "CapAmb: %31s", amb);
        sscanf(line, "CapInh: %31s", inh);
        sscanf(line, "NoNewPrivs: %d", &nnp);
        sscanf(line, "Seccomp: %d", &seccomp);
    }
    fclose(f);
    printf("eff:%s prm:%s inh:%s bnd:%s amb:%s nnp:%d seccomp:%d\n", eff, prm, inh, bnd, amb, nnp, seccomp);
    return 0;
}

static int fill(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return result(-1);
    static char block[1 << 20];
    memset(block, 'x', sizeof block);
    long long total = 0;
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0) {
            printf("errno:%s mib:%lld\n", errno_name(errno), total >> 20);
            return 0;
        }
        total += n;
        if (total > (8LL << 30)) { printf("ok mib:%lld\n", total >> 20); return 0; }
    }
}

static int forkbomb(int max) {
    int forked = 0;
    for (; forked < max; forked++) {
        pid_t pid = fork();
        if (pid < 0) {
            // The children go with the sandbox when this command exits.
            printf("errno:%s forked:%d\n", errno_name(errno), forked);
            return 0;
        }
        if (pid == 0) { pause(); _exit(0); }
    }
    printf("ok forked:%d\n", forked);
    return 0;
}

static int hog(long mib) {
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("errno:ENOMEM mib:%ld\n", i); return 0; }
        memset(p, 1, 1 << 20);
    }
    printf("ok mib:%ld\n", mib);
    return 0;
}

static int daemonize(const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() == 0) {
            // The daemon: appends a byte every 20 ms for as long as it lives.
            for (;;) {
                int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) { ssize_t ignored = write(fd, "x", 1); (void)ignored; close(fd); }
                usleep(20000);
            }
        }
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("daemon started\n");
    fflush(stdout);
    for (;;) pause();
}

/// Leaves an orphan that exits (it is reparented to pid 1), then counts zombies: pid 1 must reap.
static int orphan_zombies(void) {
    pid_t child = fork();
    if (child == 0) {
        if (fork() == 0) { usleep(100000); _exit(0); }
        _exit(0);
    }
    waitpid(child, NULL, 0);
    usleep(400000);
    int zombies = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(line, sizeof line, f)) {
            char *close_paren = strrchr(line, ')');
            if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z') zombies++;
        }
        fclose(f);
    }
    if (d) closedir(d);
    printf("zombies:%d\n", zombies);
    return 0;
}

static int int80_getpid(void) {
#if defined(__x86_64__)
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");  // i386 getpid
    if (rc < 0) { errno = (int)-rc; return result(-1); }
    return result(0);
#else
    printf("errno:ENOSYS\n");
    return 0;
#endif
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: kiln-probe NAME [ARG...]\n");
        return 2;
    }
    const char *p = argv[1];
    const char *a = argc > 2 ? argv[2] : "";
    const char *b = argc > 3 ? argv[3] : "";
    if (!strcmp(p, "read")) { int fd = open(a, O_RDONLY); return result(fd); }
    if (!strcmp(p, "write")) {
        int fd = open(a, O_WRONLY | O_APPEND);
        if (fd < 0) return result(-1);
        return result(write(fd, "1", 1));
    }
    if (!strcmp(p, "create")) return result(open(a, O_WRONLY | O_CREAT | O_EXCL, 0644));
    if (!strcmp(p, "chmod")) return result(chmod(a, (mode_t)strtol(b, NULL, 8)));
    if (!strcmp(p, "create-setuid")) {
        int fd = open(a, O_WRONLY | O_CREAT, 0755);
        if (fd < 0) return result(-1);
        return result(fchmod(fd, 04755));
    }
    if (!strcmp(p, "unlink")) return result(unlink(a));
    if (!strcmp(p, "remount-rw")) return result(mount(NULL, a, NULL, MS_REMOUNT | MS_BIND, NULL));
    if (!strcmp(p, "mount-tmpfs")) return result(mount("tmpfs", a, "tmpfs", 0, NULL));
    if (!strcmp(p, "tcp")) return probe_connect_tcp(a, atoi(b));
    if (!strcmp(p, "abstract")) return probe_abstract(a);
    if (!strcmp(p, "kill")) return result(kill(atoi(a), 0));
    if (!strcmp(p, "ptrace")) return result(ptrace(PTRACE_ATTACH, atoi(a), NULL, NULL));
    if (!strcmp(p, "ptrace-traceme")) return result(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    if (!strcmp(p, "pids")) return count_pids();
    if (!strcmp(p, "unshare-user")) return result(unshare(CLONE_NEWUSER));
    if (!strcmp(p, "unshare-mount")) return result(unshare(CLONE_NEWNS));
    if (!strcmp(p, "clone-newuser")) {
        long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (rc == 0) _exit(0);
        return result(rc);
    }
    if (!strcmp(p, "clone3")) return result(syscall(435, NULL, 0));
    if (!strcmp(p, "setns")) return result(syscall(SYS_setns, 0, 0));
    if (!strcmp(p, "chroot")) return result(chroot("/tmp"));
    if (!strcmp(p, "pivot-root")) return result(syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(p, "sethostname")) return result(sethostname("evil", 4));
    if (!strcmp(p, "mknod")) return result(mknod(a, S_IFCHR | 0666, makedev(1, 3)));
    if (!strcmp(p, "keyctl")) return result(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    if (!strcmp(p, "bpf")) return result(syscall(SYS_bpf, 0, NULL, 0));
    if (!strcmp(p, "perf")) {
        struct perf_event_attr attr = {.type = PERF_TYPE_SOFTWARE, .size = sizeof attr, .config = PERF_COUNT_SW_CPU_CLOCK};
        return result(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    }
    if (!strcmp(p, "io-uring")) { char params[120] = {0}; return result(syscall(425, 8, params)); }
    if (!strcmp(p, "userfaultfd")) return result(syscall(SYS_userfaultfd, 0));
    if (!strcmp(p, "kexec")) return result(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(p, "reboot")) return result(syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, NULL));
    if (!strcmp(p, "open-by-handle")) { char h[64] = {0}; return result(syscall(SYS_open_by_handle_at, AT_FDCWD, h, O_RDONLY)); }
    if (!strcmp(p, "settime")) { struct timespec ts = {0}; return result(clock_settime(CLOCK_REALTIME, &ts)); }
    if (!strcmp(p, "syslog")) return result(syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0));
    if (!strcmp(p, "tiocsti")) { char c = 'x'; return result(ioctl(0, TIOCSTI, &c)); }
    if (!strcmp(p, "tiocsti-high-bits")) { char c = 'x'; return result(syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c)); }
    if (!strcmp(p, "x32")) return result(syscall(0x40000000 | 39 /* getpid */));
    if (!strcmp(p, "int80")) return int80_getpid();
    if (!strcmp(p, "caps")) return capabilities();
    if (!strcmp(p, "fds")) return list_fds();
    if (!strcmp(p, "env")) { for (char **e = environ; *e; e++) printf("%s\n", *e); return 0; }
    if (!strcmp(p, "id")) { printf("uid:%d gid:%d\n", getuid(), getgid()); return 0; }
    if (!strcmp(p, "hostname")) { struct utsname u; uname(&u); printf("%s\n", u.nodename); return 0; }
    if (!strcmp(p, "umask")) { mode_t m = umask(0); printf("umask:%03o\n", m); return 0; }
    if (!strcmp(p, "session")) { printf(getsid(0) == getpid() ? "session:own\n" : "session:inherited\n"); return 0; }
    if (!strcmp(p, "affinity")) { cpu_set_t s; sched_getaffinity(0, sizeof s, &s); printf("cpus:%d\n", CPU_COUNT(&s)); return 0; }
    if (!strcmp(p, "orphan-zombies")) return orphan_zombies();
    if (!strcmp(p, "fill")) return fill(a);
    if (!strcmp(p, "forkbomb")) return forkbomb(atoi(a));
    if (!strcmp(p, "hog")) return hog(atol(a));
    if (!strcmp(p, "daemon")) return daemonize(a);
    if (!strcmp(p, "sleep")) { sleep((unsigned)atoi(a)); return 0; }
    if (!strcmp(p, "exit")) return atoi(a);
    if (!strcmp(p, "signal")) { kill(getpid(), atoi(a)); pause(); return 0; }
    fprintf(stderr, "kiln-probe: unknown probe %s\n", p);
    return 2;
}
