/* The parent's side after READY: starting through the exec FIFO, waiting for
 * a foreground container while forwarding signals, and process identity. */
#include "gocker_core.h"
#include "internal.h"
#include "gocker_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reads the state letter and start time of `pid` from /proc/PID/stat.
 * Returns 0, or -errno (-ENOENT when there is no such process). */
static int proc_stat(pid_t pid, char *state, unsigned long long *start)
{
    char path[48];
    size_t n = gk_strlcat(path, 0, sizeof path, "/proc/");
    gk_utoa(path + n, sizeof path - n, (unsigned long)pid);
    n = strlen(path);
    gk_strlcat(path, n, sizeof path, "/stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[1024];
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return -EIO;
    buf[len] = '\0';
    /* The command name may hold spaces and parentheses: parse after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -EIO;
    p += 2;
    *state = *p;
    /* Field 3 is the state; the start time is field 22. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EIO;
        p++;
    }
    unsigned long long v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (unsigned long long)(*p++ - '0');
    *start = v;
    return 0;
}

unsigned long long gk_process_start_time(pid_t pid)
{
    char state;
    unsigned long long start;
    if (proc_stat(pid, &state, &start) < 0 || state == 'Z' || state == 'X')
        return 0;
    return start;
}

int gk_start_wait(const char *fifo_path, pid_t pid, struct gk_msg *err)
{
    memset(err, 0, sizeof *err);
    /* Non-blocking, so that a container that died before reaching its open
     * cannot leave us waiting forever. */
    int fd = open(fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return gk_start_wait_fd(fd, pid, err);
}

int gk_start_wait_fd(int fd, pid_t pid, struct gk_msg *err)
{
    memset(err, 0, sizeof *err);
    int ret;
    struct gk_spinner spin = {0};
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        /* The exec is due soon: spun for first (see gk_spin). */
        int r = poll(&p, 1, 0);
        if (r == 0 && gk_spin(&spin))
            continue;
        if (r == 0)
            r = poll(&p, 1, 50);
        if (r < 0 && errno != EINTR) {
            ret = -errno;
            break;
        }
        if (r > 0 && (p.revents & POLLIN)) {
            ssize_t n = read(fd, err, sizeof *err);
            if (n == (ssize_t)sizeof *err && err->type == GK_MSG_ERROR) {
                ret = -EIO;
                break;
            }
            if (n == 0) {
                ret = 0;
                break;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            ret = -EPROTO;
            break;
        }
        if (r > 0 && (p.revents & (POLLHUP | POLLERR))) {
            ret = 0; /* the write end closed on exec, with nothing said */
            break;
        }
        if (r == 0 && gk_process_start_time(pid) == 0) {
            ret = -ESRCH;
            break;
        }
    }
    close(fd);
    return ret;
}

static void forward_set(sigset_t *set)
{
    sigemptyset(set);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(set, sigs[i]);
}

int gk_forward_block(void)
{
    sigset_t set;
    forward_set(&set);
    int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return r ? -r : 0;
}

int gk_wait_forward(pid_t pid)
{
    sigset_t set;
    forward_set(&set);
    struct gk_spinner spin = {0};
    const struct timespec now = {0, 0};
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        if (w < 0 && errno != EINTR)
            return -errno;
        siginfo_t info;
        /* A short-lived process's exit: spun for first (see gk_spin),
         * forwarding what comes meanwhile. */
        int spinning = gk_spin(&spin);
        int sig = spinning ? sigtimedwait(&set, &info, &now) : sigwaitinfo(&set, &info);
        if (sig < 0 && spinning && errno == EAGAIN)
            continue;
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (sig != SIGCHLD)
            (void)kill(pid, sig);
    }
}

int gk_wait_logged(pid_t pid, int out_r, int err_r, int out_fd, int err_fd, const char *log_path,
                   unsigned long long log_max)
{
    sigset_t set;
    forward_set(&set);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        return -errno;
    static struct gk_log_stream streams[2];
    struct gk_log log = {.path = log_path, .max = log_max};
    gk_log_open(&log);
    streams[0].fd = out_r;
    streams[0].name = "stdout";
    streams[0].copy_to = out_fd;
    streams[0].len = 0;
    streams[1].fd = err_r;
    streams[1].name = "stderr";
    streams[1].copy_to = err_fd;
    streams[1].len = 0;
    int open_streams = 2, status = -1, exited = 0;
    while (!exited || open_streams > 0) {
        struct pollfd p[3] = {
            {.fd = sfd, .events = POLLIN},
            {.fd = streams[0].fd, .events = POLLIN},
            {.fd = streams[1].fd, .events = POLLIN},
        };
        if (poll(p, 3, exited ? 100 : -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si && si.ssi_signo != SIGCHLD)
                (void)kill(pid, (int)si.ssi_signo);
        }
        for (int i = 0; i < 2; i++) {
            if (streams[i].fd >= 0 && (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) &&
                !gk_log_read(&streams[i], &log)) {
                close(streams[i].fd);
                streams[i].fd = -1;
                open_streams--;
            }
        }
        if (!exited) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                status = st;
                exited = 1;
            }
        } else if (open_streams > 0) {
            /* Ended, but something in it still holds the pipes: stop after what is there. */
            int any = 0;
            for (int i = 0; i < 2; i++)
                any |= streams[i].fd >= 0 && (p[i + 1].revents & POLLIN);
            if (!any)
                break;
        }
    }
    for (int i = 0; i < 2; i++)
        if (streams[i].fd >= 0)
            close(streams[i].fd);
    if (log.fd >= 0)
        close(log.fd);
    close(sfd);
    return status;
}
