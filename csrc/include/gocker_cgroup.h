/*
 * cgroup helpers of gocker's C core: the cgroup v2 device program, and
 * libcgroup's reads of the mount table (at the end).
 *
 * On cgroup v2 there is no devices controller with files to write: the
 * device allow-list is an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE
 * attached to the container's group (as runc and crun do). The kernel runs
 * it on every mknod and open of a device node by a process of the group (or
 * of a group below it) and refuses the access when it returns 0.
 */
#ifndef GOCKER_CGROUP_H
#define GOCKER_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Access bits of a device rule (the kernel's BPF_DEVCG_ACC_*). */
#define GK_DEV_MKNOD 1
#define GK_DEV_READ 2
#define GK_DEV_WRITE 4

/* One rule of an OCI linux.resources.devices list. */
struct gk_dev_rule {
    int allow;      /* 1 allow, 0 deny */
    char type;      /* 'a' (any), 'c' or 'b' */
    int64_t major;  /* -1: any */
    int64_t minor;  /* -1: any */
    unsigned access; /* GK_DEV_* bits */
};

/* The most rules a program takes (each is at most 8 instructions). */
#define GK_DEV_MAX_RULES 256

/*
 * Builds the program for `rules` into `insns` (room for `cap` 8-byte
 * instructions) and returns how many it used, or -E2BIG / -EINVAL.
 *
 * The rules mean what they mean on cgroup v1, where they are written in
 * order to devices.deny and devices.allow of a group that starts allowing
 * everything: the last rule that matches an access decides it, and an access
 * no rule matches is allowed. A deny rule matches when it names any of the
 * requested access bits; an allow rule when it names all of them.
 */
int gk_dev_program(const struct gk_dev_rule *rules, size_t n, void *insns, size_t cap);

/*
 * Loads the program for `rules` and attaches it (BPF_F_ALLOW_MULTI) to the
 * cgroup v2 directory open as `cgroup_fd`. Returns 0 or -errno; on a load
 * failure the start of the kernel verifier's log is left in `log` (may be
 * NULL). The attachment lives as long as the group: nothing to close.
 */
int gk_dev_attach(int cgroup_fd, const struct gk_dev_rule *rules, size_t n, char *log, size_t logsize);

/*
 * Around each libcgroup call: while the calling thread is inside one, its
 * opens of /proc/mounts are served from one copy of the mount table read
 * per process (csrc/libcgroup_mounts.c; gocker links with --wrap=fopen).
 */
void gk_libcgroup_enter(void);
void gk_libcgroup_leave(void);

#ifdef __cplusplus
}
#endif
#endif
