/* Helpers shared by the C core's files; async-signal-safe unless noted. */
#ifndef GOCKER_INTERNAL_H
#define GOCKER_INTERNAL_H

#include <fcntl.h>
#include <stddef.h>
#include "gocker_core.h"

/* open_tree(2)'s flags, which older headers lack. */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif

/* Appends `src` to `dst` (of `size` bytes, holding `len` bytes now), always
 * NUL-terminating; returns the new length. */
size_t gk_strlcat(char *dst, size_t len, size_t size, const char *src);

/* Writes `v` in decimal into `dst`, NUL-terminated. */
void gk_utoa(char *dst, size_t size, unsigned long v);

/* Sends one whole record; 0 or -errno. Never raises SIGPIPE. */
int gk_send_all(int fd, const void *buf, size_t len);

/* Receives one gk_msg; 0, -EPIPE at end of file, or -errno. */
int gk_recv_msg(int fd, struct gk_msg *m);

/* Runs `set`'s hooks in order, the state's pid filled in with `host_pid`
 * (hooks.c): 0, or -1 at the first that fails, with `text` naming it and
 * saying why, and *err its errno (0: the text says it all). */
int gk_run_hooks(const struct gk_hook_set *set, pid_t host_pid, char *text, size_t size, int *err);

/* A small file read whole into `buf` (at most size-1 bytes), NUL-terminated:
 * its length, 0 for a missing file, -EFBIG when it does not fit, or -errno
 * (user.c). */
long gk_read_file(const char *path, char *buf, size_t size);

/* ---- the container's user (user.c) ---- */

#include <sys/types.h>

#define GK_MAX_GROUPS 64

struct gk_user {
    uid_t uid;
    gid_t gid;
    gid_t groups[GK_MAX_GROUPS];
    size_t ngroups;
    char home[256];
};

/* Resolves "user[:group]" (names or ids; NULL: keep u->uid/gid/groups and
 * only find HOME) in the container's /etc/passwd and /etc/group. On failure
 * returns -errno with `err` saying what was missing. */
int gk_resolve_user(const char *spec, const char *const *group_add, size_t ngroup_add,
                    struct gk_user *u, char *err, size_t errsize);

/* ---- the child's other stages (security.c, terminal.c, init.c) ---- */

/* Applies rlimits, capabilities and credentials, in the order the kernel
 * needs: bounding set and keep-caps as root, then set*id, then capset. */
int gk_apply_rlimits(const struct gk_spawn *s, char *what, size_t size);
int gk_drop_bounding(const struct gk_spawn *s);
int gk_set_credentials(const struct gk_user *u, int keep_groups, char *what, size_t size);
int gk_set_caps(const struct gk_spawn *s);

/* Masks and read-only paths, resolved inside the container's root `root`;
 * -errno with `what` naming the path. */
int gk_mask_paths(const struct gk_spawn *s, int root, char *what, size_t size);

/* ---- mount targets inside the container's root (mounts.c) ---- */

/* openat2 of `path` with `root` as "/" (RESOLVE_IN_ROOT, no magic links). */
int gk_open_in_root(int root, const char *path, int flags, int *fd);

#include <limits.h>

/* Where a path in the container's root led: the path it resolves to, and
 * the symlinks on the way ("/etc/hosts -> /proc/self/attr/exec, ..."), for
 * checks and messages. */
struct gk_where {
    char path[PATH_MAX]; /* as far as the resolution went when it failed */
    char links[GK_MSG_TEXT];
    char name[NAME_MAX + 1]; /* GK_TARGET_PARENT: the last component */
};

#define GK_TARGET_FILE 0x1   /* a missing last component is made an empty file, not a directory */
#define GK_TARGET_EXACT 0x2  /* w->path must be filled in even through symlinks */
#define GK_TARGET_PARENT 0x4 /* the directory that holds the last component (followed if a symlink) */

/* An O_PATH descriptor of `path` in the root, made where missing
 * (directories, and with GK_TARGET_FILE the last component as an empty
 * file); a symlink in the image, dangling or not, leads where it would with
 * the root as "/", through at most 40 links, never through a link on a proc
 * filesystem. With GK_TARGET_PARENT, the directory of the last component
 * (made where missing) and its name in w->name; the name itself is not
 * made. `w` says where the path led (w->path is "" when it was not worked
 * out: found through symlinks without GK_TARGET_EXACT). */
int gk_make_target(int root, const char *path, unsigned int flags, int *fd, struct gk_where *w);
/* Why `mt` may not be mounted on `target` (its descriptor, or -1 when the
 * resolution stopped part way at w->path), `source` being the bind's tree
 * or -1; NULL when it may. Refused: a target that resolves to the root,
 * into /proc (but proc itself on /proc, or runc's allow-list of files
 * lxcfs binds over), or for a bind into /sys (but the host's sysfs or
 * cgroups), judged by the resolved path and by the target's filesystem. */
const char *gk_refuse_target(const struct gk_mount *mt, int source, int target, const struct gk_where *w);
/* mount_setattr of MS_* flags (only those mount_setattr knows) on the mount
 * of `mfd`, or on every mount below it with `recursive`. */
int gk_set_mount_flags(int mfd, unsigned long ms_flags, int recursive);
/* mount_setattr of a propagation (MS_PRIVATE... | MS_REC). */
int gk_set_propagation(int mfd, unsigned long propagation);
/* move_mount of the tree `tree` onto the descriptor `target`. */
int gk_move_mount_to(int tree, int target);
/* mount(2) of a filesystem onto the directory `target` (through fchdir);
 * the working directory is `root` again afterwards. */
int gk_mount_fs_at(int root, int target, const char *source, const char *fstype, unsigned long flags,
                   const char *data);
/* docker's volume seeding: when the mount tree `tree` holds nothing, copies
 * what the directory `target` holds into it, with owners, modes and times,
 * never following a symlink, only from the filesystem of `root` (the
 * image's); `what` names the entry that failed. */
int gk_copy_up(int root, int target, int tree, char *what, size_t size);

/* Opens a pty pair from the container's /dev/ptmx; 0 or -errno. */
int gk_open_pty(int *master, int *slave);
/* Makes `slave` the controlling terminal and stdio of a new session. */
int gk_take_terminal(int slave);

/* Loads the filter of `s`, if any, and sends its listener on (seccomp.c);
 * `host_pid` is the pid the state names. 0 or -errno. */
int gk_seccomp_load(const struct gk_spawn *s, pid_t host_pid);
/* 1 when `program`, run on `arch` (an AUDIT_ARCH_*), returns
 * SECCOMP_RET_ALLOW for each of the syscall numbers `nrs` without looking
 * at their arguments (seccomp_tree.c). */
int gk_seccomp_allows(const void *program, size_t len, uint32_t arch, const int *nrs, size_t n);
/* Drops what the child held only to load the filter (see gocker_core.h). */
int gk_drop_held_caps(const struct gk_spawn *s);
/* Whether the child holds CAP_SYS_ADMIN for the load. */
int gk_holds_for_seccomp(const struct gk_spawn *s);

/* Forks: returns in the child (the command's process); the parent becomes
 * the container's init and never returns. */
void gk_become_init(int fifo_fd, int slave_fd);

/* ---- the container log (log.c) ---- */

#define GK_LOG_LINE_MAX 16384

struct gk_log {
    const char *path;
    unsigned long long max; /* rotate past this many bytes; 0: never */
    int fd;
    unsigned long long size;
};

/* One of the container's output streams, read line by line. */
struct gk_log_stream {
    int fd;
    const char *name;  /* "stdout" or "stderr" */
    int copy_to;       /* also copy what is read here, or -1 */
    char buf[GK_LOG_LINE_MAX];
    size_t len;
};

void gk_log_open(struct gk_log *l);
/* Reads what is there and logs each complete line; 0 at end of file. */
int gk_log_read(struct gk_log_stream *s, struct gk_log *l);
/* Logs what is left of an unfinished line. */
void gk_log_flush(struct gk_log_stream *s, struct gk_log *l);

/* Receives one gk_msg and, if it carries one, a descriptor (else *fd = -1). */
int gk_recv_fd(int sock, struct gk_msg *m, int *fd);
/* Writes a new user namespace's maps for process `pid` (idmap.c): 0, or
 * -errno with the call that failed in *call. */
int gk_write_id_maps(pid_t pid, const char *uid_map, const char *gid_map, const char **call);
/* Writes `text` to /proc/`pid`/`file` (idmap.c): 0 or -errno. */
int gk_write_proc(pid_t pid, const char *file, const char *text);

#endif
