/* `--init`: a tiny PID 1 for the container. It forks the command, passes
 * every signal it gets on to it, reaps every zombie of the container, and
 * exits as the command did. It is a copy of the child (no exec, no binary in
 * the container) and only makes async-signal-safe calls. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void gk_become_init(int fifo_fd, int slave_fd)
{
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        return; /* the command's process */
    if (pid < 0)
        _exit(GK_EXIT_SETUP);
    /* Only the command holds the exec FIFO (its exec closes it) and the
     * terminal (the relay sees its end when the command closes it). */
    close(fifo_fd);
    if (slave_fd >= 0)
        close(slave_fd);
    for (int fd = 0; fd < 3; fd++)
        close(fd);
    (void)prctl(PR_SET_NAME, "init", 0, 0, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            (void)kill((pid_t)pid, sig);
            continue;
        }
        int status;
        pid_t w;
        while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
            if (w != (pid_t)pid)
                continue;
            if (WIFSIGNALED(status))
                _exit(128 + WTERMSIG(status));
            _exit(WEXITSTATUS(status));
        }
    }
}
