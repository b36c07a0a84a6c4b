/*
 * The bench's reference row: the least a container start can cost here.
 * Run as "gocker-floor ROOTFS" (the gocker binary under another name; a
 * constructor takes over before any Swift code runs), it clones into new
 * PID, mount, UTS, IPC and network namespaces, pivots into ROOTFS, mounts
 * /proc, execs /bin/true there and waits for it: no image, no cgroups, no
 * state, no defences. `gocker bench` times it like every other row.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "gocker-floor: %s: %s\n", what, strerror(errno));
    return 125;
}

static int floor_child(const char *rootfs)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail("make / private");
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return fail("bind the root");
    if (chdir(rootfs) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
        return fail("pivot_root");
    if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return fail("detach the old root");
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return fail("mount /proc");
    char *argv[] = {"true", NULL}, *envp[] = {"PATH=/bin", NULL};
    execve("/bin/true", argv, envp);
    return fail("exec /bin/true");
}

static int floor_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gocker-floor ROOTFS\n");
        return 2;
    }
    long pid = syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD,
                       NULL, NULL, NULL, 0);
    if (pid < 0)
        return fail("clone");
    if (pid == 0)
        _exit(floor_child(argv[1]));
    int status;
    while (waitpid((pid_t)pid, &status, 0) < 0)
        if (errno != EINTR)
            return fail("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

__attribute__((constructor)) static void gk_floor_entry(int argc, char **argv)
{
    if (argc < 1 || !argv || !argv[0])
        return;
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp(base, "gocker-floor") == 0)
        _exit(floor_main(argc, argv));
}
