/*
 * Mount targets inside the container's root, and mounts made through file
 * descriptors (child side, async-signal-safe: system calls only).
 *
 * Every target is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
 * from a descriptor of the container's root: a symlink in the image, absolute
 * or full of "..", is followed as if the container's root were "/", and no
 * /proc/self/fd-style link can lead out. A path with a symlink or a missing
 * part is walked one component at a time instead (walk()), so that where it
 * leads is known (checked by gk_refuse_target, named in messages) and what
 * is missing, a dangling symlink's target too, is made. The mount is then placed
 * on the descriptor (move_mount with MOVE_MOUNT_T_EMPTY_PATH for binds,
 * fchdir and mount on "." for filesystems), never on a path looked up again.
 */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

/* <linux/mount.h> clashes with glibc's <sys/mount.h>: the few names we need. */
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define GK_MOUNT_ATTR_RDONLY 0x00000001
#define GK_MOUNT_ATTR_NOSUID 0x00000002
#define GK_MOUNT_ATTR_NODEV 0x00000004
#define GK_MOUNT_ATTR_NOEXEC 0x00000008
#define GK_MOUNT_ATTR__ATIME 0x00000070
#define GK_MOUNT_ATTR_RELATIME 0x00000000
#define GK_MOUNT_ATTR_NOATIME 0x00000010
#define GK_MOUNT_ATTR_STRICTATIME 0x00000020
#define GK_MOUNT_ATTR_NODIRATIME 0x00000080

struct gk_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

/* The deepest directory tree a volume is seeded with. */
#define GK_COPY_DEPTH 128

/* Filesystem types (statfs f_type) a target is judged by. */
#define GK_PROC_SUPER_MAGIC 0x9fa0
#define GK_SYSFS_MAGIC 0x62656572
#define GK_CGROUP_SUPER_MAGIC 0x27e0eb
#define GK_CGROUP2_SUPER_MAGIC 0x63677270

/* The most symlinks one target may go through (the kernel's own bound). */
#define GK_MAX_LINKS 40

static long fs_type(int fd)
{
    struct statfs sf;
    return fstatfs(fd, &sf) < 0 ? -errno : (long)sf.f_type;
}

static int open_how(int root, const char *path, int flags, uint64_t resolve, int *fd)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve;
    for (int attempt = 0; attempt < 64; attempt++) {
        long r = syscall(SYS_openat2, root, path, &how, sizeof how);
        if (r >= 0) {
            *fd = (int)r;
            return 0;
        }
        /* EAGAIN: a rename raced with the lookup; try again. */
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    return -EAGAIN;
}

int gk_open_in_root(int root, const char *path, int flags, int *fd)
{
    return open_how(root, path, flags, 0, fd);
}

/* `in` as an absolute path without ".", ".." or repeated slashes, taken
 * out lexically (".." above "/" is "/"). */
static int clean_path(const char *in, char *out, size_t size)
{
    size_t n = 0;
    out[n++] = '/';
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t l = (size_t)(p - s);
        if (l == 0 || (l == 1 && s[0] == '.'))
            continue;
        if (l == 2 && s[0] == '.' && s[1] == '.') {
            while (n > 1 && out[n - 1] != '/')
                n--;
            if (n > 1)
                n--;
            continue;
        }
        if (n + 1 + l >= size)
            return -ENAMETOOLONG;
        if (n > 1)
            out[n++] = '/';
        memcpy(out + n, s, l);
        n += l;
    }
    out[n] = '\0';
    return 0;
}

/* Adds "DIR/NAME -> TEXT" to the links `w` went through. */
static void note_link(struct gk_where *w, const char *dir, const char *name, const char *text)
{
    size_t n = strlen(w->links);
    if (n)
        n = gk_strlcat(w->links, n, sizeof w->links, ", ");
    n = gk_strlcat(w->links, n, sizeof w->links, dir);
    if (dir[1] != '\0')
        n = gk_strlcat(w->links, n, sizeof w->links, "/");
    n = gk_strlcat(w->links, n, sizeof w->links, name);
    n = gk_strlcat(w->links, n, sizeof w->links, " -> ");
    gk_strlcat(w->links, n, sizeof w->links, text);
}

/* The child is single-threaded: one walk at a time. */
static char walk_todo[PATH_MAX], walk_link[PATH_MAX], walk_spliced[PATH_MAX];

/*
 * Resolves `path` (clean, absolute) in the root one component at a time,
 * as the kernel would with `root` as "/", keeping in w->path the path of
 * the directory reached so far, symlinks followed: every step is an
 * openat of one name, never following a symlink; a symlink's text is read
 * and put in place of its name (an absolute one starts again from the
 * root; ".." goes up the path kept, reopened from the root without
 * symlinks), at most GK_MAX_LINKS times. No symlink on a proc filesystem
 * is followed: most of them are the kernel's magic links. What is missing
 * is made: directories, and with GK_TARGET_FILE an empty file last. With
 * GK_TARGET_PARENT the last component is not opened nor made (unless it is
 * a symlink, which is followed): its directory is returned, its name in
 * w->name. On failure w->path is as far as the walk went.
 */
/* A missing name made beneath `dir`: an empty file (`file`) or a
 * directory. mkdirat and O_EXCL never follow a symlink put there
 * meanwhile. 0, or -errno (-EEXIST: something is there now). */
static int make_name(int dir, const char *name, int file)
{
    if (!file)
        return mkdirat(dir, name, 0755) < 0 ? -errno : 0;
    int f = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    if (f < 0)
        return -errno;
    close(f);
    return 0;
}

static int walk(int root, const char *path, unsigned int flags, int *fd, struct gk_where *w)
{
    size_t tl = strlen(path);
    if (tl >= sizeof walk_todo)
        return -ENAMETOOLONG;
    memcpy(walk_todo, path, tl + 1);
    char *done = w->path;
    size_t dlen = 1;
    done[0] = '/';
    done[1] = '\0';
    int dir = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -errno;
    int links = 0, tries = 0, r = 0;
    size_t pos = 0;
    for (;;) {
        char *todo = walk_todo;
        while (todo[pos] == '/')
            pos++;
        if (todo[pos] == '\0')
            break;
        size_t start = pos;
        while (todo[pos] && todo[pos] != '/')
            pos++;
        size_t len = pos - start, rest = pos;
        while (todo[rest] == '/')
            rest++;
        int last = todo[rest] == '\0';
        char name[NAME_MAX + 1];
        if (len > NAME_MAX) {
            r = -ENAMETOOLONG;
            goto fail;
        }
        memcpy(name, todo + start, len);
        name[len] = '\0';
        int dot = strcmp(name, ".") == 0, dotdot = strcmp(name, "..") == 0;
        if (last && (flags & GK_TARGET_PARENT) && (dot || dotdot)) {
            r = -EINVAL;
            goto fail;
        }
        if (dot)
            continue;
        if (dotdot) {
            while (dlen > 1 && done[dlen - 1] != '/')
                dlen--;
            if (dlen > 1)
                dlen--;
            done[dlen] = '\0';
            int up;
            if ((r = open_how(root, done, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS, &up)) < 0)
                goto fail;
            close(dir);
            dir = up;
            continue;
        }
        struct stat st;
        if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) {
                r = -errno;
                goto fail;
            }
            if (last && (flags & GK_TARGET_PARENT))
                goto parent;
            if (++tries > 64) {
                r = -EAGAIN;
                goto fail;
            }
            if ((r = make_name(dir, name, last && (flags & GK_TARGET_FILE))) < 0 && r != -EEXIST)
                goto fail;
            pos = start;
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            if (fs_type(dir) == GK_PROC_SUPER_MAGIC || ++links > GK_MAX_LINKS) {
                r = -ELOOP;
                goto fail;
            }
            ssize_t l = readlinkat(dir, name, walk_link, sizeof walk_link - 1);
            if (l < 0) {
                r = -errno;
                goto fail;
            }
            walk_link[l] = '\0';
            note_link(w, done, name, walk_link);
            size_t rl = strlen(todo + rest);
            if ((size_t)l + 1 + rl + 1 > sizeof walk_spliced) {
                r = -ENAMETOOLONG;
                goto fail;
            }
            memcpy(walk_spliced, walk_link, (size_t)l);
            walk_spliced[l] = '/';
            memcpy(walk_spliced + l + 1, todo + rest, rl + 1);
            memcpy(walk_todo, walk_spliced, (size_t)l + 1 + rl + 1);
            pos = 0;
            if (walk_link[0] == '/') {
                int top = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (top < 0) {
                    r = -errno;
                    goto fail;
                }
                close(dir);
                dir = top;
                dlen = 1;
                done[1] = '\0';
            }
            continue;
        }
        if (last && (flags & GK_TARGET_PARENT))
            goto parent;
        if (!last && !S_ISDIR(st.st_mode)) {
            r = -ENOTDIR;
            goto fail;
        }
        int next = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            r = -errno;
            goto fail;
        }
        struct stat nst;
        if (fstat(next, &nst) < 0 || nst.st_dev != st.st_dev || nst.st_ino != st.st_ino) {
            /* Replaced between the two looks: look again. */
            close(next);
            if (++tries > 64) {
                r = -EAGAIN;
                goto fail;
            }
            pos = start;
            continue;
        }
        if (dlen + 1 + len >= sizeof w->path) {
            close(next);
            r = -ENAMETOOLONG;
            goto fail;
        }
        if (dlen > 1)
            done[dlen++] = '/';
        memcpy(done + dlen, name, len + 1);
        dlen += len;
        close(dir);
        dir = next;
        continue;
    parent:
        memcpy(w->name, name, len + 1);
        *fd = dir;
        return 0;
    }
    if (flags & GK_TARGET_PARENT) {
        r = -EINVAL; /* "/" has no parent */
        goto fail;
    }
    *fd = dir;
    return 0;
fail:
    close(dir);
    return r;
}

/* The common case of a missing target, a mount point the image lacks:
 * only its last name is missing, below a parent reached without a symlink.
 * The name is made there (mkdirat and O_EXCL never follow a symlink) and
 * opened without following one: four calls instead of a walk of every
 * component. Any other case (a parent missing too, a symlink anywhere, a
 * race) answers non-zero, and the walk decides. `path` is clean. */
static int make_last(int root, char *path, unsigned int flags, int *fd)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash[1] == '\0')
        return -ENOENT;
    int dir, r;
    *slash = '\0';
    r = open_how(root, slash == path ? "/" : path, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS, &dir);
    *slash = '/';
    if (r < 0)
        return r;
    const char *name = slash + 1;
    r = make_name(dir, name, flags & GK_TARGET_FILE);
    if (r == 0)
        r = open_how(dir, name, O_PATH, RESOLVE_NO_SYMLINKS, fd);
    close(dir);
    return r;
}

int gk_make_target(int root, const char *path, unsigned int flags, int *fd, struct gk_where *w)
{
    w->links[0] = '\0';
    w->name[0] = '\0';
    int r = clean_path(path, w->path, sizeof w->path);
    if (r < 0)
        return r;
    if (flags & GK_TARGET_PARENT) {
        /* Without a symlink on the way: the parent, and a last name that is
         * missing or no symlink. */
        char *slash = strrchr(w->path, '/');
        size_t n = strlen(slash + 1);
        if (n == 0)
            return -EINVAL;
        memcpy(w->name, slash + 1, n + 1);
        *slash = '\0';
        r = open_how(root, slash == w->path ? "/" : w->path, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS, fd);
        *slash = '/';
        if (r == 0) {
            struct stat st;
            if (fstatat(*fd, w->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? errno == ENOENT : !S_ISLNK(st.st_mode)) {
                slash[slash == w->path ? 1 : 0] = '\0';
                return 0;
            }
            close(*fd);
        }
        return walk(root, w->path, flags, fd, w);
    }
    /* Without a symlink on the way, the clean path is where it leads. */
    if ((r = open_how(root, w->path, O_PATH, RESOLVE_NO_SYMLINKS, fd)) == 0)
        return 0;
    if (r == -ENOENT && make_last(root, w->path, flags, fd) == 0)
        return 0;
    if (!(flags & GK_TARGET_EXACT) && (r = open_how(root, w->path, O_PATH, 0, fd)) == 0) {
        w->path[0] = '\0'; /* not worked out */
        return 0;
    }
    return walk(root, w->path, flags, fd, w);
}

/* Whether `path` is `dir` or lies below it. */
static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* runc's: files of /proc that lxcfs and the like bind their own versions over. */
static const char *const proc_allowed[] = {
    "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/uptime", "/proc/loadavg", "/proc/diskstats", "/proc/swaps",
};

const char *gk_refuse_target(const struct gk_mount *mt, int source, int target, const struct gk_where *w)
{
    const char *at = w->path;
    int bind = mt->kind == GK_MOUNT_BIND;
    long fs = target >= 0 ? fs_type(target) : 0;
    if (target >= 0 && strcmp(at, "/") == 0)
        return "target resolves to the container's root";
    if (under(at, "/proc") || fs == GK_PROC_SUPER_MAGIC) {
        int proc_itself = bind ? source >= 0 && fs_type(source) == GK_PROC_SUPER_MAGIC : strcmp(mt->fstype, "proc") == 0;
        if (target >= 0 && strcmp(at, "/proc") == 0) {
            if (!proc_itself)
                return "only a proc filesystem can be mounted on /proc";
        } else {
            int allowed = 0;
            for (size_t i = 0; i < sizeof proc_allowed / sizeof proc_allowed[0]; i++)
                allowed |= strcmp(at, proc_allowed[i]) == 0;
            if (!allowed)
                return "target resolves into /proc";
        }
    }
    if (bind && (under(at, "/sys") || fs == GK_SYSFS_MAGIC)) {
        /* Only the host's own sysfs or cgroups, bound over the container's. */
        long src_fs = source >= 0 ? fs_type(source) : 0;
        int sys_itself = src_fs == GK_SYSFS_MAGIC || src_fs == GK_CGROUP_SUPER_MAGIC ||
                         src_fs == GK_CGROUP2_SUPER_MAGIC || (source < 0 && under(mt->source, "/sys"));
        if (!sys_itself)
            return "target resolves into /sys";
    }
    return NULL;
}

/* MS_* mount flags as mount_setattr attributes. */
static void to_attr(unsigned long ms, struct gk_mount_attr *a)
{
    if (ms & MS_RDONLY)
        a->attr_set |= GK_MOUNT_ATTR_RDONLY;
    if (ms & MS_NOSUID)
        a->attr_set |= GK_MOUNT_ATTR_NOSUID;
    if (ms & MS_NODEV)
        a->attr_set |= GK_MOUNT_ATTR_NODEV;
    if (ms & MS_NOEXEC)
        a->attr_set |= GK_MOUNT_ATTR_NOEXEC;
    if (ms & MS_NODIRATIME)
        a->attr_set |= GK_MOUNT_ATTR_NODIRATIME;
    if (ms & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME)) {
        a->attr_clr |= GK_MOUNT_ATTR__ATIME;
        a->attr_set |= (ms & MS_NOATIME)       ? GK_MOUNT_ATTR_NOATIME
                       : (ms & MS_STRICTATIME) ? GK_MOUNT_ATTR_STRICTATIME
                                               : GK_MOUNT_ATTR_RELATIME;
    }
}

int gk_set_mount_flags(int mfd, unsigned long ms_flags, int recursive)
{
    struct gk_mount_attr a;
    memset(&a, 0, sizeof a);
    to_attr(ms_flags, &a);
    if (!a.attr_set && !a.attr_clr)
        return 0;
    unsigned int at = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
    if (syscall(SYS_mount_setattr, mfd, "", at, &a, sizeof a) < 0)
        return -errno;
    return 0;
}

int gk_set_propagation(int mfd, unsigned long propagation)
{
    if (!propagation)
        return 0;
    struct gk_mount_attr a;
    memset(&a, 0, sizeof a);
    a.propagation = propagation & (MS_PRIVATE | MS_SHARED | MS_SLAVE | MS_UNBINDABLE);
    unsigned int at = AT_EMPTY_PATH | ((propagation & MS_REC) ? AT_RECURSIVE : 0);
    if (syscall(SYS_mount_setattr, mfd, "", at, &a, sizeof a) < 0)
        return -errno;
    return 0;
}

int gk_move_mount_to(int tree, int target)
{
    if (syscall(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return -errno;
    return 0;
}

int gk_mount_fs_at(int root, int target, const char *source, const char *fstype, unsigned long flags,
                   const char *data)
{
    /* The target is the working directory: "." names it without another
     * lookup. */
    if (fchdir(target) < 0)
        return -errno;
    int r = mount(source, ".", fstype, flags, data) < 0 ? -errno : 0;
    if (fchdir(root) < 0 && r == 0)
        r = -errno;
    return r;
}

/* ---- seeding a volume from the image ------------------------------------ */

/* Ownership, mode and times of `st` on the new entry `name` in `dir` (or on
 * `fd` itself when name is NULL). chown first: it clears set-id bits. */
static int copy_meta(int dir, const char *name, int fd, const struct stat *st)
{
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    if (name) {
        if (fchownat(dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
        if (!S_ISLNK(st->st_mode) && fchmodat(dir, name, st->st_mode & 07777, 0) < 0)
            return -errno;
        if (utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
        return 0;
    }
    if (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & 07777) < 0 ||
        futimens(fd, times) < 0)
        return -errno;
    return 0;
}

static int copy_file(int from, int to)
{
    for (;;) {
        ssize_t n = copy_file_range(from, NULL, to, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -errno;
        break;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            off += w;
        }
    }
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Copies the entries of directory `from` into directory `to` (both opened
 * O_RDONLY), never following a symlink on either side and never entering a
 * directory off the filesystem `dev` (the image's: what is mounted over a
 * part of it is not the image's content). `what` receives the name that failed. */
static int copy_tree(int from, int to, dev_t dev, int depth, char *what, size_t size)
{
    static char link[PATH_MAX]; /* the child is single-threaded */
    if (depth > GK_COPY_DEPTH) {
        gk_strlcat(what, 0, size, "directory tree too deep");
        return -ELOOP;
    }
    char buf[1024];
    for (;;) {
        long n = syscall(SYS_getdents64, from, buf, sizeof buf);
        if (n < 0) {
            gk_strlcat(what, 0, size, "read directory");
            return -errno;
        }
        if (n == 0)
            return 0;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            off += d->d_reclen;
            const char *name = d->d_name;
            if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
                continue;
            gk_strlcat(what, 0, size, name);
            struct stat st;
            if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
            /* A directory mounted over part of the image (overlayfs gives
             * other files the device of the layer they come from). */
            if (S_ISDIR(st.st_mode) && st.st_dev != dev)
                continue;
            int r = 0;
            if (S_ISDIR(st.st_mode)) {
                if (mkdirat(to, name, 0700) < 0)
                    return -errno;
                int a = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (a < 0)
                    return -errno;
                int b = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (b < 0) {
                    r = -errno;
                    close(a);
                    return r;
                }
                r = copy_tree(a, b, dev, depth + 1, what, size);
                if (r == 0)
                    r = copy_meta(-1, NULL, b, &st);
                close(a);
                close(b);
            } else if (S_ISREG(st.st_mode)) {
                int a = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                if (a < 0)
                    return -errno;
                int b = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
                if (b < 0) {
                    r = -errno;
                    close(a);
                    return r;
                }
                r = copy_file(a, b);
                if (r == 0)
                    r = copy_meta(-1, NULL, b, &st);
                close(a);
                close(b);
            } else if (S_ISLNK(st.st_mode)) {
                ssize_t l = readlinkat(from, name, link, sizeof link - 1);
                if (l < 0)
                    return -errno;
                link[l] = '\0';
                if (symlinkat(link, to, name) < 0)
                    return -errno;
                r = copy_meta(to, name, -1, &st);
            } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
                if (mknodat(to, name, st.st_mode, st.st_rdev) < 0)
                    return -errno;
                r = copy_meta(to, name, -1, &st);
            } /* sockets are not copied */
            if (r < 0)
                return r;
        }
    }
}

/* Whether the directory `fd` (O_RDONLY) has no entries: 1, 0 or -errno. */
static int is_empty(int fd)
{
    char buf[512];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0)
            return -errno;
        if (n == 0)
            return 1;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            off += d->d_reclen;
            const char *name = d->d_name;
            if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))))
                return 0;
        }
    }
}

int gk_copy_up(int root, int target, int tree, char *what, size_t size)
{
    int r;
    /* Only the image's own content: a target that leads onto another
     * filesystem (a symlink in the image to /proc, /sys or /dev, or a
     * mount made before this one) seeds nothing. */
    struct stat rst, tst;
    if (fstat(root, &rst) < 0 || fstat(target, &tst) < 0) {
        gk_strlcat(what, 0, size, "stat mount point");
        return -errno;
    }
    if (rst.st_dev != tst.st_dev)
        return 0;
    int to = openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (to < 0) {
        gk_strlcat(what, 0, size, "open volume");
        return -errno;
    }
    if ((r = is_empty(to)) <= 0) {
        /* Not empty (or unreadable): docker copies only into an empty volume. */
        close(to);
        if (r < 0)
            gk_strlcat(what, 0, size, "read volume");
        return r;
    }
    int from = openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (from < 0) {
        close(to);
        /* Not a directory in the image: nothing to copy. */
        return errno == ENOTDIR ? 0 : (gk_strlcat(what, 0, size, "open mount point"), -errno);
    }
    struct stat st;
    r = fstat(from, &st) < 0 ? -errno : 0;
    if (r == 0)
        r = copy_tree(from, to, rst.st_dev, 0, what, size);
    /* The volume's root takes the owner and mode of the image's directory. */
    if (r == 0 && (r = copy_meta(-1, NULL, to, &st)) < 0)
        gk_strlcat(what, 0, size, "volume root");
    close(from);
    close(to);
    return r;
}
