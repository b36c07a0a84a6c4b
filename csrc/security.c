/* The container's defences, applied in the child: rlimits, the capability
 * sets, credentials, masked and read-only paths. Raw system calls where
 * glibc would consult its (copied, meaningless) thread list. */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

int gk_apply_rlimits(const struct gk_spawn *s, char *what, size_t size)
{
    for (size_t i = 0; i < s->nrlimits; i++) {
        struct rlimit64 rl = {.rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard};
        if (syscall(SYS_prlimit64, 0, s->rlimits[i].resource, &rl, NULL) < 0) {
            char num[24];
            gk_utoa(num, sizeof num, (unsigned long)s->rlimits[i].resource);
            size_t n = gk_strlcat(what, 0, size, "setrlimit ");
            gk_strlcat(what, n, size, num);
            return -errno;
        }
    }
    return 0;
}

/* The highest capability number this kernel knows. */
static int last_cap(void)
{
    int last = CAP_LAST_CAP;
    while (prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0)
        last++;
    return last;
}

/* A config without process.capabilities leaves the sets as they are, and a
 * non-root user then loses them all at the change of uid; but without
 * no_new_privs, loading its seccomp filter wants CAP_SYS_ADMIN. The
 * permitted set is kept across the change and CAP_SYS_ADMIN made effective
 * until the filter is loaded: execve gives a non-root user without file
 * capabilities none of them (root keeps all, as it would have). */
static int keeps_all_for_seccomp(const struct gk_spawn *s)
{
    return s->seccomp_program && !(s->flags & GK_SPAWN_NO_NEW_PRIVS) && !(s->flags & GK_SPAWN_SET_CAPS);
}

int gk_drop_bounding(const struct gk_spawn *s)
{
    if (!(s->flags & GK_SPAWN_SET_CAPS))
        return keeps_all_for_seccomp(s) && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ? -errno : 0;
    int last = last_cap();
    for (int c = 0; c <= last && c < 64; c++) {
        if (s->caps.bounding & (1ULL << c))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            return -errno;
    }
    /* Keep the permitted set across the change of uid; capset trims it. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

int gk_set_credentials(const struct gk_user *u, int keep_groups, char *what, size_t size)
{
    /* keep_groups: setgroups is denied; the process keeps the groups it has
     * (the user's own, unmapped), as runc's rootless containers do. */
    if (!keep_groups && syscall(SYS_setgroups, u->ngroups, u->groups) < 0) {
        gk_strlcat(what, 0, size, "setgroups");
        return -errno;
    }
    if (syscall(SYS_setresgid, u->gid, u->gid, u->gid) < 0) {
        gk_strlcat(what, 0, size, "setgid");
        return -errno;
    }
    if (syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0) {
        gk_strlcat(what, 0, size, "setuid");
        return -errno;
    }
    return 0;
}

int gk_holds_for_seccomp(const struct gk_spawn *s)
{
    /* Without no_new_privs, seccomp(2) wants CAP_SYS_ADMIN: kept until the
     * filter is loaded (see gocker_core.h). */
    return s->seccomp_program && !(s->flags & GK_SPAWN_NO_NEW_PRIVS) && (s->flags & GK_SPAWN_SET_CAPS) &&
           !(s->caps.effective & (1ULL << CAP_SYS_ADMIN));
}

static int capset_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(effective >> (32 * i));
        data[i].permitted = (uint32_t)(permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(inheritable >> (32 * i));
    }
    return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

int gk_drop_held_caps(const struct gk_spawn *s)
{
    if (!gk_holds_for_seccomp(s))
        return 0;
    return capset_sets(s->caps.effective, s->caps.permitted, s->caps.inheritable);
}

int gk_set_caps(const struct gk_spawn *s)
{
    if (!(s->flags & GK_SPAWN_SET_CAPS)) {
        if (!keeps_all_for_seccomp(s))
            return 0;
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct data[2];
        if (syscall(SYS_capget, &hdr, data) < 0)
            return -errno;
        data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective |= data[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted & CAP_TO_MASK(CAP_SYS_ADMIN);
        if (syscall(SYS_capset, &hdr, data) < 0)
            return -errno;
        (void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        return 0;
    }
    uint64_t held = gk_holds_for_seccomp(s) ? 1ULL << CAP_SYS_ADMIN : 0;
    if (capset_sets(s->caps.effective | held, s->caps.permitted | held, s->caps.inheritable) < 0)
        return -errno;
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* The kernel takes an ambient capability only when it is permitted and
     * inheritable too; configs (runc's own `spec`) often list ambient ones
     * without inheritable: those are left out, as runc leaves them. */
    uint64_t ambient = s->caps.ambient & s->caps.permitted & s->caps.inheritable;
    for (int c = 0; c < 64; c++)
        if ((ambient & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
            return -errno;
    (void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    return 0;
}

/* A clone of the mount tree at `fd` (or of /dev/null), with ro and the
 * other flags on every mount in it, moved onto `target`. */
static int bind_over(int from_dir, const char *from, int target, unsigned long flags)
{
    int tree = (int)syscall(SYS_open_tree, from_dir, from,
                            OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE | (from[0] ? 0 : AT_EMPTY_PATH));
    if (tree < 0)
        return -errno;
    int r = gk_set_mount_flags(tree, flags, 1);
    if (r == 0)
        r = gk_move_mount_to(tree, target);
    close(tree);
    return r;
}

int gk_mask_paths(const struct gk_spawn *s, int root, char *what, size_t size)
{
    for (size_t i = 0; i < s->nmasked; i++) {
        const char *p = s->masked_paths[i];
        int fd, r;
        struct stat st;
        if ((r = gk_open_in_root(root, p, O_PATH, &fd)) < 0) {
            if (r == -ENOENT)
                continue;
            gk_strlcat(what, 0, size, p);
            return r;
        }
        if (fstat(fd, &st) < 0)
            r = -errno;
        else if (S_ISDIR(st.st_mode))
            r = gk_mount_fs_at(root, fd, "tmpfs", "tmpfs", MS_RDONLY, "size=0");
        else
            r = bind_over(AT_FDCWD, "/dev/null", fd, 0);
        close(fd);
        if (r < 0) {
            gk_strlcat(what, 0, size, p);
            return r;
        }
    }
    for (size_t i = 0; i < s->nreadonly; i++) {
        const char *p = s->readonly_paths[i];
        int fd, r;
        if ((r = gk_open_in_root(root, p, O_PATH, &fd)) < 0) {
            if (r == -ENOENT)
                continue;
            gk_strlcat(what, 0, size, p);
            return r;
        }
        r = bind_over(fd, "", fd, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        close(fd);
        if (r < 0) {
            gk_strlcat(what, 0, size, p);
            return r;
        }
    }
    return 0;
}
