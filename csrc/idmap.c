/*
 * Idmapped mounts (mount_setattr with MOUNT_ATTR_IDMAP), for a container
 * with a user namespace whose root filesystem belongs to ids its maps do
 * not cover: the parent makes the mount, detached, and the child moves it
 * onto its rootfs.
 */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define GK_MOUNT_ATTR_IDMAP 0x00100000

struct gk_idmap_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

int gk_write_proc(pid_t pid, const char *file, const char *text)
{
    char path[64];
    size_t n = gk_strlcat(path, 0, sizeof path, "/proc/");
    gk_utoa(path + n, sizeof path - n, (unsigned long)pid);
    n = strlen(path);
    n = gk_strlcat(path, n, sizeof path, "/");
    gk_strlcat(path, n, sizeof path, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = w < 0 ? errno : (w != (ssize_t)len ? EIO : 0);
    close(fd);
    return -e;
}

int gk_write_id_maps(pid_t pid, const char *uid_map, const char *gid_map, const char **call)
{
    int r;
    if ((r = gk_write_proc(pid, "uid_map", uid_map)) < 0) {
        *call = "write uid_map";
        return r;
    }
    if ((r = gk_write_proc(pid, "gid_map", gid_map)) < 0) {
        *call = "write gid_map";
        return r;
    }
    return 0;
}

int gk_idmapped_tree(const char *path, const char *uid_map, const char *gid_map, const char **call)
{
    int hold[2], r;
    *call = "pipe";
    if (pipe2(hold, O_CLOEXEC) < 0)
        return -errno;
    /* A user namespace to take the maps from: its one process waits for
     * the pipe to close, and goes. */
    *call = "clone a user namespace";
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) {
        char c;
        close(hold[1]);
        (void)!read(hold[0], &c, 1);
        _exit(0);
    }
    int err = errno;
    close(hold[0]);
    if (pid < 0) {
        close(hold[1]);
        return -err;
    }
    int userns = -1;
    r = gk_write_id_maps((pid_t)pid, uid_map, gid_map, call);
    if (r == 0) {
        char ns[64];
        size_t n = gk_strlcat(ns, 0, sizeof ns, "/proc/");
        gk_utoa(ns + n, sizeof ns - n, (unsigned long)pid);
        n = strlen(ns);
        gk_strlcat(ns, n, sizeof ns, "/ns/user");
        if ((userns = open(ns, O_RDONLY | O_CLOEXEC)) < 0) {
            *call = "open the user namespace";
            r = -errno;
        }
    }
    close(hold[1]);
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return r;

    *call = "open_tree";
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) {
        r = -errno;
        close(userns);
        return r;
    }
    struct gk_idmap_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = GK_MOUNT_ATTR_IDMAP;
    a.userns_fd = (uint64_t)userns;
    *call = "idmap the mount";
    r = syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0 ? -errno : 0;
    close(userns);
    if (r < 0) {
        close(tree);
        return r;
    }
    return tree;
}
