/*
 * first-touch: runs a command under ptrace, single-stepping it and every
 * thread and process it makes (each until it execs another program), and
 * prints the functions of BINARY in the order they were first executed, one
 * symbol name per line, on stdout. Exits with the command's status.
 *
 *   first-touch BINARY -- COMMAND [ARGS...]
 *
 * BINARY's function symbols are read with `nm -n --defined-only BINARY`.
 * `./build.sh order` runs it on gocker's starts to write
 * .ci/hot-symbols.txt, the order in which the release binary's linker lays
 * out its code: what a start runs sits together, so a start faults in and
 * maps fewer pages of the binary (and its exit unmaps fewer).
 *
 * Single-stepping is slow (tens of microseconds a step here): a start takes
 * minutes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nm-symbols.h"

/* Functions: nm's t, T, w and W. */
static int is_function(char type, const char *name, uint64_t addr)
{
    (void)name;
    (void)addr;
    return type == 't' || type == 'T' || type == 'W' || type == 'w';
}

/* The symbol whose code holds `ip`: the last at or below it. */
static struct sym *symbol_at(uint64_t ip)
{
    if (!nsyms || ip < syms[0].addr) return NULL;
    size_t lo = 0, hi = nsyms;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (syms[mid].addr <= ip) lo = mid; else hi = mid;
    }
    return &syms[lo];
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: first-touch BINARY -- COMMAND [ARGS...]\n");
        return 2;
    }
    if (load_symbols(argv[1], is_function) < 0) {
        fprintf(stderr, "first-touch: no symbols in %s\n", argv[1]);
        return 1;
    }
    uint64_t lo = syms[0].addr, hi = syms[nsyms - 1].addr + (1 << 20);
    pid_t child = fork();
    if (child < 0) {
        perror("first-touch: fork");
        return 1;
    }
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    int status;
    waitpid(child, &status, 0);
    ptrace(PTRACE_SETOPTIONS, child, 0,
           PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC |
           PTRACE_O_EXITKILL);
    /* Stepping starts at the command's exec; until then it is this program. */
    int started = 0;
    ptrace(PTRACE_CONT, child, 0, 0);
    int live = 1, exit_status = 0;
    unsigned long steps = 0;
    while (live > 0) {
        pid_t t = waitpid(-1, &status, __WALL);
        if (t < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            live--;
            if (t == child) exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status), event = status >> 16, deliver = 0;
        if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) {
            live++; /* the new task reports its own stop */
        } else if (event == PTRACE_EVENT_EXEC) {
            if (t == child && !started) {
                started = 1;
            } else {
                /* Another program now: no more of the binary here. */
                ptrace(PTRACE_DETACH, t, 0, 0);
                live--;
                continue;
            }
        } else if (event == PTRACE_EVENT_STOP || sig == SIGSTOP) {
            /* a new task's first stop */
        } else if (sig != SIGTRAP) {
            deliver = sig;
        }
        if (started) {
            struct user_regs_struct regs;
            if (ptrace(PTRACE_GETREGS, t, 0, &regs) == 0 && regs.rip >= lo && regs.rip < hi) {
                struct sym *s = symbol_at(regs.rip);
                if (s && !s->mark) {
                    s->mark = 1;
                    printf("%s\n", s->name);
                }
            }
            steps++;
            ptrace(PTRACE_SINGLESTEP, t, 0, deliver);
        } else {
            ptrace(PTRACE_CONT, t, 0, deliver);
        }
    }
    fflush(stdout);
    fprintf(stderr, "first-touch: %lu steps, exit status %d\n", steps, exit_status);
    return exit_status;
}
