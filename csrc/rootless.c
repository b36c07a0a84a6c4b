/*
 * Rootless gocker. Started by an ordinary user, gocker runs in a user
 * namespace of that user's own, in which the user is root: its root is the
 * user, and the ids of the user's ranges in /etc/subuid and /etc/subgid
 * (mapped by Debian's setuid newuidmap and newgidmap) follow. Without a
 * range the namespace maps the user alone, to root.
 *
 * The namespace, and a mount namespace it owns, are held by one small
 * process, "gocker-pause", that every later gocker of the same user joins,
 * so that a container started by one command can be reached by the next
 * (exec, stop, logs) and newuidmap runs once, not on every start. Its pid
 * is kept in the user's runtime directory ($XDG_RUNTIME_DIR/gocker, or
 * /tmp/gocker-UID when that is unset), under a lock, so that two gockers
 * started at once make one.
 *
 * This runs before main, while the process still has one thread (setns
 * into a user namespace refuses a process with more), before any Swift
 * code. It does nothing for root. It leaves GOCKER_ROOTLESS_UID,
 * GOCKER_ROOTLESS_GID and GOCKER_ROOTLESS_DIR in the environment for the
 * Swift side and for the gocker processes this one starts (which are root
 * in the namespace already).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define GK_MAX_RANGES 8

struct range {
    unsigned long start, count;
};

static int exit_status = 125;
/* What this process joined (-1: nothing): see gk_rootless_export. */
static long joined_uid = -1, joined_gid = -1;
static char joined_dir[PATH_MAX];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    dprintf(2, "gocker: error: rootless: %s\n", text);
    _exit(exit_status);
}

/* The name of user `uid` in /etc/passwd (a static binary has no NSS). */
static int user_name(uid_t uid, char *name, size_t size)
{
    static char text[1 << 17];
    if (gk_read_file("/etc/passwd", text, sizeof text) < 0)
        return -1;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *fields[4] = {0};
        char *p = line;
        for (int i = 0; i < 4 && p; i++) {
            fields[i] = p;
            p = strchr(p, ':');
            if (p)
                *p++ = '\0';
        }
        if (!fields[2] || !fields[0])
            continue;
        char *end;
        unsigned long id = strtoul(fields[2], &end, 10);
        if (*end == '\0' && end != fields[2] && id == uid && strlen(fields[0]) < size) {
            strcpy(name, fields[0]);
            return 0;
        }
    }
    return -1;
}

/* The ranges of `name` (or of the id itself) in /etc/subuid or
 * /etc/subgid: how many (0: none, or no such file). */
static int sub_ranges(const char *file, const char *name, unsigned long id, struct range *out)
{
    static char text[1 << 20];
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%lu", id);
    long r = gk_read_file(file, text, sizeof text);
    if (r == -EFBIG)
        die("%s is larger than %zu bytes", file, sizeof text - 1);
    if (r <= 0)
        return 0;
    int n = 0;
    for (char *line = text, *next; line && *line && n < GK_MAX_RANGES; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *a = strchr(line, ':');
        char *b = a ? strchr(a + 1, ':') : NULL;
        if (!b)
            continue;
        *a = '\0';
        if (strcmp(line, idtext) != 0 && (!name[0] || strcmp(line, name) != 0))
            continue;
        char *e1, *e2;
        unsigned long start = strtoul(a + 1, &e1, 10), count = strtoul(b + 1, &e2, 10);
        if (e1 != b || e2 == b + 1 || count == 0)
            continue;
        out[n].start = start;
        out[n].count = count;
        n++;
    }
    return n;
}

/* `name` in $PATH (absolute entries only; unset: /usr/bin:/bin), as a
 * shell finds it. */
static const char *find_helper(const char *name, char *path, size_t size)
{
    const char *list = getenv("PATH");
    if (!list)
        list = "/usr/bin:/bin";
    while (*list) {
        const char *end = strchr(list, ':');
        size_t n = end ? (size_t)(end - list) : strlen(list);
        if (n > 0 && list[0] == '/' && n + strlen(name) + 2 <= size) {
            snprintf(path, size, "%.*s/%s", (int)n, list, name);
            if (access(path, X_OK) == 0)
                return path;
        }
        list += n + (end ? 1 : 0);
    }
    return NULL;
}

/* `newuidmap PID 0 ID 1 1 START COUNT ...`: the id to root, the ranges
 * after it. Dies with the helper's own words when it fails. */
static void run_map_helper(const char *helper, pid_t pid, unsigned long id, const struct range *r, int n)
{
    char args[GK_MAX_RANGES * 3 + 6][24];
    char *argv[GK_MAX_RANGES * 3 + 8];
    int c = 0;
    argv[c++] = (char *)helper;
    snprintf(args[0], sizeof args[0], "%d", (int)pid);
    argv[c++] = args[0];
    argv[c++] = "0";
    snprintf(args[1], sizeof args[1], "%lu", id);
    argv[c++] = args[1];
    argv[c++] = "1";
    unsigned long inside = 1;
    for (int i = 0; i < n; i++) {
        snprintf(args[2 + 3 * i], 24, "%lu", inside);
        snprintf(args[3 + 3 * i], 24, "%lu", r[i].start);
        snprintf(args[4 + 3 * i], 24, "%lu", r[i].count);
        argv[c++] = args[2 + 3 * i];
        argv[c++] = args[3 + 3 * i];
        argv[c++] = args[4 + 3 * i];
        inside += r[i].count;
    }
    argv[c] = NULL;
    int err[2];
    if (pipe2(err, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    pid_t h = fork();
    if (h < 0)
        die("fork: %s", strerror(errno));
    if (h == 0) {
        dup2(err[1], 2);
        execv(helper, argv);
        dprintf(2, "%s", strerror(errno));
        _exit(127);
    }
    close(err[1]);
    char text[512];
    size_t len = 0;
    for (;;) {
        ssize_t r2 = read(err[0], text + len, sizeof text - 1 - len);
        if (r2 < 0 && errno == EINTR)
            continue;
        if (r2 <= 0 || (len += (size_t)r2) >= sizeof text - 1)
            break;
    }
    close(err[0]);
    text[len] = '\0';
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    for (char *p = text; *p; p++)
        if (*p == '\n')
            *p = ' ';
    int status;
    while (waitpid(h, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("%s failed: %s", helper, len ? text : "no reason given");
}

/* The pause process: holds the namespaces until it is killed. */
static void be_pause(void)
{
    setsid();
    if (chdir("/") < 0)
        _exit(1);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++)
        dup2(null, fd);
    syscall(SYS_close_range, 3, ~0U, 0);
    prctl(PR_SET_NAME, "gocker-pause", 0, 0, 0);
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGTERM);
    sigdelset(&all, SIGKILL);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGTERM, SIG_DFL);
    for (;;)
        pause();
}

static void write_map(pid_t pid, const char *file, const char *text)
{
    int r = gk_write_proc(pid, file, text);
    if (r < 0)
        die("write %s: %s", file, strerror(-r));
}

/* Makes the pause process: returns its pid once its namespaces are mapped. */
static pid_t make_pause(uid_t uid, gid_t gid)
{
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    pid_t mid = fork();
    if (mid < 0)
        die("fork: %s", strerror(errno));
    if (mid == 0) {
        /* Forked twice, so that the pause is no child of this gocker. */
        pid_t p = fork();
        if (p != 0)
            _exit(p < 0 ? 1 : 0);
        close(up[0]);
        close(down[1]);
        int err = 0;
        if (unshare(CLONE_NEWUSER) < 0)
            err = errno;
        pid_t self = getpid();
        int msg[2] = {err, (int)self};
        (void)!write(up[1], msg, sizeof msg);
        if (err)
            _exit(1);
        char go;
        if (read(down[0], &go, 1) != 1 || go != 'g')
            _exit(1);
        /* Root of the namespace now: its own mount namespace, owned by it.
         * Named before it says so: the name is what later gockers check. */
        if (unshare(CLONE_NEWNS) < 0)
            err = errno;
        prctl(PR_SET_NAME, "gocker-pause", 0, 0, 0);
        (void)!write(up[1], &err, sizeof err);
        if (err)
            _exit(1);
        close(up[1]);
        close(down[0]);
        be_pause();
    }
    close(up[1]);
    close(down[0]);
    int status;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
        ;
    int msg[2];
    if (read(up[0], msg, sizeof msg) != sizeof msg)
        die("the namespace's process did not start");
    if (msg[0])
        die("unshare a user namespace: %s%s", strerror(msg[0]),
            msg[0] == EPERM || msg[0] == ENOSPC ? " (user namespaces are off on this host: see "
                                                  "/proc/sys/user/max_user_namespaces and "
                                                  "kernel.unprivileged_userns_clone)"
                                                : "");
    pid_t pid = (pid_t)msg[1];

    char name[256] = "";
    (void)user_name(uid, name, sizeof name);
    struct range uids[GK_MAX_RANGES], gids[GK_MAX_RANGES];
    int nu = sub_ranges("/etc/subuid", name, uid, uids);
    int ng = sub_ranges("/etc/subgid", name, gid, gids);
    if (nu > 0 && ng > 0) {
        char a[PATH_MAX], b[PATH_MAX];
        const char *newuidmap = find_helper("newuidmap", a, sizeof a);
        const char *newgidmap = find_helper("newgidmap", b, sizeof b);
        if (!newuidmap || !newgidmap) {
            kill(pid, SIGKILL);
            die("%s has ranges in /etc/subuid and /etc/subgid, but newuidmap and newgidmap are not "
                "installed (Debian's uidmap package)", name[0] ? name : "this user");
        }
        run_map_helper(newuidmap, pid, uid, uids, nu);
        run_map_helper(newgidmap, pid, gid, gids, ng);
    } else {
        char map[64];
        dprintf(2, "gocker: note: %s has no range in /etc/subuid and /etc/subgid: containers "
                   "map your own ids alone, to root; files owned by anyone else cannot be "
                   "stored, and chown to other ids fails in them\n",
                name[0] ? name : "this user");
        write_map(pid, "setgroups", "deny");
        snprintf(map, sizeof map, "0 %lu 1\n", (unsigned long)uid);
        write_map(pid, "uid_map", map);
        snprintf(map, sizeof map, "0 %lu 1\n", (unsigned long)gid);
        write_map(pid, "gid_map", map);
    }
    (void)!write(down[1], "g", 1);
    close(down[1]);
    int err = -1;
    if (read(up[0], &err, sizeof err) != sizeof err || err) {
        kill(pid, SIGKILL);
        die("unshare a mount namespace: %s", err > 0 ? strerror(err) : "the process went away");
    }
    close(up[0]);
    return pid;
}

/* A pidfd of the pause process `pid` started at `start` (its start time in
 * /proc/PID/stat) if it is one of this user's, or -1 (not that process, or
 * gone). The pidfd is taken first and the process checked after: a pid
 * used again before is caught by its start time, a process gone after
 * makes the join fail. */
static int open_pause(pid_t pid, unsigned long long start, uid_t uid)
{
    char path[64], comm[32];
    struct stat st;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    int ok = stat(path, &st) == 0 && st.st_uid == uid;
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    ok = ok && gk_read_file(path, comm, sizeof comm) > 0 && strcmp(comm, "gocker-pause\n") == 0;
    ok = ok && start != 0 && gk_process_start_time(pid) == start;
    if (!ok) {
        close(pidfd);
        return -1;
    }
    return pidfd;
}

/* The user's runtime directory for gocker, made 0700 when missing, and
 * refused unless it is a directory of this user's that no one else can
 * reach. */
static void runtime_dir(uid_t uid, char *dir, size_t size)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/')
        snprintf(dir, size, "%s/gocker", xdg);
    else
        snprintf(dir, size, "/tmp/gocker-%lu", (unsigned long)uid);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        die("mkdir %s: %s", dir, strerror(errno));
    struct stat st;
    if (lstat(dir, &st) < 0)
        die("stat %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077))
        die("%s is not a directory of this user's that only it can reach (0700)", dir);
}

__attribute__((constructor)) static void gk_rootless_enter(int argc, char **argv)
{
    uid_t uid = getuid();
    if (uid == 0) {
        /* The host's root given a rootless gocker's environment (sudo -E):
         * not in any namespace of a user's, it is root as ever. */
        char map[64];
        if (getenv("GOCKER_ROOTLESS_UID") && gk_read_file("/proc/self/uid_map", map, sizeof map) > 0) {
            unsigned long a = 1, b = 1, n = 0;
            if (sscanf(map, "%lu %lu %lu", &a, &b, &n) == 3 && a == 0 && b == 0 && n == 4294967295UL) {
                unsetenv("GOCKER_ROOTLESS_UID");
                unsetenv("GOCKER_ROOTLESS_GID");
                unsetenv("GOCKER_ROOTLESS_DIR");
            }
        }
        return;
    }
    const char *self = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
    self = self ? self + 1 : (argc > 0 && argv[0] ? argv[0] : "");
    /* Through the OCI front door, failures exit 1 as runc's. */
    if (strcmp(self, "gocker-oci") == 0 || (argc > 1 && strcmp(argv[1], "oci") == 0))
        exit_status = 1;
    /* Not in the test runner, which links this code too. */
    size_t len = strlen(self);
    if (len > 7 && strcmp(self + len - 7, ".xctest") == 0)
        return;
    /* The version needs no namespace (and is told where user namespaces
     * are off). Help goes on: it shows the user's default roots. */
    if (argc == 2 && strcmp(argv[1], "--version") == 0)
        return;
    gid_t gid = getgid();
    char dir[PATH_MAX - 32], path[PATH_MAX];
    runtime_dir(uid, dir, sizeof dir);

    snprintf(path, sizeof path, "%s/pause.lock", dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0)
        die("open %s: %s", path, strerror(errno));
    while (flock(lock, LOCK_EX) < 0)
        if (errno != EINTR)
            die("lock %s: %s", path, strerror(errno));

    /* pause.pid: "PID START-TIME". */
    char text[64];
    snprintf(path, sizeof path, "%s/pause.pid", dir);
    long pid = 0;
    unsigned long long start = 0;
    if (gk_read_file(path, text, sizeof text) > 0) {
        char *end;
        pid = strtol(text, &end, 10);
        start = strtoull(end, NULL, 10);
    }
    int pidfd = pid > 0 ? open_pause((pid_t)pid, start, uid) : -1;
    if (pidfd < 0) {
        pid = make_pause(uid, gid);
        start = gk_process_start_time((pid_t)pid);
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/pause.pid.tmp", dir);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            die("open %s: %s", tmp, strerror(errno));
        dprintf(fd, "%ld %llu\n", pid, start);
        if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0)
            die("write %s: %s", path, strerror(errno));
        if ((pidfd = open_pause((pid_t)pid, start, uid)) < 0)
            die("the namespace's process %ld went away", pid);
    }
    close(lock);

    char cwd[PATH_MAX];
    int have_cwd = getcwd(cwd, sizeof cwd) != NULL;
    /* Both at once, through the pidfd (Linux 5.8): the process checked. */
    if (setns(pidfd, CLONE_NEWUSER | CLONE_NEWNS) < 0)
        die("join the namespaces of process %ld: %s", pid, strerror(errno));
    close(pidfd);
    /* Joining a mount namespace moves to its root: back to where we were. */
    if (have_cwd && chdir(cwd) < 0)
        die("chdir %s: %s", cwd, strerror(errno));

    /* Kept here, and put in the environment only from main
     * (gk_rootless_export): a static Swift binary finds its arguments
     * through the environment's original place, which setenv moves. */
    joined_uid = (long)uid;
    joined_gid = (long)gid;
    snprintf(joined_dir, sizeof joined_dir, "%s", dir);
}

int gk_rootless_state(unsigned int *uid, unsigned int *gid, const char **dir)
{
    if (joined_uid < 0)
        return 0;
    *uid = (unsigned int)joined_uid;
    *gid = (unsigned int)joined_gid;
    *dir = joined_dir;
    return 1;
}

void gk_rootless_export(void)
{
    char text[32];
    if (joined_uid < 0)
        return;
    snprintf(text, sizeof text, "%ld", joined_uid);
    setenv("GOCKER_ROOTLESS_UID", text, 1);
    snprintf(text, sizeof text, "%ld", joined_gid);
    setenv("GOCKER_ROOTLESS_GID", text, 1);
    setenv("GOCKER_ROOTLESS_DIR", joined_dir, 1);
}
