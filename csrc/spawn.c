/*
 * The container's first process, from clone() to execve(), and the
 * processes that `exec` starts in a running container.
 *
 * Everything after clone() in the child runs in a copy of a multithreaded
 * parent: only async-signal-safe calls, no malloc, no stdio, raw system
 * calls where glibc would consult its thread list (set*id). The message
 * sequence is documented in include/gocker_core.h.
 */
#include "gocker_core.h"
#include "gocker_sys.h"
#include "gocker_timings.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The most mounts one container may ask for; bounds the child's stack use. */
#define GK_MAX_MOUNTS 512

/* ---- reporting from the child ------------------------------------------ */

/* Sends an error record on `fd` and leaves. `what` and `path` may be NULL. */
static void __attribute__((noreturn))
child_fail(int fd, int stage, int err, const char *what, const char *path, int code)
{
    struct gk_msg m;
    memset(&m, 0, sizeof m);
    m.type = GK_MSG_ERROR;
    m.stage = stage;
    m.err = err;
    size_t n = 0;
    n = gk_strlcat(m.text, n, sizeof m.text, what ? what : gk_stage_name(stage));
    if (path) {
        n = gk_strlcat(m.text, n, sizeof m.text, " ");
        n = gk_strlcat(m.text, n, sizeof m.text, path);
    }
    (void)gk_send_all(fd, &m, sizeof m);
    _exit(code);
}

/* Where the last path looked up in the root led (mounts.c); the child is
 * single-threaded. */
static struct gk_where where;

/* Like child_fail, for `path` as resolved in the root (`w`): the text is
 * "WHAT PATH[: WHY] (the symlinks it went through)". With `why` (a refusal,
 * err 0) the text says it all; else errno is added to it. */
static void __attribute__((noreturn))
child_fail_at(int fd, int stage, int err, const char *what, const char *path, const char *why,
              const struct gk_where *w)
{
    static char text[GK_MSG_TEXT];
    size_t n = gk_strlcat(text, 0, sizeof text, what);
    n = gk_strlcat(text, n, sizeof text, " ");
    n = gk_strlcat(text, n, sizeof text, path);
    if (why) {
        n = gk_strlcat(text, n, sizeof text, ": ");
        n = gk_strlcat(text, n, sizeof text, why);
    }
    if (w->links[0]) {
        n = gk_strlcat(text, n, sizeof text, " (");
        n = gk_strlcat(text, n, sizeof text, w->links);
        gk_strlcat(text, n, sizeof text, ")");
    }
    child_fail(fd, stage, err, text, NULL, GK_EXIT_SETUP);
}

/* ---- small filesystem helpers (child side, async-signal-safe) ---------- */

/* ---- the child's stages ------------------------------------------------- */

/* Closes every descriptor above 2 except those in `keep`: the child must not
 * hold the parent's files (an flock held by a copied descriptor would outlive
 * the parent's release of it). */
static void close_other_fds(int *keep, size_t n)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: n is small */
        for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned int next = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < (int)next)
            continue;
        if ((unsigned int)keep[i] > next)
            (void)syscall(SYS_close_range, next, (unsigned int)keep[i] - 1, 0);
        next = (unsigned int)keep[i] + 1;
    }
    (void)syscall(SYS_close_range, next, ~0U, 0);
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        (void)sigaction(sig, &sa, NULL);
    }
}

static int loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int r = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        r = -errno;
    } else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            r = -errno;
    }
    close(s);
    return r;
}

int gk_new_netns(void)
{
    if (unshare(CLONE_NEWNET) < 0)
        return -errno;
    int r = loopback_up();
    if (r < 0)
        return r;
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int gk_new_netns_aside(void)
{
    int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0)
        return -errno;
    int fd = gk_new_netns();
    /* Back where the thread was, whatever happened. */
    if (setns(own, CLONE_NEWNET) < 0 && fd >= 0) {
        int e = errno;
        close(fd);
        fd = -e;
    }
    close(own);
    return fd;
}

/* The most devices a container in a user namespace may have bound. */
#define GK_MAX_DEVICES 256
/* With GK_SPAWN_USERNS, the host's device nodes cloned before pivot_root. */
static int dev_tree[GK_MAX_DEVICES];

/* Device nodes and /dev's links, each made in its directory as resolved
 * inside the root; in a user namespace, the host's nodes bound on empty
 * files. */
static void make_devices(int sync, const struct gk_spawn *s, int root)
{
    const char *name = where.name;
    int dir, r;
    mode_t old = umask(0);
    for (size_t i = 0; i < s->ndevices; i++) {
        const struct gk_device *d = &s->devices[i];
        if ((r = gk_make_target(root, d->path, GK_TARGET_PARENT, &dir, &where)) < 0)
            child_fail_at(sync, GK_STAGE_DEVICES, -r, "create directory for", d->path, NULL, &where);
        if (s->flags & (GK_SPAWN_USERNS | GK_SPAWN_BIND_DEVICES)) {
            /* An empty file to bind on (a regular file needs no CAP_MKNOD). */
            if (mknodat(dir, name, S_IFREG | 0666, 0) < 0 && errno != EEXIST)
                child_fail(sync, GK_STAGE_DEVICES, errno, "create", d->path, GK_EXIT_SETUP);
            if (syscall(SYS_move_mount, dev_tree[i], "", dir, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                child_fail(sync, GK_STAGE_DEVICES, errno, "bind device on", d->path, GK_EXIT_SETUP);
            close(dev_tree[i]);
            close(dir);
            continue;
        }
        if (mknodat(dir, name, d->mode, makedev(d->major, d->minor)) < 0 && errno != EEXIST)
            child_fail(sync, GK_STAGE_DEVICES, errno, "mknod", d->path, GK_EXIT_SETUP);
        if (fchownat(dir, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
            child_fail(sync, GK_STAGE_DEVICES, errno, "chown", d->path, GK_EXIT_SETUP);
        close(dir);
    }
    umask(old);
    if (s->flags & GK_SPAWN_DEV_SYMLINKS) {
        static const char *const links[][2] = {
            {"/proc/self/fd", "/dev/fd"},     {"/proc/self/fd/0", "/dev/stdin"},
            {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
            {"pts/ptmx", "/dev/ptmx"},        {"/proc/kcore", "/dev/core"},
        };
        if ((r = gk_open_in_root(root, "/dev", O_PATH | O_DIRECTORY, &dir)) < 0)
            child_fail(sync, GK_STAGE_DEVICES, -r, "open", "/dev", GK_EXIT_SETUP);
        for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
            if (symlinkat(links[i][0], dir, links[i][1] + 5) < 0 && errno != EEXIST)
                child_fail(sync, GK_STAGE_DEVICES, errno, "symlink", links[i][1], GK_EXIT_SETUP);
        close(dir);
    }
}

/* Tries each place `argv[0]` may be, as execvp looks: the name itself when
 * it has a slash, else each PATH entry in order (the container's PATH, or
 * the default one). `attempt` returns 0 (found: stop), or an errno:
 * not-there ones go on, EACCES is remembered, any other stops. Returns 0
 * or the errno of the most telling failure. */
static int walk_path(const struct gk_spawn *s, int (*attempt)(const char *, const struct gk_spawn *))
{
    const char *file = s->argv[0];
    if (file[0] == '\0')
        return ENOENT;
    if (strchr(file, '/'))
        return attempt(file, s);
    const char *path = s->path && s->path[0] ? s->path
                                             : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t flen = strlen(file);
    int seen_eacces = 0;
    for (const char *p = path;; p++) {
        const char *start = p;
        while (*p && *p != ':')
            p++;
        size_t dlen = (size_t)(p - start);
        char buf[PATH_MAX];
        if (dlen + 1 + flen + 1 <= sizeof buf) {
            size_t n = 0;
            if (dlen == 0) {
                buf[n++] = '.';
            } else {
                memcpy(buf, start, dlen);
                n = dlen;
            }
            buf[n++] = '/';
            memcpy(buf + n, file, flen + 1);
            int r = attempt(buf, s);
            switch (r) {
            case 0:
                return 0;
            case EACCES:
                seen_eacces = 1;
                break;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
                break;
            default:
                return r;
            }
        }
        if (*p == '\0')
            break;
    }
    return seen_eacces ? EACCES : ENOENT;
}

static int try_exec(const char *path, const struct gk_spawn *s)
{
    execve(path, (char *const *)s->argv, (char *const *)s->envp);
    return errno;
}

/* Where exec_check found the command (empty: not asked, or not found). */
static char found_path[PATH_MAX];

/* 0 when `path` is a file this process may execute, else the errno an
 * execve would most likely give. */
static int can_exec(const char *path, const struct gk_spawn *s)
{
    (void)s;
    struct stat st;
    if (stat(path, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode))
        return EACCES;
    if (access(path, X_OK) < 0)
        return errno;
    gk_strlcat(found_path, 0, sizeof found_path, path);
    return 0;
}

/* Execs `argv[0]` as execvp would; returns the errno of the most telling
 * failure. Where exec_check found it, there first: the entries of PATH
 * before it held nothing then (a failure there walks PATH again). */
static int exec_lookup(const struct gk_spawn *s)
{
    if (found_path[0])
        (void)try_exec(found_path, s);
    return walk_path(s, try_exec);
}

/* Whether exec_lookup would find `argv[0]`: 0, or ENOENT (not there, not
 * in PATH) or EACCES. Asked before READY, as runc does, so that `create`
 * fails for a command the container does not have, not the process after
 * `create` answered. */
static int exec_check(const struct gk_spawn *s) { return walk_path(s, can_exec); }

/* The process's own settings, in the order the kernel needs: user (from
 * the container's /etc/passwd and /etc/group), HOME, rlimits, bounding set,
 * credentials, capabilities, no_new_privs. Failures go to `sync`. */
static void become_process(int sync, const struct gk_spawn *s, int slave)
{
    char what[GK_MSG_TEXT];
    int r;

    /* The user, from the container's own /etc/passwd and /etc/group. */
    static struct gk_user user;
    user.uid = s->uid;
    user.gid = s->gid;
    user.ngroups = 0;
    for (size_t i = 0; i < s->ngroups && i < GK_MAX_GROUPS; i++)
        user.groups[user.ngroups++] = s->groups[i];
    if ((r = gk_resolve_user(s->user, s->group_add, s->ngroup_add, &user, what, sizeof what)) < 0)
        child_fail(sync, GK_STAGE_USER, -r, what, NULL, GK_EXIT_SETUP);
    if (slave >= 0 && fchown(slave, user.uid, (gid_t)-1) < 0)
        child_fail(sync, GK_STAGE_TERMINAL, errno, "chown pty", NULL, GK_EXIT_SETUP);
    if (s->env_spare_slot) {
        int has_home = 0;
        size_t n = 0;
        for (; s->envp[n]; n++)
            if (strncmp(s->envp[n], "HOME=", 5) == 0)
                has_home = 1;
        if (!has_home) {
            static char home[sizeof user.home + 8];
            size_t l = gk_strlcat(home, 0, sizeof home, "HOME=");
            gk_strlcat(home, l, sizeof home, user.home);
            ((const char **)s->envp)[n] = home; /* the spare slot; our copy of the parent's memory */
        }
    }

    what[0] = '\0';
    if ((r = gk_apply_rlimits(s, what, sizeof what)) < 0)
        child_fail(sync, GK_STAGE_RLIMITS, -r, what, NULL, GK_EXIT_SETUP);
    if ((r = gk_drop_bounding(s)) < 0)
        child_fail(sync, GK_STAGE_CAPABILITIES, -r, "drop capabilities from the bounding set", NULL, GK_EXIT_SETUP);
    if ((r = gk_set_credentials(&user, (s->flags & GK_SPAWN_KEEP_GROUPS) != 0, what, sizeof what)) < 0)
        child_fail(sync, GK_STAGE_CREDENTIALS, -r, what, NULL, GK_EXIT_SETUP);
    if ((r = gk_set_caps(s)) < 0)
        child_fail(sync, GK_STAGE_CAPABILITIES, -r, "set capabilities", NULL, GK_EXIT_SETUP);
    if ((s->flags & GK_SPAWN_NO_NEW_PRIVS) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(sync, GK_STAGE_CAPABILITIES, errno, "set no_new_privs", NULL, GK_EXIT_SETUP);
}

/* Makes `slave` (or -1) the controlling terminal, puts stdio in place and
 * execs the command; a failure is reported on `report` (the exec FIFO or the
 * sync socket, both close-on-exec) with exit 125, 126 or 127. */
static void __attribute__((noreturn)) exec_command(int report, const struct gk_spawn *s, int slave)
{
    int r;
    if (slave >= 0 && (r = gk_take_terminal(slave)) < 0)
        child_fail(report, GK_STAGE_TERMINAL, -r, "set controlling terminal", NULL, GK_EXIT_SETUP);
    for (int i = 0; i < 3; i++)
        if (s->stdio[i] >= 0 && s->stdio[i] != i && dup2(s->stdio[i], i) < 0)
            child_fail(report, GK_STAGE_EXEC, errno, "set up stdio", NULL, GK_EXIT_SETUP);

    /* Nothing but stdio and the reporting descriptor crosses into the command. */
    (void)syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    gk_mark(GK_MARK_EXEC);
    int err = exec_lookup(s);
    int code = (err == ENOENT || err == ENOTDIR) ? GK_EXIT_NOT_FOUND : GK_EXIT_NOT_EXECUTABLE;
    child_fail(report, GK_STAGE_EXEC, err, "exec", s->argv[0], code);
}

/* This process's pid as the host sees it (GO says it), for seccomp's
 * container process state. */
static pid_t host_pid;

/* Loads the seccomp filter and lets go of what was held for it (see
 * gocker_core.h): 0, or -errno with `*what` naming the step. */
static int seccomp_now(const struct gk_spawn *s, const char **what)
{
    int r;
    if ((r = gk_seccomp_load(s, host_pid)) < 0) {
        *what = s->seccomp_state ? "load seccomp filter or send its listener" : "load seccomp filter";
        return r;
    }
    if ((s->flags & GK_SPAWN_INIT) && (r = gk_drop_held_caps(s)) < 0) {
        *what = "drop CAP_SYS_ADMIN after loading the seccomp filter";
        return r;
    }
    return 0;
}

/* The seccomp filter, last before execve; failures go to `report`. */
static void load_seccomp(int report, const struct gk_spawn *s)
{
    const char *what = "";
    int r;
    if (s->seccomp_program && (r = seccomp_now(s, &what)) < 0)
        child_fail(report, GK_STAGE_SECCOMP, -r, what, NULL, GK_EXIT_SETUP);
}

/* Whether GO came (first thing, or later with GK_SPAWN_LATE_GO). */
static int go_done;

/* The CPUs the thread that cloned a container's first process could run
 * on, when more than one (else clone_spread is 0). With GK_SPAWN_LATE_GO
 * the parent makes the child's groups after the clone: a scheduler that
 * packs tasks onto few CPUs would queue the new child behind it, beside an
 * idle CPU, so the parent moves the child off its own CPU at once. The
 * child takes this set back when GO comes, before it joins its groups (v1,
 * where a cpuset group then sets its CPUs, as it would have). Only then:
 * in a group already (v2), taking the set back would be cut to the
 * group's CPUs. Thread-local: the child is a copy of the thread that
 * cloned it. (Kernels since 6.2 keep the set taken back as the one asked
 * for, and a later cpuset's CPUs are cut to it: it is every CPU gocker may
 * use.) */
static __thread cpu_set_t clone_cpus;
static __thread int clone_spread;

/* Waits for GO (the parent has put the child in its cgroups, or sent the
 * `tasks` files through which it joins them itself; end of file: the parent
 * is gone), then makes the child's own cgroup namespace, rooted at those
 * groups, if it is to have one. */
static void wait_go(const struct gk_spawn *s, int sync)
{
    struct gk_msg m;
    go_done = 1;
    int fds[GK_MAX_GO_FDS];
    int n = gk_recv_fds(sync, &m, fds, GK_MAX_GO_FDS);
    if (n == -EMSGSIZE)
        child_fail(sync, GK_STAGE_CGROUP, EMSGSIZE, "receive the cgroup files", NULL, GK_EXIT_SETUP);
    if (n < 0 || m.type != GK_MSG_GO)
        _exit(GK_EXIT_SETUP);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    host_pid = m.pad;
    /* GO comes after the parent moved this process (see clone_spread).
     * Where the set cannot be taken back, the groups' CPUs still apply. */
    if (clone_spread)
        (void)sched_setaffinity(0, sizeof clone_cpus, &clone_cpus);
    /* GO says how many files came with it: every one must be joined; with
     * GK_SPAWN_NET_AT_GO the network namespace comes after them. */
    int net_at_go = (s->flags & GK_SPAWN_NET_AT_GO) != 0;
    if (n != m.err + net_at_go || m.err < 0)
        child_fail(sync, GK_STAGE_CGROUP, EMSGSIZE, "receive the cgroup files", NULL, GK_EXIT_SETUP);
    if (net_at_go) {
        if (setns(fds[n - 1], CLONE_NEWNET) < 0)
            child_fail(sync, GK_STAGE_SETNS, errno, "join the network namespace", NULL, GK_EXIT_SETUP);
        close(fds[n - 1]);
        n--;
    }
    /* Each descriptor is a v1 group's `tasks` file: 0 there moves this
     * thread, the child's only one, and with it the process. */
    for (int i = 0; i < n; i++) {
        if (write(fds[i], "0", 1) < 0)
            child_fail(sync, GK_STAGE_CGROUP, errno, NULL, NULL, GK_EXIT_SETUP);
        close(fds[i]);
    }
    if ((s->flags & GK_SPAWN_CGROUP_NS) && unshare(CLONE_NEWCGROUP) < 0)
        child_fail(sync, GK_STAGE_SETNS, errno, "unshare the cgroup namespace", NULL, GK_EXIT_SETUP);
    gk_mark(GK_MARK_GO);
}

/* The host's /proc, open O_PATH (see child_prologue), or -1. */
static int host_proc = -1;

/* A child's statics as a new process must find them: a child that shared
 * the parent's memory (see vm_launch) may have left its own in them. */
static void child_reset(void)
{
    go_done = 0;
    host_pid = 0;
    host_proc = -1;
    found_path[0] = '\0';
}

/* The AppArmor profile or SELinux label execve gives the command, written
 * through the host's /proc (the container may have none) once the
 * runtime's hooks have run (they must not run confined as the container). */
static void write_label(const struct gk_spawn *s, int sync)
{
    if (!s->label_path)
        return;
    int fd = openat(host_proc, s->label_path, O_WRONLY | O_CLOEXEC);
    size_t n = strlen(s->label);
    ssize_t w = fd < 0 ? -1 : write(fd, s->label, n);
    int e = w < 0 ? errno : (w != (ssize_t)n ? EIO : 0);
    if (fd >= 0)
        close(fd);
    if (e)
        child_fail(sync, GK_STAGE_PROCESS_ATTR, e, "write /proc", s->label_path, GK_EXIT_SETUP);
}

/* linux.sysctl, in the namespaces the container has now (/proc/sys
 * answers for the writer's network, IPC and UTS namespaces), through the
 * host's /proc (the paths are relative to it: "sys/net/..."): the
 * container may mount no /proc of its own. */
static void write_sysctls(const struct gk_spawn *s, int sync)
{
    for (size_t i = 0; i < s->nsysctl; i++) {
        int fd = openat(host_proc, s->sysctl_paths[i], O_WRONLY | O_CLOEXEC);
        size_t n = strlen(s->sysctl_values[i]);
        ssize_t w = fd < 0 ? -1 : write(fd, s->sysctl_values[i], n);
        int e = w < 0 ? errno : (w != (ssize_t)n ? EIO : 0);
        if (fd >= 0)
            close(fd);
        if (e)
            child_fail(sync, GK_STAGE_SYSCTL, e, "write sysctl", s->sysctl_paths[i], GK_EXIT_SETUP);
    }
}

/* What every child does first: signals reset, parent-death signal, no
 * core dumps or ptrace from the container until execve (whose /proc/PID/exe
 * is still gocker's binary; from GO on where the parent writes this
 * process's /proc files first), nothing of the parent's descriptors but those
 * it needs; then wait for GO (unless later, GK_SPAWN_LATE_GO), join the
 * namespaces, in order, and with GK_SPAWN_UNSHARE_NET make a network
 * namespace of its own. */
static void child_prologue(const struct gk_spawn *s, int sync, int extra_fd)
{
    reset_signals();
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Where the parent writes this process's /proc files (its uid_map and
     * gid_map, its oom_score_adj) it stays dumpable until GO: the files of
     * a process that is not are the host root's, which a rootless parent
     * cannot open. */
    if (!s->uid_map && !(s->flags & GK_SPAWN_OOM_SCORE_ADJ))
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (s->njoins > 64)
        child_fail(sync, GK_STAGE_SETNS, E2BIG, "too many namespaces to join", NULL, GK_EXIT_SETUP);
    int keep[7 + s->njoins];
    size_t nkeep = 0;
    keep[nkeep++] = sync;
    if (s->rootfs_tree >= 0 && (s->flags & (GK_SPAWN_ROOTFS_TREE | GK_SPAWN_CHROOT)))
        keep[nkeep++] = s->rootfs_tree;
    if (s->seccomp_state)
        keep[nkeep++] = s->seccomp_listener;
    if (extra_fd >= 0)
        keep[nkeep++] = extra_fd;
    for (int i = 0; i < 3; i++)
        if (s->stdio[i] > 2)
            keep[nkeep++] = s->stdio[i];
    for (size_t i = 0; i < s->njoins; i++)
        keep[nkeep++] = s->joins[i].fd;
    close_other_fds(keep, nkeep);
    /* The host's procfs, for the exec FIFO's reopening, the sysctls and
     * the label: the container may mount none, or its root may not be one
     * gocker made. Close-on-exec; closed before the command's code runs. */
    if ((host_proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        child_fail(sync, GK_STAGE_START_WAIT, errno, "open", "/proc", GK_EXIT_SETUP);

    if (!(s->flags & GK_SPAWN_LATE_GO))
        wait_go(s, sync);

    for (size_t i = 0; i < s->njoins; i++) {
        if (setns(s->joins[i].fd, s->joins[i].nstype) < 0)
            child_fail(sync, GK_STAGE_SETNS, errno, "setns", NULL, GK_EXIT_SETUP);
        close(s->joins[i].fd);
    }
    if (s->unshare_flags && unshare((int)s->unshare_flags) < 0)
        child_fail(sync, GK_STAGE_SETNS, errno, "unshare namespaces in the user namespace joined", NULL, GK_EXIT_SETUP);
    if ((s->flags & GK_SPAWN_UNSHARE_NET) && unshare(CLONE_NEWNET) < 0)
        child_fail(sync, GK_STAGE_SETNS, errno, "unshare the network namespace", NULL, GK_EXIT_SETUP);
}

/* With GK_SPAWN_USERNS, once pivot_root is done (host paths on the way to
 * rootfs may be closed to the namespace's ids), the user namespace's root
 * from here on (its maps were written before GO): files made now belong to
 * the container's root, not to an id the namespace cannot name. The
 * capabilities stay (the kernel clears them only on leaving the
 * namespace's own root). */
static void become_ns_root(const struct gk_spawn *s, int sync)
{
    if ((s->flags & GK_SPAWN_USERNS) &&
        (syscall(SYS_setresgid, 0, 0, 0) < 0 || (syscall(SYS_setgroups, 0, NULL) < 0 && errno != EPERM) ||
         syscall(SYS_setresuid, 0, 0, 0) < 0))
        child_fail(sync, GK_STAGE_CREDENTIALS, errno, "become root of the user namespace", NULL, GK_EXIT_SETUP);
}

/* With GK_SPAWN_TERMINAL, a pty pair from the container's devpts: the
 * master goes to the parent, the slave (returned) becomes the command's
 * terminal. -1 without a terminal. */
static int child_terminal(const struct gk_spawn *s, int sync)
{
    int r, master, slave = -1;
    if (!(s->flags & GK_SPAWN_TERMINAL))
        return -1;
    if ((r = gk_open_pty(&master, &slave)) < 0)
        child_fail(sync, GK_STAGE_TERMINAL, -r, "open pty", "/dev/ptmx", GK_EXIT_SETUP);
    if ((r = gk_send_fd(sync, master)) < 0)
        child_fail(sync, GK_STAGE_TERMINAL, -r, "send pty master", NULL, GK_EXIT_SETUP);
    close(master);
    /* The terminal is its stdio from now on: the caller's (`create`'s
     * pipes, which containerd's shim reads to their end) are let go at
     * once, not when `start` comes. */
    for (int fd = 0; fd < 3; fd++)
        if (slave != fd && dup2(slave, fd) < 0)
            child_fail(sync, GK_STAGE_TERMINAL, errno, "make the terminal stdio", NULL, GK_EXIT_SETUP);
    return slave;
}

/* Runs `set`'s hooks (createContainer, startContainer); a failure goes
 * to `report`. */
static void run_hook_set(int report, const struct gk_hook_set *set)
{
    char text[GK_MSG_TEXT];
    int err = 0;
    if (set->nhooks && gk_run_hooks(set, host_pid, text, sizeof text, &err) < 0)
        child_fail(report, GK_STAGE_HOOK, err, text, NULL, GK_EXIT_SETUP);
}

/* Just before pivot_root (or chroot): with GK_SPAWN_HOOKS the parent runs
 * the runtime's hooks while this process waits; then the createContainer
 * hooks run here. */
static void child_hooks(const struct gk_spawn *s, int sync)
{
    if (s->flags & GK_SPAWN_HOOKS) {
        struct gk_msg m;
        memset(&m, 0, sizeof m);
        m.type = GK_MSG_HOOKS;
        if (gk_send_all(sync, &m, sizeof m) < 0 || gk_recv_msg(sync, &m) < 0 || m.type != GK_MSG_HOOKS)
            _exit(GK_EXIT_SETUP);
    }
    run_hook_set(sync, &s->create_hooks);
}

/* A bind's source, cloned (open_tree) while the host's paths are visible;
 * `*dir`: whether it is a directory. */
static int open_bind_source(const struct gk_mount *mt, int *fd, int *dir)
{
    unsigned int fl = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (mt->recursive ? AT_RECURSIVE : 0);
    struct stat st;
    *fd = (int)syscall(SYS_open_tree, AT_FDCWD, mt->source, fl);
    if (*fd < 0)
        return -errno;
    if (fstat(*fd, &st) < 0)
        return -errno;
    *dir = S_ISDIR(st.st_mode);
    return 0;
}

/* The config's mounts, in its order, each target resolved inside `root`
 * (mounts.c); `bind_fd`/`bind_dir`: the bind sources cloned beforehand. */
static void apply_mounts(const struct gk_spawn *s, int sync, int root, int *bind_fd, int *bind_dir)
{
    int r;
    char what[GK_MSG_TEXT];
    for (size_t i = 0; i < s->nmounts; i++) {
        const struct gk_mount *mt = &s->mounts[i];
        int target;
        /* A sysfs shows the network namespace it is mounted in. */
        if ((s->flags & GK_SPAWN_NET_AT_GO) && !go_done && mt->kind == GK_MOUNT_FS && mt->fstype &&
            strcmp(mt->fstype, "sysfs") == 0)
            wait_go(s, sync);
        if (mt->kind == GK_MOUNT_BIND && bind_fd[i] < 0) {
            /* One of the container's groups (after_go): made by now. */
            if (!go_done)
                wait_go(s, sync);
            if ((r = open_bind_source(mt, &bind_fd[i], &bind_dir[i])) < 0)
                child_fail(sync, GK_STAGE_BIND_SOURCE, -r, "bind source", mt->source, GK_EXIT_SETUP);
        }
        r = gk_make_target(root, mt->target, GK_TARGET_EXACT | (bind_dir[i] ? 0 : GK_TARGET_FILE), &target, &where);
        const char *why = gk_refuse_target(mt, bind_fd[i], r < 0 ? -1 : target, &where);
        if (why)
            child_fail_at(sync, GK_STAGE_MOUNT, 0, "mount", mt->target, why, &where);
        if (r < 0)
            child_fail_at(sync, GK_STAGE_MOUNT, -r, "create mount point", mt->target, NULL, &where);
        if (mt->kind == GK_MOUNT_BIND) {
            what[0] = '\0';
            if (mt->copy_up && (r = gk_copy_up(root, target, bind_fd[i], what, sizeof what)) < 0)
                child_fail(sync, GK_STAGE_MOUNT, -r, "copy image content into the volume at", mt->target,
                           GK_EXIT_SETUP);
            if ((r = gk_set_mount_flags(bind_fd[i], mt->rec_flags, mt->recursive)) < 0 ||
                (r = gk_set_mount_flags(bind_fd[i], mt->flags, 0)) < 0)
                child_fail(sync, GK_STAGE_MOUNT, -r, "set mount flags of", mt->target, GK_EXIT_SETUP);
            if ((r = gk_move_mount_to(bind_fd[i], target)) < 0)
                child_fail(sync, GK_STAGE_MOUNT, -r, "bind mount on", mt->target, GK_EXIT_SETUP);
            if ((r = gk_set_propagation(bind_fd[i], mt->propagation)) < 0)
                child_fail(sync, GK_STAGE_MOUNT, -r, "set propagation of", mt->target, GK_EXIT_SETUP);
            close(bind_fd[i]);
        } else {
            /* tmpcopyup: written first, read-only (when asked) after. */
            unsigned long fs_flags = mt->copy_up ? mt->flags & ~(unsigned long)MS_RDONLY : mt->flags;
            if ((r = gk_mount_fs_at(root, target, mt->source, mt->fstype, fs_flags, mt->data)) < 0)
                child_fail(sync, GK_STAGE_MOUNT, -r, mt->fstype, mt->target, GK_EXIT_SETUP);
            if (mt->copy_up) {
                /* The new tmpfs gets what the image holds there (`target`,
                 * opened before the mount, is still the image's directory). */
                int top;
                what[0] = '\0';
                if ((r = gk_open_in_root(root, where.path, O_PATH, &top)) < 0 ||
                    (r = gk_copy_up(root, target, top, what, sizeof what)) < 0 ||
                    ((mt->flags & MS_RDONLY) && (r = gk_set_mount_flags(top, MS_RDONLY, 0)) < 0))
                    child_fail(sync, GK_STAGE_MOUNT, -r, "copy the image's content into the tmpfs at", mt->target,
                               GK_EXIT_SETUP);
                close(top);
            }
            if (mt->propagation) {
                /* The target looked up again is the new mount's root. */
                int top;
                if ((r = gk_open_in_root(root, where.path, O_PATH, &top)) < 0 ||
                    (r = gk_set_propagation(top, mt->propagation)) < 0)
                    child_fail(sync, GK_STAGE_MOUNT, -r, "set propagation of", mt->target, GK_EXIT_SETUP);
                close(top);
            }
        }
        close(target);
    }

}

/* The container's own mount namespace: its root filesystem (an overlay or
 * a bind of rootfs), pivot_root into it, and the config's mounts in their
 * order. Returns the new root, open O_PATH. */
static int private_root(const struct gk_spawn *s, int sync)
{
    int r;
    /* Private first (slave when a mount or the root asks for slave or
     * shared propagation: it must go on receiving from the host), whatever
     * the config asks: a mount made below here must never propagate to the
     * host, and pivot_root refuses a shared parent. The propagation the
     * config asks for is applied to the new root after pivot_root. */
    unsigned long first = MS_REC | MS_PRIVATE;
    for (size_t i = 0; i <= s->nmounts; i++) {
        unsigned long p = i < s->nmounts ? s->mounts[i].propagation : s->root_propagation;
        if (p & (MS_SLAVE | MS_SHARED))
            first = MS_REC | MS_SLAVE;
    }
    if (mount(NULL, "/", NULL, first, NULL) < 0)
        child_fail(sync, GK_STAGE_PROPAGATION, errno, "make / private", NULL, GK_EXIT_SETUP);

    if (s->overlay_data) {
        if (mount("overlay", s->rootfs, "overlay", 0, s->overlay_data) < 0) {
            /* Kernels before 5.10 know no "volatile" (asked for containers
             * removed when they end): mount without it. The options are
             * this child's own copy. */
            size_t n = strlen(s->overlay_data), v = sizeof(",volatile") - 1;
            int err = errno;
            if (err == EINVAL && n > v && strcmp(s->overlay_data + n - v, ",volatile") == 0) {
                ((char *)s->overlay_data)[n - v] = '\0';
                err = mount("overlay", s->rootfs, "overlay", 0, s->overlay_data) < 0 ? errno : 0;
            }
            if (err)
                child_fail(sync, GK_STAGE_ROOTFS, err, "mount overlay on", s->rootfs, GK_EXIT_SETUP);
        }
    } else if (s->flags & GK_SPAWN_ROOTFS_TREE) {
        if (syscall(SYS_move_mount, s->rootfs_tree, "", AT_FDCWD, s->rootfs, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            child_fail(sync, GK_STAGE_ROOTFS, errno, "move the idmapped root onto", s->rootfs, GK_EXIT_SETUP);
        close(s->rootfs_tree);
    } else if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        child_fail(sync, GK_STAGE_ROOTFS, errno, "bind root", s->rootfs, GK_EXIT_SETUP);
    }

    /* In a user namespace device nodes cannot be made: the host's are
     * cloned now, while its /dev is visible, and bound in place later. */
    int bind_devices = (s->flags & (GK_SPAWN_USERNS | GK_SPAWN_BIND_DEVICES)) != 0;
    if (bind_devices && s->ndevices > GK_MAX_DEVICES)
        child_fail(sync, GK_STAGE_DEVICES, E2BIG, "too many devices", NULL, GK_EXIT_SETUP);
    for (size_t i = 0; bind_devices && i < s->ndevices; i++) {
        const struct gk_device *d = &s->devices[i];
        dev_tree[i] = (int)syscall(SYS_open_tree, AT_FDCWD, d->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        if (dev_tree[i] < 0)
            child_fail(sync, GK_STAGE_DEVICES, errno, "bind the host's device", d->path, GK_EXIT_SETUP);
        /* Only the node the config describes: its type and number. */
        struct stat st;
        if (fstat(dev_tree[i], &st) < 0 || (st.st_mode & S_IFMT) != (d->mode & S_IFMT) ||
            (!S_ISFIFO(st.st_mode) && st.st_rdev != makedev(d->major, d->minor)))
            child_fail(sync, GK_STAGE_DEVICES, ENODEV, "the host's node is not the device at", d->path, GK_EXIT_SETUP);
    }

    /* Host paths to bind are cloned now; their targets are resolved inside
     * the container's root (its descriptor), so that no symlink in the
     * image can point a mount outside it. */
    if (s->nmounts > GK_MAX_MOUNTS)
        child_fail(sync, GK_STAGE_MOUNT, E2BIG, "too many mounts", NULL, GK_EXIT_SETUP);
    int bind_fd[s->nmounts ? s->nmounts : 1];
    int bind_dir[s->nmounts ? s->nmounts : 1];
    for (size_t i = 0; i < s->nmounts; i++) {
        const struct gk_mount *mt = &s->mounts[i];
        bind_fd[i] = -1;
        bind_dir[i] = 1;
        if (mt->kind != GK_MOUNT_BIND || (mt->after_go && !go_done))
            continue;
        if ((r = open_bind_source(mt, &bind_fd[i], &bind_dir[i])) < 0)
            child_fail(sync, GK_STAGE_BIND_SOURCE, -r, "bind source", mt->source, GK_EXIT_SETUP);
    }

    /* The mounts go in before pivot_root, each target resolved inside
     * rootfs through its descriptor (as runc, the runtime's hooks then see
     * them; and in a user namespace the kernel mounts a procfs and sysfs
     * only while one is visible). In a user namespace as its root, whose
     * way into rootfs is that descriptor. */
    int root = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        child_fail(sync, GK_STAGE_MOUNT, errno, "open", s->rootfs, GK_EXIT_SETUP);
    become_ns_root(s, sync);
    apply_mounts(s, sync, root, bind_fd, bind_dir);
    child_hooks(s, sync);
    if (fchdir(root) < 0)
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "chdir", s->rootfs, GK_EXIT_SETUP);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "pivot_root", s->rootfs, GK_EXIT_SETUP);
    /* The old root now sits on top of the new one: keep its unmount from
     * propagating anywhere, then detach it. */
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "make old root slave", NULL, GK_EXIT_SETUP);
    if (umount2(".", MNT_DETACH) < 0)
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "detach old root", NULL, GK_EXIT_SETUP);
    if (chdir("/") < 0)
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "chdir", "/", GK_EXIT_SETUP);
    gk_mark(GK_MARK_PIVOTED);
    return root;
}

/* No mount namespace of the container's own: the host's kept (chroot into
 * rootfs) or one joined (its root as it is). Nothing is mounted: that
 * would change a namespace others live in. Returns the root, open O_PATH. */
static int shared_root(const struct gk_spawn *s, int sync)
{
    child_hooks(s, sync);
    if ((s->flags & GK_SPAWN_CHROOT) && (chdir(s->rootfs) < 0 || chroot(".") < 0))
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "chroot", s->rootfs, GK_EXIT_SETUP);
    if (chdir("/") < 0)
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "chdir", "/", GK_EXIT_SETUP);
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        child_fail(sync, GK_STAGE_MOUNT, errno, "open", "/", GK_EXIT_SETUP);
    return root;
}

/* Whether GK_MSG_SAVED goes right after GO (GK_SPAWN_SAVED_EARLY), as both
 * sides of the sync socket must agree: never with GK_SPAWN_HOOKS, whose
 * answer the child reads first. */
static int saved_early(const struct gk_spawn *s)
{
    return (s->flags & GK_SPAWN_SAVED_EARLY) && !(s->flags & GK_SPAWN_HOOKS);
}

static void __attribute__((noreturn)) child_main(const struct gk_spawn *s, int sync)
{
    struct gk_msg m;
    int r;

    child_prologue(s, sync, s->exec_fifo_fd);

    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        child_fail(sync, GK_STAGE_HOSTNAME, errno, "sethostname", s->hostname, GK_EXIT_SETUP);

    int root = (s->flags & (GK_SPAWN_CHROOT | GK_SPAWN_JOINED_ROOT)) ? shared_root(s, sync) : private_root(s, sync);
    if ((s->flags & GK_SPAWN_NET_AT_GO) && !go_done && s->nsysctl)
        wait_go(s, sync);
    write_sysctls(s, sync);
    write_label(s, sync);
    char what[GK_MSG_TEXT];

    gk_mark(GK_MARK_MOUNTED);
    if (!go_done)
        wait_go(s, sync);
    make_devices(sync, s, root);

    if (s->root_propagation && s->root_propagation != (MS_REC | MS_PRIVATE) &&
        mount(NULL, "/", NULL, s->root_propagation, NULL) < 0)
        child_fail(sync, GK_STAGE_PROPAGATION, errno, "set propagation of", "/", GK_EXIT_SETUP);

    what[0] = '\0';
    if ((r = gk_mask_paths(s, root, what, sizeof what)) < 0)
        child_fail(sync, GK_STAGE_MASKED_PATHS, -r, "mask", what, GK_EXIT_SETUP);

    int slave = child_terminal(s, sync);

    if ((s->flags & GK_SPAWN_LOOPBACK_UP) && (r = loopback_up()) < 0)
        child_fail(sync, GK_STAGE_LOOPBACK, -r, "bring up", "lo", GK_EXIT_SETUP);

    if ((s->flags & GK_SPAWN_ROOT_READONLY) &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
        child_fail(sync, GK_STAGE_READONLY_ROOT, errno, "remount / read-only", NULL, GK_EXIT_SETUP);

    if (s->cwd) {
        int cwd;
        if ((r = gk_make_target(root, s->cwd, 0, &cwd, &where)) < 0)
            child_fail_at(sync, GK_STAGE_CWD, -r, "working directory", s->cwd, NULL, &where);
        if (fchdir(cwd) < 0)
            child_fail(sync, GK_STAGE_CWD, errno, "chdir to", s->cwd, GK_EXIT_SETUP);
        close(cwd);
    }
    close(root);

    become_process(sync, s, slave);
    int missing = exec_check(s);
    if (missing)
        child_fail(sync, GK_STAGE_EXEC, missing, "exec", s->argv[0],
                   missing == ENOENT || missing == ENOTDIR ? GK_EXIT_NOT_FOUND : GK_EXIT_NOT_EXECUTABLE);

    /* Created. The parent may go away once it has saved the state that
     * names this process (GK_MSG_SAVED), not before: until then nothing
     * would find it, and it goes with the parent. */
    gk_mark(GK_MARK_READY);
    memset(&m, 0, sizeof m);
    m.type = GK_MSG_READY;
    if (gk_send_all(sync, &m, sizeof m) < 0)
        _exit(GK_EXIT_SETUP);
    /* The filter now, while the parent saves the state, when what follows
     * gets through it (seccomp_early); a failure is told on the FIFO. */
    const int early = s->seccomp_program && s->seccomp_early;
    const char *early_what = "";
    const int early_r = early ? seccomp_now(s, &early_what) : 0;
    if (s->saved_sync) {
        ssize_t got;
        do
            got = recv(sync, &m, sizeof m, 0);
        while (got < 0 && errno == EINTR);
        if (got != (ssize_t)sizeof m || m.type != GK_MSG_SAVED)
            _exit(GK_EXIT_SETUP);
    }
    (void)prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    /* The parent waits for this before it may exit: had it exited before
     * the signal was cleared, the signal would have killed this process.
     * (Not when SAVED came early: that parent outlives this process.) */
    if (s->saved_sync && !saved_early(s) && gk_send_all(sync, &m, sizeof m) < 0)
        _exit(GK_EXIT_SETUP);

    /* Wait for `start`: opening the FIFO for writing blocks until a reader
     * opens it. The O_PATH descriptor is reopened through the host's /proc
     * (held since the prologue), as the FIFO's host path is no longer
     * reachable and the container may have no /proc of its own. */
    char fdpath[48];
    size_t n = gk_strlcat(fdpath, 0, sizeof fdpath, "self/fd/");
    gk_utoa(fdpath + n, sizeof fdpath - n, (unsigned long)s->exec_fifo_fd);
    int fifo = openat(host_proc, fdpath, O_WRONLY | O_CLOEXEC);
    if (fifo < 0)
        child_fail(sync, GK_STAGE_START_WAIT, errno, "open exec fifo", fdpath, GK_EXIT_SETUP);
    close(s->exec_fifo_fd);
    close(host_proc);
    run_hook_set(fifo, &s->start_hooks);

    if (!early)
        load_seccomp(fifo, s);
    else if (early_r < 0)
        child_fail(fifo, GK_STAGE_SECCOMP, -early_r, early_what, NULL, GK_EXIT_SETUP);
    if (s->flags & GK_SPAWN_INIT)
        gk_become_init(fifo, slave); /* returns in the command's process */
    exec_command(fifo, s, slave);
}

/* ---- the parent side ---------------------------------------------------- */

/* clone3's arguments (struct clone_args of <linux/sched.h>, which clashes
 * with <sched.h>), up to the cgroup field. */
struct gk_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};
#define GK_CLONE_INTO_CGROUP 0x200000000ULL
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* clone, or clone3 into the cgroup when the caller asks and the kernel can
 * (5.7 and later); a kernel without it gets a plain clone. */
static long clone_child(const struct gk_spawn *spec, unsigned long flags)
{
    if (spec->cgroup_joined) {
        *spec->cgroup_joined = 0;
        struct gk_clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = flags | GK_CLONE_INTO_CGROUP;
        args.exit_signal = SIGCHLD;
        args.cgroup = (uint64_t)spec->cgroup_fd;
        long pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid > 0)
            *spec->cgroup_joined = 1;
        if (pid >= 0)
            return pid;
    }
    return syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

typedef void (*child_fn)(const struct gk_spawn *, int);

/* ---- a first process that shares the parent's memory until execve ------ */

/*
 * A clone copies the parent's page tables and write-protects its pages
 * (which every other CPU running one of its threads must hear of), and
 * then each page either process writes is copied on the fault. gocker is a
 * large process for the few pages the child needs; the copy and its faults
 * were a tenth of a start. So, where nothing stands in the way, the first
 * process is cloned with CLONE_VM | CLONE_VFORK, as posix_spawn does, from
 * a thread made for it: that thread sleeps until the child's execve (or
 * exit) and then lets go of its stack and of the caller's description (the
 * `release` the caller gave). The child runs in that thread's TLS (its
 * errno) and on a stack of its own; everything it writes outside them
 * (this file's statics, the description's copy) is its own until then, as
 * only one such child is in flight at a time: another launch meanwhile
 * takes a copy. Its statics are set afresh first (child_reset). What the
 * kernel keeps per memory and not per process: dumpable (the child clears
 * it, the thread puts it back after the execve); a v1 cpuset with other
 * memory nodes rebinds gocker's memory policy too while it shares it.
 *
 * Not for a user namespace (setns into one refuses a process that shares
 * its memory, and a rootless parent must write the maps of a dumpable
 * child), hooks or --init (which fork in the child), a PID namespace to
 * join (its pid_for_children is the thread's), clone3 into a cgroup (the
 * thread could not return from it on the child's stack), or exec.
 */
struct vm_launch {
    struct gk_spawn spec; /* the child's copy of the description */
    child_fn child;
    int sync, other;      /* the child's end of the socket, the parent's */
    unsigned long flags;
    int spread;
    cpu_set_t cpus;
    void *stack;
    size_t stack_size;
    pid_t tid;            /* CLONE_PARENT_SETTID: the child's pid, -1 on failure (atomic) */
    int clone_errno;
    int dumpable;         /* the memory's before the child (PR_GET_DUMPABLE) */
    int refs;             /* the caller's and the thread's (atomic) */
};

/* Set by launch where the description's release went with the child:
 * gk_spawn calls it otherwise. */
static __thread int release_taken;

/* 1 while a child shares the memory (see above). */
static _Atomic int vm_in_flight;

static void vm_done(void) { atomic_store(&vm_in_flight, 0); }

#define VM_STACK_SIZE ((size_t)1 << 20)

static int vm_may_share(const struct gk_spawn *s, unsigned long flags, child_fn child, int pid_ns_fd)
{
    if (!s->release || child != child_main || pid_ns_fd >= 0 || s->cgroup_joined || s->uid_map ||
        (flags & CLONE_NEWUSER) || (s->flags & (GK_SPAWN_USERNS | GK_SPAWN_HOOKS | GK_SPAWN_INIT)) ||
        s->create_hooks.nhooks || s->start_hooks.nhooks || geteuid() != 0 || getenv("GOCKER_ROOTLESS_UID"))
        return 0;
    for (size_t i = 0; i < s->njoins; i++)
        if (s->joins[i].nstype == CLONE_NEWUSER)
            return 0;
    int idle = 0;
    return atomic_compare_exchange_strong(&vm_in_flight, &idle, 1);
}

static void vm_put(struct vm_launch *l)
{
    if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    munmap(l->stack, l->stack_size);
    if (l->spec.release)
        l->spec.release(l->spec.release_ctx);
    free(l);
}

/* The child's first steps, whichever way it was cloned: its mark, the
 * parent's end of the socket closed, its statics afresh, then `child`. */
static void __attribute__((noreturn)) child_begin(const struct gk_spawn *s, child_fn child, int sync, int other)
{
    gk_mark(GK_MARK_CHILD);
    close(other);
    child_reset();
    child(s, sync);
    _exit(GK_EXIT_SETUP);
}

static int vm_child_entry(void *arg)
{
    struct vm_launch *l = arg;
    /* The caller waits for the pid, stored before this runs. */
    syscall(SYS_futex, &l->tid, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    child_begin(&l->spec, l->child, l->sync, l->other);
}

static void *vm_thread(void *arg)
{
    struct vm_launch *l = arg;
    clone_spread = l->spread;
    clone_cpus = l->cpus;
    int pid = clone(vm_child_entry, (char *)l->stack + l->stack_size,
                    (int)(l->flags | CLONE_VM | CLONE_VFORK | CLONE_PARENT_SETTID | SIGCHLD), l, &l->tid);
    /* Here once the child has exec'd or exited (or was never made). */
    if (pid < 0) {
        l->clone_errno = errno;
        __atomic_store_n(&l->tid, -1, __ATOMIC_RELEASE);
    } else {
        /* Dumpable is the memory's: the child made it not (and so does a
         * change of its credentials) for itself, and so for gocker. */
        if (l->dumpable == 1)
            (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        vm_done();
    }
    /* The caller waits for the pid: a child that died before waking it
     * (killed at once) must not leave it waiting. */
    syscall(SYS_futex, &l->tid, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    vm_put(l);
    return NULL;
}

/* Starts the thread that clones the child as above: the launch to wait
 * for (vm_clone_wait), or NULL with errno set (the caller then clones a
 * copy, and the description's release is still the caller's). Called with
 * every signal blocked. */
static struct vm_launch *vm_clone_start(const struct gk_spawn *spec, unsigned long flags, child_fn child,
                                        const int sv[2])
{
    struct vm_launch *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->spec = *spec;
    l->child = child;
    l->sync = sv[1];
    l->other = sv[0];
    l->flags = flags;
    l->spread = clone_spread;
    l->cpus = clone_cpus;
    l->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    l->stack_size = VM_STACK_SIZE;
    l->stack = mmap(NULL, l->stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE,
                    -1, 0);
    if (l->stack == MAP_FAILED) {
        free(l);
        return NULL;
    }
    /* A guard page below it. */
    (void)mprotect(l->stack, 4096, PROT_NONE);
    __atomic_store_n(&l->refs, 2, __ATOMIC_RELEASE);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* The thread, and the child it clones with its CPU set, away from this
     * thread's CPU: the child's wake-up of this thread must not wait for
     * the child to leave it (see clone_spread, which the child takes back
     * at GO). */
    if (l->spread)
        gk_attr_spread(&attr);
    pthread_t t;
    int e = pthread_create(&t, &attr, vm_thread, l);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        munmap(l->stack, l->stack_size);
        free(l);
        errno = e;
        return NULL;
    }
    return l;
}

/* The child's pid once the thread has cloned it, or -1 with errno set (as
 * vm_clone_start's NULL). */
static long vm_clone_wait(struct vm_launch *l)
{
    int pid;
    struct gk_spinner spin = {0};
    while ((pid = __atomic_load_n(&l->tid, __ATOMIC_ACQUIRE)) == 0)
        if (!gk_spin(&spin))
            syscall(SYS_futex, &l->tid, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    if (pid < 0) {
        /* The thread is done with it, and so is the release: not called
         * (the caller's copy path calls it). */
        int err = l->clone_errno;
        l->spec.release = NULL;
        vm_put(l);
        errno = err;
        return -1;
    }
    vm_put(l);
    return pid;
}

/* The parent's side of GK_MSG_HOOKS: the runtime's hooks, then the answer
 * that lets the child go on. 0, or what failed (the caller kills it). */
static int parent_hooks(const struct gk_spawn *spec, int sync, pid_t pid)
{
    int r = spec->run_hooks ? spec->run_hooks(pid, spec->hooks_ctx) : 0;
    if (r != 0)
        return r;
    struct gk_msg m;
    memset(&m, 0, sizeof m);
    m.type = GK_MSG_HOOKS;
    return gk_send_all(sync, &m, sizeof m);
}

/* GK_MSG_SAVED on the sync socket: the state names the child now. */
static int send_saved(int sync)
{
    struct gk_msg m;
    memset(&m, 0, sizeof m);
    m.type = GK_MSG_SAVED;
    return gk_send_all(sync, &m, sizeof m);
}

/* Set in a thread that parked_launch made for one launch. */
static __thread int launch_parked;
static int launch_maybe_parked(const struct gk_spawn *spec, unsigned long flags, child_fn child, int pid_ns_fd,
                               int want_ready, gk_before_go_fn before_go, void *ctx, pid_t *pid_out,
                               int *terminal_fd, struct gk_msg *err);

/*
 * The parent side of gk_spawn and gk_exec: clones `child` with `flags` (in
 * the PID namespace `pid_ns_fd` when >= 0), lets before_go place it, sends
 * GO and reads the reply: a TERMINAL record first when there is a terminal,
 * then READY (`want_ready`) or, for exec, end of file once execve closed the
 * socket. Anything else kills and reaps the child.
 */
static int launch(const struct gk_spawn *spec, unsigned long flags, child_fn child, int pid_ns_fd, int want_ready,
                  gk_before_go_fn before_go, void *ctx, pid_t *pid_out, int *terminal_fd, struct gk_msg *err)
{
    int sv[2];
    memset(err, 0, sizeof *err);
    *terminal_fd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;

    /* The PID namespace is entered for this thread's children only: join
     * it, clone, and put pid_for_children back as it was. */
    int own_pid_ns = -1;
    if (pid_ns_fd >= 0) {
        own_pid_ns = open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
        if (own_pid_ns < 0 || setns(pid_ns_fd, CLONE_NEWPID) < 0) {
            int e = errno;
            if (own_pid_ns >= 0)
                close(own_pid_ns);
            close(sv[0]);
            close(sv[1]);
            return -e;
        }
    }
    clone_spread = want_ready && (spec->flags & GK_SPAWN_LATE_GO) &&
                   sched_getaffinity(0, sizeof clone_cpus, &clone_cpus) == 0 && CPU_COUNT(&clone_cpus) > 1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    gk_mark(GK_MARK_CLONE);
    int shared = vm_may_share(spec, flags, child, pid_ns_fd);
    struct vm_launch *vl = shared ? vm_clone_start(spec, flags, child, sv) : NULL;
    int go_fds[GK_MAX_GO_FDS];
    size_t ngo = 0;
    /* With GK_SPAWN_NET_AT_GO the groups (and the network namespace) are
     * made while that thread clones the child, not after: the child joins
     * them through the files that come with GO, and needs no pid of it. */
    int before_go_done = vl && (spec->flags & GK_SPAWN_NET_AT_GO) && before_go;
    int before_go_ret = 0;
    if (before_go_done) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        before_go_ret = before_go(0, ctx, go_fds, &ngo);
    }
    long pid = vl ? vm_clone_wait(vl) : -1;
    if (pid < 0 && shared) {
        /* No thread to clone from (or clone failed there): a copy then. */
        vm_done();
        shared = 0;
        if (before_go_done)
            pthread_sigmask(SIG_SETMASK, &all, NULL);
    }
    if (!shared) {
        (void)gk_timings_before_copy();
        pid = clone_child(spec, flags);
    }
    if (pid == 0)
        child_begin(spec, child, sv[1], sv[0]);
    int clone_errno = errno;
    if (shared)
        release_taken = 1;
    /* (A shared child starts with its cloning thread's CPUs: these.) */
    if (pid > 0 && clone_spread && !shared) {
        /* Best effort: where it fails, the child runs where it is. */
        cpu_set_t others = clone_cpus;
        int cpu = sched_getcpu();
        if (cpu >= 0 && cpu < CPU_SETSIZE)
            CPU_CLR(cpu, &others);
        if (CPU_COUNT(&others) > 0)
            (void)sched_setaffinity((pid_t)pid, sizeof others, &others);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (own_pid_ns >= 0) {
        /* Every later child of this thread would land in the container.
         * (A parked thread, see parked_launch, makes no other child.) */
        if (setns(own_pid_ns, CLONE_NEWPID) < 0 && !launch_parked)
            abort();
        close(own_pid_ns);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        for (size_t i = 0; i < ngo; i++)
            close(go_fds[i]);
        /* A PID namespace whose init has gone takes no new members. */
        return clone_errno == ENOMEM && pid_ns_fd >= 0 ? -ESRCH : -clone_errno;
    }

    int ret = 0;
    if (spec->uid_map) {
        /* The child's new user namespace gets its maps before it goes on. */
        const char *call = "";
        if ((ret = gk_write_id_maps((pid_t)pid, spec->uid_map, spec->gid_map, &call)) < 0) {
            err->type = GK_MSG_ERROR;
            err->stage = GK_STAGE_CREDENTIALS;
            err->err = -ret;
            gk_strlcat(err->text, 0, sizeof err->text, call);
            goto kill_child;
        }
    }
    if (spec->flags & GK_SPAWN_OOM_SCORE_ADJ) {
        /* By the parent, in the host's user namespace: lowering it needs
         * CAP_SYS_RESOURCE there, which a child in a user namespace of its
         * own no longer has. */
        char text[16];
        size_t n = spec->oom_score_adj < 0 ? gk_strlcat(text, 0, sizeof text, "-") : 0;
        gk_utoa(text + n, sizeof text - n,
                (unsigned long)(spec->oom_score_adj < 0 ? -(long)spec->oom_score_adj : spec->oom_score_adj));
        if ((ret = gk_write_proc((pid_t)pid, "oom_score_adj", text)) < 0) {
            err->type = GK_MSG_ERROR;
            err->stage = GK_STAGE_PROCESS_ATTR;
            err->err = -ret;
            gk_strlcat(err->text, 0, sizeof err->text, "write oom_score_adj");
            goto kill_child;
        }
    }
    if (before_go_done ? (ret = before_go_ret) != 0
                       : before_go && (ret = before_go((pid_t)pid, ctx, go_fds, &ngo)) != 0)
        goto kill_child;
    /* The network namespace, last, is not one of the files to join. */
    size_t net_at_go = (spec->flags & GK_SPAWN_NET_AT_GO) ? 1 : 0;
    if (ngo < net_at_go) {
        ret = -EPROTO;
        goto kill_child;
    }
    struct gk_msg m;
    memset(&m, 0, sizeof m);
    m.type = GK_MSG_GO;
    m.err = (int32_t)(ngo - net_at_go); /* how many files the child must join */
    m.pad = (int32_t)pid;               /* the child's pid as the host sees it */
    ret = gk_send_fds(sv[0], &m, go_fds, ngo);
    for (size_t i = 0; i < ngo; i++)
        close(go_fds[i]);
    ngo = 0;
    /* A child that sets itself up before GO may have failed already: its
     * record, waiting, is the better cause of a failure here. */
    if (ret < 0 || (spec->go_sent && (ret = spec->go_sent((pid_t)pid, spec->go_sent_ctx)) != 0) ||
        (want_ready && spec->saved_sync && saved_early(spec) && (ret = send_saved(sv[0])) < 0)) {
        if (recv(sv[0], &m, sizeof m, MSG_DONTWAIT) == (ssize_t)sizeof m && m.type == GK_MSG_ERROR) {
            *err = m;
            ret = -(m.err ? m.err : EIO);
        }
        goto kill_child;
    }

    int fd = -1;
    ret = gk_recv_fd(sv[0], &m, &fd);
    if (ret == 0 && m.type == GK_MSG_HOOKS && (spec->flags & GK_SPAWN_HOOKS) && want_ready) {
        if ((ret = parent_hooks(spec, sv[0], (pid_t)pid)) != 0)
            goto kill_child;
        ret = gk_recv_fd(sv[0], &m, &fd);
    }
    if (ret == 0 && m.type == GK_MSG_TERMINAL && fd >= 0) {
        *terminal_fd = fd;
        ret = gk_recv_fd(sv[0], &m, &fd);
    }
    if (ret == 0 && fd >= 0)
        close(fd);
    if (want_ready ? (ret == 0 && m.type == GK_MSG_READY) : ret == -EPIPE) {
        if (want_ready && spec->saved_sync)
            *spec->saved_sync = sv[0]; /* for GK_MSG_SAVED */
        else
            close(sv[0]);
        *pid_out = (pid_t)pid;
        return 0;
    }
    if (ret == 0 && m.type == GK_MSG_ERROR) {
        *err = m;
        ret = -(m.err ? m.err : EIO);
    } else if (ret == 0 || ret == -EPIPE) {
        ret = -EPROTO;
    }

kill_child:
    for (size_t i = 0; i < ngo; i++)
        close(go_fds[i]);
    close(sv[0]);
    if (*terminal_fd >= 0) {
        close(*terminal_fd);
        *terminal_fd = -1;
    }
    kill((pid_t)pid, SIGKILL);
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return ret;
}

int gk_spawn(const struct gk_spawn *spec, gk_before_go_fn before_go, void *ctx,
             pid_t *pid_out, int *terminal_fd, struct gk_msg *err)
{
    int pid_ns = (spec->flags & GK_SPAWN_JOIN_PID) ? spec->pid_ns_fd : -1;
    release_taken = 0;
    int r = launch_maybe_parked(spec, spec->clone_flags, child_main, pid_ns, 1, before_go, ctx, pid_out, terminal_fd,
                                err);
    /* A child with a copy of the memory, or none made: the caller's
     * description is read no more. */
    if (!release_taken && spec->release)
        spec->release(spec->release_ctx);
    return r;
}

int gk_send_saved(int sync)
{
    struct gk_msg m;
    int r = send_saved(sync);
    if (r < 0)
        return r;
    /* The child's answer: it has cleared its parent-death signal. */
    if ((r = gk_recv_msg(sync, &m)) < 0)
        return r;
    return m.type == GK_MSG_SAVED ? 0 : -EPROTO;
}

/* ---- a process that joins a running container (exec) ------------------- */

static void __attribute__((noreturn)) exec_child(const struct gk_spawn *s, int sync)
{
    /* In the caller's order: the user namespace first, so that what follows
     * is done with the container's privileges; joining the mount namespace
     * moves root and cwd to the container's root. */
    child_prologue(s, sync, -1);
    write_label(s, sync);
    close(host_proc);
    /* A container kept in the host's mount namespace: its chroot (the
     * root of its first process, open as rootfs_tree). */
    if ((s->flags & GK_SPAWN_CHROOT) && s->rootfs_tree >= 0 &&
        (fchdir(s->rootfs_tree) < 0 || chroot(".") < 0 || chdir("/") < 0))
        child_fail(sync, GK_STAGE_PIVOT_ROOT, errno, "chroot into the container's root", NULL, GK_EXIT_SETUP);
    if ((s->flags & GK_SPAWN_CHROOT) && s->rootfs_tree >= 0)
        close(s->rootfs_tree);

    int slave = child_terminal(s, sync);
    /* Unlike the first process's, an exec's working directory must exist. */
    if (s->cwd && chdir(s->cwd) < 0)
        child_fail(sync, GK_STAGE_CWD, errno, "chdir to", s->cwd, GK_EXIT_SETUP);

    become_process(sync, s, slave);
    (void)prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    load_seccomp(sync, s);
    exec_command(sync, s, slave);
}

/* One launch on a thread of its own, which then stays, parked, until the
 * process ends. Rootless gocker (see rootless.c) may join a container's
 * PID namespace, owned by its user namespace, but not go back to its own,
 * the host's: the clone is made on a thread whose pid_for_children may
 * stay in the container, and which lives on, because the child's
 * parent-death signal follows the thread that cloned it. */
struct parked_job {
    const struct gk_spawn *spec;
    unsigned long flags;
    child_fn child;
    int pid_ns_fd, want_ready;
    gk_before_go_fn before_go;
    void *ctx;
    pid_t *pid_out;
    int *terminal_fd;
    struct gk_msg *err;
    int ret;
    pthread_mutex_t lock;
    pthread_cond_t done;
    int finished;
};

static void *parked_thread(void *arg)
{
    struct parked_job *j = arg;
    launch_parked = 1;
    int r = launch(j->spec, j->flags, j->child, j->pid_ns_fd, j->want_ready, j->before_go, j->ctx, j->pid_out,
                   j->terminal_fd, j->err);
    pthread_mutex_lock(&j->lock);
    j->ret = r;
    j->finished = 1;
    pthread_cond_signal(&j->done);
    pthread_mutex_unlock(&j->lock);
    for (;;)
        pause();
    return NULL;
}

static int launch_maybe_parked(const struct gk_spawn *spec, unsigned long flags, child_fn child, int pid_ns_fd,
                               int want_ready, gk_before_go_fn before_go, void *ctx, pid_t *pid_out,
                               int *terminal_fd, struct gk_msg *err)
{
    if (pid_ns_fd < 0 || !getenv("GOCKER_ROOTLESS_UID"))
        return launch(spec, flags, child, pid_ns_fd, want_ready, before_go, ctx, pid_out, terminal_fd, err);
    struct parked_job j = {spec, flags, child, pid_ns_fd, want_ready, before_go, ctx, pid_out, terminal_fd, err,
                           0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    /* The parked thread takes no signal. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, parked_thread, &j);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0)
        return -e;
    pthread_mutex_lock(&j.lock);
    while (!j.finished)
        pthread_cond_wait(&j.done, &j.lock);
    pthread_mutex_unlock(&j.lock);
    return j.ret;
}

int gk_exec(const struct gk_spawn *spec, int pid_ns_fd, gk_before_go_fn before_go, void *ctx,
            pid_t *pid_out, int *terminal_fd, struct gk_msg *err)
{
    return launch_maybe_parked(spec, 0, exec_child, pid_ns_fd, 0, before_go, ctx, pid_out, terminal_fd, err);
}
