#include "internal.h"
#include "gocker_sys.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

size_t gk_strlcat(char *dst, size_t len, size_t size, const char *src)
{
    if (size == 0)
        return 0;
    while (*src && len + 1 < size)
        dst[len++] = *src++;
    dst[len] = '\0';
    return len;
}

void gk_utoa(char *dst, size_t size, unsigned long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof tmp);
    size_t i = 0;
    while (n > 0 && i + 1 < size)
        dst[i++] = tmp[--n];
    if (size)
        dst[i] = '\0';
}

int gk_send_all(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno == ENOTSOCK) {
            /* The exec FIFO: a plain write of one record (atomic, < PIPE_BUF). */
            n = write(fd, buf, len);
            if (n == (ssize_t)len)
                return 0;
            if (n >= 0)
                return -EIO;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int gk_recv_msg(int fd, struct gk_msg *m)
{
    for (;;) {
        ssize_t n = read(fd, m, sizeof *m);
        if (n == (ssize_t)sizeof *m)
            return 0;
        if (n == 0)
            return -EPIPE;
        if (n > 0)
            return -EPROTO;
        if (errno != EINTR)
            return -errno;
    }
}

const char *gk_stage_name(int stage)
{
    switch (stage) {
    case GK_STAGE_SETNS: return "join namespace";
    case GK_STAGE_HOSTNAME: return "set hostname";
    case GK_STAGE_PROPAGATION: return "mount propagation";
    case GK_STAGE_ROOTFS: return "root filesystem";
    case GK_STAGE_BIND_SOURCE: return "bind source";
    case GK_STAGE_PIVOT_ROOT: return "pivot_root";
    case GK_STAGE_MOUNT: return "mount";
    case GK_STAGE_DEVICES: return "devices";
    case GK_STAGE_LOOPBACK: return "loopback";
    case GK_STAGE_READONLY_ROOT: return "read-only root";
    case GK_STAGE_CWD: return "working directory";
    case GK_STAGE_CREDENTIALS: return "credentials";
    case GK_STAGE_USER: return "user";
    case GK_STAGE_CAPABILITIES: return "capabilities";
    case GK_STAGE_RLIMITS: return "rlimits";
    case GK_STAGE_MASKED_PATHS: return "masked paths";
    case GK_STAGE_TERMINAL: return "terminal";
    case GK_STAGE_START_WAIT: return "wait for start";
    case GK_STAGE_EXEC: return "exec";
    case GK_STAGE_CGROUP: return "join cgroup";
    case GK_STAGE_SECCOMP: return "seccomp";
    case GK_STAGE_SYSCTL: return "sysctl";
    case GK_STAGE_PROCESS_ATTR: return "process attributes";
    case GK_STAGE_HOOK: return "hook";
    default: return "setup";
    }
}

#include <sys/vfs.h>

long gk_fs_type(const char *path)
{
    struct statfs fs;
    if (statfs(path, &fs) < 0)
        return -errno;
    return (long)fs.f_type;
}


/* ---- removing a directory tree (the parent's, never the child's) ------- */

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

/* Removes `name` in the directory `parent`; `buf` holds its path (for the
 * error) with length `len`, room `cap`. */
static int remove_in(int parent, const char *name, int is_dir, char *buf, size_t len, size_t cap,
                     const char **call)
{
    if (!is_dir) {
        if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
            return 0;
        if (errno != EISDIR) {
            *call = "unlink";
            return -errno;
        }
    }
    /* A directory: opened beside its name, never through a symlink. */
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES && fchmodat(parent, name, 0700, 0) == 0)
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ENOTDIR || errno == ELOOP) /* replaced meanwhile: not a directory after all */
            return unlinkat(parent, name, 0) == 0 || errno == ENOENT ? 0 : (*call = "unlink", -errno);
        *call = "open";
        return -errno;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        *call = "opendir";
        return -e;
    }
    int r = 0;
    struct dirent *e;
    while (r == 0 && (errno = 0, e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
            continue;
        size_t n = strlen(e->d_name);
        size_t sub = len;
        if (len + 1 + n < cap) {
            buf[len] = '/';
            memcpy(buf + len + 1, e->d_name, n + 1);
            sub = len + 1 + n;
        }
        r = remove_in(dirfd(d), e->d_name, e->d_type == DT_DIR, buf, sub, cap, call);
        if (r == 0)
            buf[len] = '\0';
    }
    if (r == 0 && errno != 0 && e == NULL) {
        r = -errno;
        *call = "readdir";
    }
    closedir(d);
    if (r < 0)
        return r;
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
        *call = "rmdir";
        return -errno;
    }
    return 0;
}

int gk_remove_tree(const char *path, const char **call, char *failed, size_t n)
{
    if (n == 0)
        return -EINVAL;
    size_t len = strlen(path);
    if (len >= n)
        len = n - 1;
    memcpy(failed, path, len);
    failed[len] = '\0';
    *call = "";
    int r = remove_in(AT_FDCWD, path, 0, failed, len, n, call);
    if (r == 0)
        failed[0] = '\0';
    return r;
}

int gk_pipe_cloexec(int fds[2])
{
    return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

int gk_spawn_helper(const char *path, char *const argv[], const int *fds, int nfds, const char *log_path)
{
    if (nfds < 0 || nfds > 8)
        return -EINVAL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        return pid;
    /* The child: async-signal-safe calls only, up to execv. */
    int high[8];
    for (int i = 0; i < nfds; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD, 3 + nfds)) < 0)
            _exit(127);
    for (int i = 0; i < nfds; i++)
        if (dup2(high[i], 3 + i) < 0)
            _exit(127);
    int null = open("/dev/null", O_RDWR);
    int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(log, 2) < 0)
        _exit(127);
    syscall(SYS_close_range, 3 + nfds, ~0U, 0);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    execv(path, argv);
    _exit(127);
}

int gk_connect_unix(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path)
        return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(s);
        return -e;
    }
    return s;
}

int gk_reserve(int fd, long long len)
{
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)len);
}

void *gk_grow_mapping(void *addr, size_t old_size, size_t new_size)
{
    void *p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}

void gk_attr_spread(pthread_attr_t *attr)
{
    cpu_set_t set;
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof set, &set) < 0)
        return;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) > 0)
        (void)pthread_attr_setaffinity_np(attr, sizeof set, &set);
}

/* How long a wait spins (GOCKER_SPIN_NS overrides it; 0 turns spinning
 * off): a start's waits on another thread or process (the cgroup plan, GO,
 * the exec, the exit) each last a few tenths of a millisecond. Read once;
 * -1: not yet. */
#define GK_SPIN_WINDOW_NS 1000000LL
static long long spin_window = -1;

/* From the CPUs the process may use, read at its start on its first
 * thread: a thread or child that gocker pinned to one CPU of two (see
 * gk_attr_spread) would otherwise decide for everyone. */
__attribute__((constructor)) static void spin_window_init(void)
{
    cpu_set_t set;
    long long w = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1 ? GK_SPIN_WINDOW_NS : 0;
    const char *e = getenv("GOCKER_SPIN_NS");
    if (e && *e)
        w = atoll(e) > 0 ? atoll(e) : 0;
    __atomic_store_n(&spin_window, w, __ATOMIC_RELAXED);
}

long long gk_spin_window(void)
{
    long long w = __atomic_load_n(&spin_window, __ATOMIC_RELAXED);
    return w > 0 ? w : 0;
}

static unsigned long long monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ULL + (unsigned long long)t.tv_nsec;
}

int gk_spin(struct gk_spinner *s)
{
    if (s->n == 0) {
        s->n = 1;
        long long w = gk_spin_window();
        s->until = w > 0 ? monotonic_ns() + (unsigned long long)w : 0;
        return s->until != 0;
    }
    if (s->until == 0)
        return 0;
    if ((++s->n & 15) == 0) {
        if (monotonic_ns() >= s->until) {
            s->until = 0;
            return 0;
        }
        sched_yield();
    } else {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    }
    return 1;
}

int gk_rename_noreplace(const char *from, const char *to)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */);
}

int gk_rename_exchange(const char *from, const char *to)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 2 /* RENAME_EXCHANGE */);
}

int gk_directory_empty(int fd)
{
    /* getdents64's records: d_ino, d_off, d_reclen, d_type, d_name. */
    char buf[1024] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0)
            return n < 0 ? -1 : 1;
        for (long at = 0; at < n;) {
            unsigned short reclen;
            memcpy(&reclen, buf + at + 16, sizeof reclen);
            const char *name = buf + at + 19;
            if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))))
                return 0;
            at += reclen;
        }
    }
}

int gk_ns_type(int fd)
{
    /* NS_GET_NSTYPE of <linux/nsfs.h>: _IO(0xb7, 0x3). */
    int r = ioctl(fd, (unsigned long)((0xb7 << 8) | 0x3));
    return r < 0 ? -errno : r;
}
