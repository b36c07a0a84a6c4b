/*
 * OCI hooks run by a container's first process itself (createContainer,
 * startContainer): forked and exec'd with the container's state on stdin,
 * waited for with their timeout. Called between clone and execve: only
 * async-signal-safe calls (see gocker_core.h, 4.).
 */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ULL + (unsigned long long)t.tv_nsec;
}

/* "KIND hook PATH[: WHY]" into text. */
static void describe(char *text, size_t size, const struct gk_hook *h, const char *why, unsigned long number,
                     const char *after)
{
    size_t n = gk_strlcat(text, 0, size, h->kind);
    n = gk_strlcat(text, n, size, " hook ");
    n = gk_strlcat(text, n, size, h->path);
    if (!why)
        return;
    n = gk_strlcat(text, n, size, ": ");
    n = gk_strlcat(text, n, size, why);
    char digits[24];
    gk_utoa(digits, sizeof digits, number);
    n = gk_strlcat(text, n, size, digits);
    if (after)
        gk_strlcat(text, n, size, after);
}

/* Runs one hook to its end; 0, or -1 with `text` and *err (0: the text
 * says it all) telling why. */
static int run_one(const struct gk_hook *h, const char *state, size_t len, char *text, size_t size, int *err)
{
    *err = 0;
    /* What execve would say of a missing or unusable program, said here
     * (the forked process can only exit). */
    if (access(h->path, X_OK) < 0) {
        *err = errno;
        describe(text, size, h, NULL, 0, NULL);
        return -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        *err = errno;
        describe(text, size, h, NULL, 0, NULL);
        return -1;
    }
    long pid = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        /* A group of its own: a timeout kills what it started too. */
        (void)setpgid(0, 0);
        if (dup2(sv[1], 0) < 0 || dup2(2, 1) < 0)
            _exit(GK_EXIT_SETUP);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
        _exit(errno == ENOENT ? GK_EXIT_NOT_FOUND : GK_EXIT_NOT_EXECUTABLE);
    }
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        *err = e;
        describe(text, size, h, NULL, 0, NULL);
        return -1;
    }
    /* The state goes in as the hook reads it: a hook that reads nothing
     * (or exits) never holds this process up. */
    int in = sv[0];
    size_t sent = 0;
    const unsigned long long start = now_ns();
    const unsigned long long limit = h->timeout > 0 ? (unsigned long long)h->timeout * 1000000000ULL : 0;
    long step = 50000; /* ns, doubling up to 5 ms */
    int status = 0;
    for (;;) {
        if (in >= 0) {
            ssize_t w = sent < len ? send(in, state + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
            if (w > 0)
                sent += (size_t)w;
            if (sent == len || (w < 0 && errno != EAGAIN && errno != EINTR)) {
                close(in);
                in = -1;
            }
        }
        pid_t r = waitpid((pid_t)pid, &status, WNOHANG);
        if (r == (pid_t)pid)
            break;
        if (r < 0 && errno != EINTR) {
            *err = errno;
            if (in >= 0)
                close(in);
            describe(text, size, h, NULL, 0, NULL);
            return -1;
        }
        if (limit && now_ns() - start >= limit) {
            kill(-(pid_t)pid, SIGKILL);
            kill((pid_t)pid, SIGKILL);
            while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
                ;
            if (in >= 0)
                close(in);
            describe(text, size, h, "timed out after ", (unsigned long)h->timeout, " s");
            return -1;
        }
        struct timespec ts = {0, step};
        nanosleep(&ts, NULL);
        if (step < 5000000)
            step *= 2;
    }
    if (in >= 0)
        close(in);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        describe(text, size, h, "exited with status ", (unsigned long)WEXITSTATUS(status), NULL);
    else
        describe(text, size, h, "killed by signal ", (unsigned long)WTERMSIG(status), NULL);
    return -1;
}

int gk_run_hooks(const struct gk_hook_set *set, pid_t host_pid, char *text, size_t size, int *err)
{
    if (!set->nhooks)
        return 0;
    /* The pid, right-aligned in its blank field (JSON allows the spaces). */
    char *state = (char *)set->state; /* this process's own copy */
    if (set->pid_at && set->pid_at + GK_SECCOMP_PID_WIDTH <= set->state_len) {
        char digits[24];
        gk_utoa(digits, sizeof digits, (unsigned long)host_pid);
        size_t n = strlen(digits);
        if (n <= GK_SECCOMP_PID_WIDTH) {
            memset(state + set->pid_at, ' ', GK_SECCOMP_PID_WIDTH - n);
            memcpy(state + set->pid_at + GK_SECCOMP_PID_WIDTH - n, digits, n);
        }
    }
    for (size_t i = 0; i < set->nhooks; i++)
        if (run_one(&set->hooks[i], state, set->state_len, text, size, err) < 0)
            return -1;
    return 0;
}
