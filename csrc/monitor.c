/*
 * The monitor of a detached container: a small process that outlives the
 * gocker command that started the container.
 *
 * It is the gocker binary run under the name "gocker-monitor"; a
 * constructor takes over before any Swift code runs, so the monitor costs
 * only what this file touches. Its command line:
 *
 *   gocker-monitor LOG MAX_BYTES REPORT_FD TERMINAL [--state FILE] --start ARGV... --exited ARGV...
 *
 * It becomes a session leader and a child subreaper, then runs the start
 * command (gocker itself, which creates and starts the container and exits:
 * the container is reparented to the monitor) with the container's stdout
 * and stderr on pipes and REPORT_FD passed on for the first start only. With
 * TERMINAL "tty" the container has a pty instead: the start command gets
 * `--console-fd N`, one end of a socketpair, and sends the pty master there
 * (a GK_MSG_TERMINAL record); the monitor keeps the master open and logs
 * what comes out of it as stdout. It
 * writes every line the container prints to LOG as docker's json-file lines
 * ({"log":"...","stream":"stdout","time":"..."}), keeping LOG under
 * MAX_BYTES by rotating it to LOG.1. When the container ends it runs the
 * exited command with the wait status appended; that command records the
 * exit and answers with its exit status: GK_MONITOR_RESTART to start again,
 * anything else to stop monitoring. With `--state FILE` (the container's
 * runtime state) the container is the process FILE names once the start
 * succeeded, and any other child left to the monitor is only reaped.
 */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t run(char **argv, int out, int err, int keep_fd, int keep_fd2)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0)
        dup2(null, 0);
    if (out >= 0)
        dup2(out, 1);
    if (err >= 0)
        dup2(err, 2);
    if (keep_fd >= 0)
        fcntl(keep_fd, F_SETFD, 0);
    if (keep_fd2 >= 0)
        fcntl(keep_fd2, F_SETFD, 0);
    execv("/proc/self/exe", argv);
    _exit(127);
}

static int wait_for(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

/* The container's pid from its state file (`"pid":N`), or 0. */
static pid_t state_pid(const char *path)
{
    char buf[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strstr(buf, "\"pid\"");
    if (!p)
        return 0;
    p += 5;
    while (*p == ' ' || *p == ':')
        p++;
    long v = strtol(p, NULL, 10);
    return v > 0 ? (pid_t)v : 0;
}

static int monitor_main(int argc, char **argv)
{
    if (argc < 8)
        return 2;
    struct gk_log l = {.path = argv[1], .max = strtoull(argv[2], NULL, 10)};
    int report = atoi(argv[3]);
    int terminal = strcmp(argv[4], "tty") == 0;
    char **start = NULL, **exited = NULL;
    const char *state = NULL;
    int start_at = -1, exited_at = -1;
    for (int i = 5; i < argc; i++) {
        if (start_at < 0 && strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            state = argv[++i];
        } else if (strcmp(argv[i], "--start") == 0) {
            start = &argv[i + 1];
            start_at = i;
        } else if (strcmp(argv[i], "--exited") == 0) {
            exited = &argv[i + 1];
            exited_at = i;
        }
    }
    if (!start || !exited || exited_at < start_at)
        return 2;
    argv[exited_at] = NULL; /* ends the start command's argv */
    /* The start command, with `--console-fd N` before its last argument
     * (the container's id) when there is a terminal. */
    int nstart = exited_at - start_at - 1;
    if (nstart < 1)
        return 2;
    char *start_argv[nstart + 3];
    char console_text[16];
    int console[2] = {-1, -1};
    for (int i = 0; i < nstart - 1; i++)
        start_argv[i] = start[i];
    if (terminal) {
        start_argv[nstart - 1] = "--console-fd";
        start_argv[nstart] = console_text;
        start_argv[nstart + 1] = start[nstart - 1];
        start_argv[nstart + 2] = NULL;
    } else {
        start_argv[nstart - 1] = start[nstart - 1];
        start_argv[nstart] = NULL;
    }
    int nexited = argc - exited_at - 1;
    char *exited_argv[nexited + 2];
    for (int i = 0; i < nexited; i++)
        exited_argv[i] = exited[i];
    char status_text[16];
    exited_argv[nexited] = status_text;
    exited_argv[nexited + 1] = NULL;

    /* Hold nothing of whoever started us but the report pipe: a descriptor
     * kept open here would tell its owner that gocker is still running. */
    if (report > 3)
        syscall(SYS_close_range, 3, (unsigned int)report - 1, 0);
    syscall(SYS_close_range, report >= 3 ? (unsigned int)report + 1 : 3, ~0U, 0);
    setsid();
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_NAME, "gocker-monitor", 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    gk_log_open(&l);
    if (terminal) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console) < 0)
            return 1;
        snprintf(console_text, sizeof console_text, "%d", console[1]);
    }

    for (;;) {
        int o[2], e[2];
        if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
            return 1;
        pid_t starter = run(start_argv, o[1], e[1], report, console[1]);
        close(o[1]);
        close(e[1]);
        if (report >= 0) {
            close(report); /* only the first start reports to the gocker that asked */
            report = -1;
        }
        /* stdout, stderr and, once the start command sends it, the pty master. */
        struct gk_log_stream s[3] = {{.fd = o[0], .name = "stdout", .copy_to = -1},
                                     {.fd = e[0], .name = "stderr", .copy_to = -1},
                                     {.fd = -1, .name = "stdout", .copy_to = -1}};
        int open_streams = 2, start_status = -1, container_status = -1;
        int starter_done = 0, container_done = 0;
        /* With --state, the container is the process its state names once
         * the start has succeeded: another child (a network helper such as
         * slirp4netns, left to this subreaper by the start command) is
         * reaped and passed over. Children reaped before that are kept to
         * be matched then. */
        pid_t container = 0;
        pid_t others[16];
        int other_status[16], nothers = 0;
        while (!(starter_done && (container_done || start_status != 0) && open_streams == 0)) {
            struct pollfd p[4] = {{.fd = s[0].fd, .events = POLLIN}, {.fd = s[1].fd, .events = POLLIN},
                                  {.fd = s[2].fd, .events = POLLIN}, {.fd = s[2].fd < 0 ? console[0] : -1, .events = POLLIN}};
            int r = poll(p, 4, open_streams ? 200 : 50);
            for (int i = 0; i < 3 && r > 0; i++) {
                if (s[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) && !gk_log_read(&s[i], &l)) {
                    close(s[i].fd);
                    s[i].fd = -1;
                    open_streams--;
                }
            }
            if (r > 0 && (p[3].revents & POLLIN)) {
                struct gk_msg m;
                int fd = -1;
                if (gk_recv_fd(console[0], &m, &fd) == 0 && fd >= 0) {
                    s[2].fd = fd;
                    s[2].len = 0;
                    open_streams++;
                }
            }
            int status;
            pid_t w;
            while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
                if (w == starter) {
                    starter_done = 1;
                    start_status = status;
                    if (state && status == 0 && (container = state_pid(state)) > 0) {
                        for (int i = 0; i < nothers; i++) {
                            if (others[i] == container) {
                                container_done = 1;
                                container_status = other_status[i];
                            }
                        }
                    }
                } else if (!state || container == w || (starter_done && container == 0)) {
                    container_done = 1;
                    container_status = status;
                } else if (!starter_done && nothers < 16) {
                    others[nothers] = w;
                    other_status[nothers++] = status;
                }
            }
            if (starter_done && !container_done && start_status == 0 && container > 0 && kill(container, 0) < 0 &&
                errno == ESRCH) {
                container_done = 1; /* reaped by another: its status cannot be known */
            }
            if (w < 0 && errno == ECHILD && starter_done && !container_done && start_status == 0) {
                container_done = 1; /* it ended before we could see it: nothing to reap */
            }
        }
        if (start_status != 0)
            return 1; /* the start failed and said so to whoever asked */
        /* -1: the container ended unseen (its status cannot be known). */
        snprintf(status_text, sizeof status_text, "%d", container_status);
        pid_t hook = run(exited_argv, -1, -1, -1, -1);
        int hs = wait_for(hook);
        if (!(WIFEXITED(hs) && WEXITSTATUS(hs) == GK_MONITOR_RESTART))
            return 0;
    }
}

/* Runs before main: as "gocker-monitor" the process never reaches Swift. */
__attribute__((constructor)) static void gk_monitor_entry(int argc, char **argv)
{
    if (argc < 1 || !argv || !argv[0])
        return;
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp(base, "gocker-monitor") == 0)
        _exit(monitor_main(argc, argv));
}
