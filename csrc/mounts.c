/*
 * Mount targets inside the container's root, and mounts made through file
 * descriptors (child side, async-signal-safe: system calls only).
 *
 * Every target is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
 * from a descriptor of the container's root: a symlink in the image, absolute
 * or full of "..", is followed as if the container's root were "/", and no
 * /proc/self/fd-style link can lead out. Missing directories are created one
 * component at a time, each resolved the same way. The mount is then placed
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

int gk_open_in_root(int root, const char *path, int flags, int *fd)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
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

int gk_make_target(int root, const char *path, int as_dir, int *fd)
{
    int r = gk_open_in_root(root, path, O_PATH, fd);
    if (r != -ENOENT)
        return r;

    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    int parent = -1;
    size_t i = 0;
    while (i < len) {
        while (buf[i] == '/')
            i++;
        if (buf[i] == '\0')
            break;
        size_t start = i;
        while (buf[i] && buf[i] != '/')
            i++;
        char saved = buf[i];
        int last = 1;
        for (size_t j = i; j < len; j++)
            if (buf[j] != '/') {
                last = 0;
                break;
            }
        buf[i] = '\0';
        int next;
        r = gk_open_in_root(root, buf, O_PATH, &next);
        if (r == -ENOENT) {
            /* Made beneath the parent found so far (itself resolved in
             * the root): never through a symlink, as mkdirat and O_EXCL do
             * not follow one. A dangling symlink is left to fail below. */
            int dir = parent >= 0 ? parent : root;
            const char *name = buf + start;
            if (last && !as_dir) {
                int f = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
                if (f >= 0)
                    close(f);
                else if (errno != EEXIST)
                    r = -errno;
            } else if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST) {
                r = -errno;
            }
            if (r == -ENOENT)
                r = gk_open_in_root(root, buf, O_PATH, &next);
        }
        if (parent >= 0)
            close(parent);
        parent = -1;
        if (r < 0)
            return r;
        buf[i] = saved;
        if (last) {
            *fd = next;
            return 0;
        }
        struct stat st;
        r = fstat(next, &st) < 0 ? -errno : (S_ISDIR(st.st_mode) ? 0 : -ENOTDIR);
        if (r < 0) {
            close(next);
            return r;
        }
        parent = next;
    }
    /* "/" itself. */
    if (parent >= 0)
        close(parent);
    return gk_open_in_root(root, "/", O_PATH, fd);
}

int gk_open_parent(int root, const char *path, int *dir, char *name, size_t size)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    if (len >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, len);
    buf[len] = '\0';
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    size_t n = strlen(base);
    if (n == 0 || n >= size || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return -EINVAL;
    memcpy(name, base, n + 1);
    if (slash)
        slash[slash == buf ? 1 : 0] = '\0';
    return gk_make_target(root, slash ? buf : "/", 1, dir);
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
