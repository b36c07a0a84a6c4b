/* Terminals: the child opens a pty from the container's own devpts instance
 * and sends the master to the parent; the parent relays it to its own
 * terminal. */
#include "gocker_core.h"
#include "internal.h"
#include "gocker_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* ---- child side (async-signal-safe) ---- */

int gk_open_pty(int *master, int *slave)
{
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return -errno;
    int unlock = 0;
    unsigned int n;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) {
        int e = errno;
        close(m);
        return -e;
    }
    /* The slave through the master itself: a path in the container's /dev
     * could have been replaced by the container. Kernels before 4.13 lack
     * TIOCGPTPEER; there the path is all there is. */
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0 && (errno == EINVAL || errno == ENOTTY)) {
        char path[32];
        size_t l = gk_strlcat(path, 0, sizeof path, "/dev/pts/");
        gk_utoa(path + l, sizeof path - l, n);
        s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    }
    if (s < 0) {
        int e = errno;
        close(m);
        return -e;
    }
    *master = m;
    *slave = s;
    return 0;
}

/* Sends `len` bytes of `data` with the `n` descriptors `fds` attached as
 * SCM_RIGHTS (none: a plain record). */
static int send_with_fds(int sock, const void *data, size_t len, const int *fds, size_t n)
{
    if (n > GK_MAX_GO_FDS)
        return -E2BIG;
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * GK_MAX_GO_FDS)];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

int gk_send_fds(int sock, const struct gk_msg *m, const int *fds, size_t n)
{
    return send_with_fds(sock, m, sizeof *m, fds, n);
}

int gk_send_fd(int sock, int fd)
{
    struct gk_msg m;
    memset(&m, 0, sizeof m);
    m.type = GK_MSG_TERMINAL;
    return send_with_fds(sock, &m, sizeof m, &fd, 1);
}

int gk_take_terminal(int slave)
{
    if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
        return -errno;
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            return -errno;
    if (slave > 2)
        close(slave);
    return 0;
}

/* ---- parent side ---- */

int gk_recv_fds(int sock, struct gk_msg *m, int *fds, size_t max)
{
    if (max > GK_MAX_GO_FDS)
        max = GK_MAX_GO_FDS;
    struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
    union {
        char buf[CMSG_SPACE(sizeof(int) * GK_MAX_GO_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    /* ECONNRESET: the peer closed with our record unread (a child that
     * failed before reading GO); what it sent is still queued behind it.
     * The record is due soon: spun for first (see gk_spin). */
    struct gk_spinner spin = {0};
    int flags = MSG_CMSG_CLOEXEC | MSG_DONTWAIT;
    while ((n = recvmsg(sock, &msg, flags)) < 0) {
        if (errno == EAGAIN && (flags & MSG_DONTWAIT)) {
            if (!gk_spin(&spin))
                flags &= ~MSG_DONTWAIT;
            msg.msg_controllen = sizeof u.buf;
            continue;
        }
        if (errno != EINTR && errno != ECONNRESET)
            return -errno;
    }
    size_t got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got < max)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if (n == 0 || n != (ssize_t)sizeof *m || (msg.msg_flags & MSG_CTRUNC)) {
        for (size_t i = 0; i < got; i++)
            close(fds[i]);
        return n == 0 ? -EPIPE : (msg.msg_flags & MSG_CTRUNC) ? -EMSGSIZE : -EPROTO;
    }
    return (int)got;
}

int gk_recv_fd(int sock, struct gk_msg *m, int *fd)
{
    int got = gk_recv_fds(sock, m, fd, 1);
    if (got < 0)
        return got;
    if (got == 0)
        *fd = -1;
    return 0;
}

size_t gk_termios_size(void) { return sizeof(struct termios); }

int gk_term_raw(int fd, void *saved)
{
    struct termios t;
    if (tcgetattr(fd, &t) < 0)
        return -errno;
    memcpy(saved, &t, sizeof t);
    cfmakeraw(&t);
    /* Keep output processing off but let the host still see our writes. */
    if (tcsetattr(fd, TCSANOW, &t) < 0)
        return -errno;
    return 0;
}

int gk_term_restore(int fd, const void *saved)
{
    struct termios t;
    memcpy(&t, saved, sizeof t);
    return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

int gk_term_columns(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
        return 0;
    return ws.ws_col;
}

int gk_copy_winsize(int from, int to)
{
    struct winsize ws;
    if (ioctl(from, TIOCGWINSZ, &ws) < 0)
        return -errno;
    return ioctl(to, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copies what the master has to `out_fd`, and logs it when `l` is set.
 * Returns 0 once every slave is closed. */
static int relay_out(int master, int out_fd, struct gk_log_stream *s, struct gk_log *l, char *buf, size_t size)
{
    if (l)
        return gk_log_read(s, l); /* s reads the master and copies to out_fd */
    ssize_t n = read(master, buf, size);
    if (n > 0) {
        (void)write_all(out_fd, buf, (size_t)n);
        return 1;
    }
    return n < 0 && (errno == EINTR || errno == EAGAIN);
}

int gk_relay_wait(pid_t pid, int master, int in_fd, int out_fd, int winsize_fd, const char *log_path,
                  unsigned long long log_max)
{
    sigset_t set;
    sigemptyset(&set);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        return -errno;
    static struct gk_log_stream stream;
    struct gk_log log = {.path = log_path, .max = log_max, .fd = -1};
    struct gk_log *l = NULL;
    if (log_path) {
        gk_log_open(&log);
        stream = (struct gk_log_stream){.fd = master, .name = "stdout", .copy_to = out_fd};
        l = &log;
    }
    char buf[16384];
    int status = -1, exited = 0, master_open = 1;
    for (;;) {
        if (!exited) {
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                status = st;
                exited = 1;
            }
        }
        if (exited) {
            /* Drain what the container wrote before it ended. */
            struct pollfd q = {.fd = master, .events = POLLIN};
            while (master_open && poll(&q, 1, 0) > 0 && (q.revents & POLLIN))
                master_open = relay_out(master, out_fd, &stream, l, buf, sizeof buf);
            break;
        }
        struct pollfd p[3] = {
            {.fd = sfd, .events = POLLIN},
            {.fd = master_open ? master : -1, .events = POLLIN},
            {.fd = in_fd, .events = POLLIN},
        };
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGWINCH)
                    (void)gk_copy_winsize(winsize_fd, master);
                else if (si.ssi_signo != SIGCHLD)
                    (void)kill(pid, (int)si.ssi_signo);
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
            master_open = relay_out(master, out_fd, &stream, l, buf, sizeof buf); /* 0 on EIO: every slave is closed */
        if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(in_fd, buf, sizeof buf);
            if (n > 0)
                (void)write_all(master, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                in_fd = -1;
        }
        if (!master_open) {
            /* The command closed its terminal: wait for it to end. */
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            status = st;
            break;
        }
    }
    if (l) {
        gk_log_flush(&stream, l);
        if (log.fd >= 0)
            close(log.fd);
    }
    close(sfd);
    return status;
}

int gk_send_console(const char *socket_path, int master)
{
    int s = gk_connect_unix(socket_path);
    if (s < 0)
        return s;
    /* The payload is the terminal's name, as runc sends it. */
    char name[32] = "/dev/pts/";
    unsigned int n = 0;
    if (ioctl(master, TIOCGPTN, &n) == 0)
        gk_utoa(name + 9, sizeof name - 9, n);
    else
        memcpy(name, "/dev/ptmx", 10);
    int r = send_with_fds(s, name, strlen(name), &master, 1);
    close(s);
    return r;
}
