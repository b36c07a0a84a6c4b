/*
 * gocker's C core: everything a container's first process does between
 * clone() and execve(), without any Swift runtime code.
 *
 * The Swift parent packs what the child needs into one flat `gk_spawn`
 * (strings, arrays, numbers; nothing the child has to allocate) and calls
 * gk_spawn(). The child only makes async-signal-safe system calls and always
 * leaves with _exit().
 *
 * Two channels connect the parent and the child.
 *
 * 1. The sync socket: a SOCK_SEQPACKET socketpair, close-on-exec. Every
 *    message is one `gk_msg` record.
 *
 *      parent                               child
 *      ------                               -----
 *      clone()  ---------------------------> resets signal handlers,
 *      (clone3 into its cgroup v2 group          PR_SET_PDEATHSIG(SIGKILL)
 *      where it can: see cgroup_fd)
 *      (puts the child in its cgroups,
 *      or on v1 opens their `tasks` files)
 *      (GK_SPAWN_NET_AT_GO: makes the
 *      groups while the child is cloned,
 *      and its network namespace)
 *      GK_MSG_GO (+ those files) ----------> joins the groups (writes 0 to each
 *                                            file), cgroup namespace, setns,
 *                                            hostname, root filesystem,
 *                                            pivot_root, mounts, devices, masked
 *                                            and read-only paths, lo, cwd, user
 *                                            (GK_SPAWN_LATE_GO: setns to mounts
 *                                            first, then GO, groups, cgroup
 *                                            namespace, devices and the rest;
 *                                            GO is awaited earlier, among the
 *                                            mounts, by the first that binds
 *                                            one of the container's groups;
 *                                            GK_SPAWN_NET_AT_GO: also by its
 *                                            sysfs and sysctls, and the
 *                                            network namespace is joined then)
 *      (`go_sent`: saves the container's
 *      state, naming the child's pid)
 *                 <------------------------- GK_MSG_TERMINAL with the pty master
 *                                            as SCM_RIGHTS (only with a terminal)
 *                 <------------------------- GK_MSG_ERROR {stage, errno, text}
 *                                            and _exit(GK_EXIT_SETUP), or
 *                 <------------------------- GK_MSG_READY: the container is
 *                                            "created". Credentials,
 *                                            capabilities and rlimits are set
 *                                            before READY, so that a failure
 *                                            there is still reported here.
 *      GK_MSG_SAVED -----------------------> only with `saved_sync` set (read
 *      (GK_SPAWN_SAVED_EARLY: sent right     by the child after READY): the
 *      after `go_sent`, before READY; then   child keeps its parent-death
 *      no answer comes back)                 signal until this arrives (end of
 *                                            file instead: it exits), so that
 *                                            a parent killed before the state
 *                                            names the child takes it along;
 *                                            then it clears the signal.
 *                 <------------------------- GK_MSG_SAVED back: the signal is
 *                                            cleared; only now may the parent
 *                                            exit (an exit before the clearing
 *                                            would kill the child). Without
 *                                            `saved_sync` it clears it at READY.
 *
 *    The parent-death signal fires when the thread that cloned the child
 *    ends, not the process: gocker clones from its main thread, which lives
 *    as long as the process.
 *
 * 2. The exec FIFO, a named pipe in the container's state directory. The
 *    parent hands the child an O_PATH descriptor of it. After READY the child
 *    opens it for writing, which blocks until some process (the `start` of
 *    the same or a later gocker invocation) opens it for reading. The child
 *    then looks the command up and calls execve():
 *
 *      - execve() succeeds: the write end closes on exec and the reader sees
 *        end of file with no data: the container is "running".
 *      - execve() fails: the child writes one `gk_msg` of type GK_MSG_ERROR
 *        (stage GK_STAGE_EXEC) into the FIFO and exits with 127 (not found)
 *        or 126 (found but not executable).
 *
 * 3. seccomp (see seccomp.c). The parent compiles the profile before clone
 *    and hands the child the program (seccomp_program). The child loads it
 *    last: after the FIFO opened (a profile cannot keep `start` from
 *    reaching it) and, with GK_SPAWN_INIT, before the init forks, so that
 *    only descriptor shuffling, the signal mask and execve() run under it
 *    (the init too). Loading costs the kernel a tenth of a millisecond and
 *    more (it runs the filter for every syscall number): when the filter
 *    lets through, whatever their arguments, the few calls the first
 *    process makes between READY and the FIFO's open (seccomp_early, see
 *    gk_seccomp_early), it loads it right after READY instead, while the
 *    parent saves the state, and reports a failure on the FIFO as it
 *    would have. Without no_new_privs the kernel takes a filter only
 *    from a holder of CAP_SYS_ADMIN: the child then keeps CAP_SYS_ADMIN in
 *    its effective and permitted sets until the load (execve() computes the
 *    new sets from the bounding, inheritable and ambient ones, never from
 *    the old permitted set, so the command never sees it; an init drops it
 *    with capset right after the load). With a notifying filter (an
 *    SCMP_ACT_NOTIFY rule and a listenerPath) the parent connects to the
 *    listenerPath socket before clone (the child cannot reach host paths
 *    after pivot_root) and hands the child the connected socket; GO carries
 *    the child's pid as the host sees it (`pad`); the child sends the
 *    container process state (the runtime-spec's JSON, that pid written
 *    into it) with the listener descriptor (SCM_RIGHTS) in one message on
 *    that socket and closes both. A failure there is GK_STAGE_SECCOMP.
 *
 * 4. Hooks (see hooks.c). With GK_SPAWN_HOOKS (a config with prestart or
 *    createRuntime hooks; never with GK_SPAWN_LATE_GO) the child, its root
 *    filesystem mounted and just before pivot_root (or chroot), sends
 *    GK_MSG_HOOKS on the sync socket and waits; the parent's reply loop
 *    calls `run_hooks` (the runtime's hooks, run in the parent's
 *    namespaces) and answers GK_MSG_HOOKS, or kills the child when it
 *    fails (its error is gk_spawn's). The child then runs the
 *    createContainer hooks itself, still before pivot_root (their paths
 *    resolved in its mount namespace, the host's tree still under it), and
 *    the startContainer hooks once the exec FIFO opened, before seccomp and
 *    the init (a failure there goes to the FIFO). Each is forked and exec'd
 *    with the container's state on its stdin (a socket: no SIGPIPE), its
 *    stdout and stderr on the child's stderr, and waited for with its
 *    timeout (then SIGKILL). A failure is GK_STAGE_HOOK, errno 0: the text
 *    says it all, unless the program could not be found or executed.
 */
#ifndef GOCKER_CORE_H
#define GOCKER_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the sync records -------------------------------------------------- */

enum gk_msg_type {
    GK_MSG_GO = 1,
    GK_MSG_READY = 2,
    GK_MSG_ERROR = 3,
    GK_MSG_TERMINAL = 4, /* carries the pty master as SCM_RIGHTS */
    GK_MSG_SAVED = 5,    /* the parent has saved the state: see saved_sync */
    GK_MSG_HOOKS = 6,    /* GK_SPAWN_HOOKS: run the runtime's hooks now; and the answer */
};

/* Where in the child a failure happened. */
enum gk_stage {
    GK_STAGE_NONE = 0,
    GK_STAGE_SETNS,
    GK_STAGE_HOSTNAME,
    GK_STAGE_PROPAGATION,
    GK_STAGE_ROOTFS,
    GK_STAGE_BIND_SOURCE,
    GK_STAGE_PIVOT_ROOT,
    GK_STAGE_MOUNT,
    GK_STAGE_DEVICES,
    GK_STAGE_LOOPBACK,
    GK_STAGE_READONLY_ROOT,
    GK_STAGE_CWD,
    GK_STAGE_CREDENTIALS,
    GK_STAGE_USER,
    GK_STAGE_CAPABILITIES,
    GK_STAGE_RLIMITS,
    GK_STAGE_MASKED_PATHS,
    GK_STAGE_TERMINAL,
    GK_STAGE_START_WAIT,
    GK_STAGE_EXEC,
    GK_STAGE_CGROUP,
    GK_STAGE_SECCOMP,
    GK_STAGE_SYSCTL,
    GK_STAGE_PROCESS_ATTR,
    GK_STAGE_HOOK,
};

#define GK_MSG_TEXT 200

struct gk_msg {
    int32_t type;   /* enum gk_msg_type */
    int32_t stage;  /* enum gk_stage */
    int32_t err;    /* errno, positive */
    int32_t pad;
    char text[GK_MSG_TEXT]; /* what was being done, to what; NUL-terminated */
};

/* Exit codes of a child that failed before or at execve. */
#define GK_EXIT_SETUP 125
#define GK_EXIT_NOT_EXECUTABLE 126
#define GK_EXIT_NOT_FOUND 127

/* ---- the spawn description --------------------------------------------- */

/* The namespace flags of clone(2), for callers that cannot see <sched.h>'s
 * _GNU_SOURCE part (Swift's Glibc module). */
#define GK_CLONE_NEWNS 0x00020000
#define GK_CLONE_NEWCGROUP 0x02000000
#define GK_CLONE_NEWUTS 0x04000000
#define GK_CLONE_NEWIPC 0x08000000
#define GK_CLONE_NEWUSER 0x10000000
#define GK_CLONE_NEWPID 0x20000000
#define GK_CLONE_NEWNET 0x40000000
#define GK_O_PATH 010000000

enum gk_mount_kind {
    GK_MOUNT_FS = 0,   /* a filesystem: mount(source, target, fstype, flags, data) */
    GK_MOUNT_BIND = 1, /* a bind of a host path, cloned before pivot_root */
};

/*
 * A mount's target is resolved inside the container's root (openat2 with
 * RESOLVE_IN_ROOT), missing directories made there, and the mount placed
 * on the descriptor found: no symlink in the image can send it elsewhere.
 */
struct gk_mount {
    int kind;                  /* enum gk_mount_kind */
    const char *source;        /* host path for binds, else the fs source */
    const char *target;        /* absolute path inside the container */
    const char *fstype;        /* GK_MOUNT_FS only */
    const char *data;          /* fs options, or NULL */
    unsigned long flags;       /* MS_*; on a bind, for its top mount only */
    unsigned long propagation; /* MS_PRIVATE, MS_SHARED, ... | MS_REC, or 0 */
    int recursive;             /* rbind */
    unsigned long rec_flags;   /* binds: MS_RDONLY, MS_NOSUID... on every mount of the tree ("rro") */
    int copy_up;               /* binds: seed an empty source with the target's contents (volumes) */
    int after_go;              /* binds, with GK_SPAWN_LATE_GO: the source is one of the container's own
                                  groups, made while the child mounts what comes before it: GO is
                                  awaited and the source opened only when this mount's turn comes */
};

struct gk_device {
    const char *path; /* absolute path inside the container */
    mode_t mode;      /* S_IFCHR or S_IFBLK | permission bits */
    unsigned int major, minor;
    uid_t uid;
    gid_t gid;
};

/* setns targets: descriptors opened by the parent, or -1. */
struct gk_ns_join {
    int fd;
    int nstype; /* CLONE_NEW* */
};

#define GK_SPAWN_LOOPBACK_UP 0x1    /* bring lo up (a new network namespace) */
#define GK_SPAWN_DEV_SYMLINKS 0x2   /* /dev/fd, stdin, stdout, stderr, ptmx links */
#define GK_SPAWN_ROOT_READONLY 0x4  /* remount / read-only after the mounts */
#define GK_SPAWN_TERMINAL 0x8       /* a pty from the container's devpts as stdio */
#define GK_SPAWN_SET_CAPS 0x10      /* apply the capability sets below */
#define GK_SPAWN_NO_NEW_PRIVS 0x20  /* PR_SET_NO_NEW_PRIVS before exec */
#define GK_SPAWN_INIT 0x40          /* PID 1 is a tiny init that runs the command */
/* Wait for GO just before the device nodes instead of first: the child
 * mounts its root and everything else while the parent is still making its
 * cgroups. Its device nodes, and all that follows, are made inside its
 * groups (the devices controller judges mknod). A mount marked `after_go`
 * (the container's own groups, bound for an OCI "cgroup" mount) waits for
 * GO where it comes, after the mounts before it. Not for a config whose
 * other mounts depend on the groups (a block device's filesystem, a volume
 * to fill). */
#define GK_SPAWN_LATE_GO 0x80
/* A new cgroup namespace, unshared once GO says the child is in its groups
 * (a namespace made by clone would be rooted at the parent's groups). */
#define GK_SPAWN_CGROUP_NS 0x100
/* A new network namespace, unshared by the child itself at the end of its
 * prologue, before any mount (with GK_SPAWN_LOOPBACK_UP, lo up later). */
#define GK_SPAWN_UNSHARE_NET 0x200
/* Write oom_score_adj (the process's own, through the host's /proc, before
 * any namespace is joined). */
#define GK_SPAWN_OOM_SCORE_ADJ 0x400
/* No mount namespace of the container's own: the host's is kept (chroot
 * into rootfs; nothing is mounted; for exec, into the directory open as
 * rootfs_tree, the first process's root) ... */
#define GK_SPAWN_CHROOT 0x800
/* ... or one joined by path: its root is the container's as it is. */
#define GK_SPAWN_JOINED_ROOT 0x1000
/* Clone into the PID namespace open as pid_ns_fd (joined by path). */
#define GK_SPAWN_JOIN_PID 0x2000
/* A user namespace (made by clone, its uid_map and gid_map written by the
 * parent before GO; or joined by path): once GO has come and the joins are
 * done, the child becomes the namespace's root (setresgid, setgroups,
 * setresuid 0), and device nodes are the host's, bound (a user namespace
 * may not mknod). */
#define GK_SPAWN_USERNS 0x4000
/* rootfs_tree is a detached mount of rootfs (idmapped: gk_idmapped_tree)
 * moved onto rootfs in place of a bind. */
#define GK_SPAWN_ROOTFS_TREE 0x8000
/* Stop before pivot_root for the runtime's hooks (see 4. above). */
#define GK_SPAWN_HOOKS 0x10000
/* gocker itself runs in a user namespace (rootless, see rootless.c):
 * device nodes are the host's, bound, as with GK_SPAWN_USERNS. */
#define GK_SPAWN_BIND_DEVICES 0x20000
/* setgroups is denied in gocker's user namespace (rootless, a user with no
 * range in /etc/subgid): the process keeps the groups it has. */
#define GK_SPAWN_KEEP_GROUPS 0x40000
/* With `saved_sync`: GK_MSG_SAVED is sent right after `go_sent` (which has
 * saved the state naming the child), before READY, so that the child finds
 * it waiting at READY and goes on to the exec FIFO without a round trip
 * (a foreground `run`, whose start follows at once). Ignored with
 * GK_SPAWN_HOOKS, whose answer the child reads first. The child gives no
 * answer to it: the caller neither sends it again nor may exit before the
 * child does (only then would the parent-death signal, cleared once it is
 * read, matter). */
#define GK_SPAWN_SAVED_EARLY 0x80000
/* With GK_SPAWN_LATE_GO: the network namespace (lo up) is made by the
 * parent while the child sets itself up, and comes with GO, after the
 * `tasks` files; the child joins it then. So the child waits for GO before
 * its first sysfs mount and before its sysctls, which name the namespace
 * they are made in. The parent also makes the groups while the child is
 * cloned, not after, where it is cloned sharing gocker's memory (see
 * spawn.c's vm_clone_start): `before_go` is then called with pid 0 (the
 * child joins its groups itself, through the files); otherwise after the
 * clone, with the pid, as usual. */
#define GK_SPAWN_NET_AT_GO 0x100000

/* One OCI hook the child runs (createContainer, startContainer). */
struct gk_hook {
    const char *kind;        /* "createContainer", for messages */
    const char *path;        /* absolute */
    const char *const *argv; /* NULL-terminated; argv[0] is the hook's */
    const char *const *envp; /* NULL-terminated; exactly the hook's */
    int timeout;             /* seconds; 0: none */
};

/* Hooks of one kind and the state on their stdin: the runtime-spec's JSON
 * with GK_SECCOMP_PID_WIDTH spaces at `pid_at` (non-zero) for the pid as
 * the host sees it. */
struct gk_hook_set {
    const struct gk_hook *hooks;
    size_t nhooks;
    const char *state;
    size_t state_len;
    size_t pid_at;
};

/* Called by the parent at GK_MSG_HOOKS: 0 to go on, else the child is
 * killed and this is gk_spawn's result. */
typedef int (*gk_hooks_fn)(pid_t pid, void *ctx);

/* Capability sets, one bit per CAP_* number. */
struct gk_caps {
    uint64_t bounding, effective, permitted, inheritable, ambient;
};

struct gk_rlimit {
    int resource; /* RLIMIT_* */
    uint64_t soft, hard;
};

struct gk_spawn {
    unsigned long clone_flags; /* CLONE_NEW* for the namespaces to create */
    const struct gk_ns_join *joins;
    size_t njoins;

    const char *hostname;   /* NULL: leave as is */
    unsigned long root_propagation; /* MS_PRIVATE|MS_REC by default */

    const char *rootfs;       /* absolute host path of the root directory */
    const char *overlay_data; /* non-NULL: mount an overlay at rootfs with these options */

    const struct gk_mount *mounts;
    size_t nmounts;
    const struct gk_device *devices;
    size_t ndevices;

    const char *const *argv; /* argv[0] is looked up in path when it has no '/' */
    const char *const *envp;
    const char *path;        /* PATH for the lookup (the container's), or NULL */
    const char *cwd;

    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
    /* Non-NULL: "user[:group]" (names or ids) resolved in the container's own
     * /etc/passwd and /etc/group after pivot_root; replaces uid, gid and
     * groups, adding the groups that list the user. */
    const char *user;
    const char *const *group_add; /* more groups: names or ids */
    size_t ngroup_add;
    /* envp has one spare NULL slot at its end: without a HOME entry the
     * child adds HOME from the user's passwd entry ("/" if none). */
    int env_spare_slot;

    struct gk_caps caps; /* with GK_SPAWN_SET_CAPS */
    const struct gk_rlimit *rlimits;
    size_t nrlimits;
    const char *const *masked_paths; /* /dev/null (files) or an empty read-only tmpfs (dirs) over each */
    size_t nmasked;
    const char *const *readonly_paths; /* bound read-only onto themselves */
    size_t nreadonly;

    unsigned int flags; /* GK_SPAWN_* */
    int exec_fifo_fd;   /* O_PATH descriptor of the exec FIFO */
    /* Non-NULL: the sync socket stays open after READY and is stored here;
     * the child waits for GK_MSG_SAVED on it (gk_send_saved) before it drops
     * its parent-death signal. The caller closes it. */
    int *saved_sync;
    int stdio[3];       /* the command's stdin, stdout, stderr, or -1 to inherit */

    /* With cgroup_joined non-NULL: the child is cloned straight into the
     * cgroup v2 directory open as cgroup_fd (clone3 with CLONE_INTO_CGROUP)
     * where the kernel has it, and *cgroup_joined is set to 1 if it was, before
     * before_go runs; else it is set to 0 and before_go places the child. */
    int cgroup_fd;
    int *cgroup_joined;

    /* A compiled seccomp filter (struct sock_filter[seccomp_len]) or NULL,
     * loaded with the SECCOMP_FILTER_FLAG_* in seccomp_flags. With
     * seccomp_state non-NULL the filter notifies: seccomp_listener is the
     * socket connected to the listenerPath, seccomp_state the container
     * process state (seccomp_state_len bytes) with GK_SECCOMP_PID_WIDTH
     * spaces at each non-zero offset of seccomp_pid_at for the pid. */
    const void *seccomp_program;
    size_t seccomp_len;
    unsigned int seccomp_flags;
    /* 1: load it right after READY (gk_seccomp_early said it may be) */
    int seccomp_early;
    int seccomp_listener;
    const char *seccomp_state;
    size_t seccomp_state_len;
    size_t seccomp_pid_at[2];

    int oom_score_adj;          /* with GK_SPAWN_OOM_SCORE_ADJ */
    int pid_ns_fd;              /* with GK_SPAWN_JOIN_PID */
    /* Non-NULL: `label` is written to the file `label_path` (of the host's
     * /proc/self/attr) before any namespace is joined: the AppArmor profile
     * or SELinux label the command gets at execve. */
    const char *label_path;
    const char *label;
    /* linux.sysctl: each value written to its /proc/sys path once the
     * namespaces are joined, before the root filesystem is set up. */
    const char *const *sysctl_paths;
    const char *const *sysctl_values;
    size_t nsysctl;

    /* Non-NULL: the new user namespace's maps ("0 100000 65536\n..."),
     * written by the parent right after clone. */
    const char *uid_map;
    const char *gid_map;
    /* Namespaces the child unshares itself once it has joined those in
     * `joins` (a user namespace joined by path must own them). */
    unsigned long unshare_flags;
    int rootfs_tree; /* with GK_SPAWN_ROOTFS_TREE */
    /* With GK_SPAWN_HOOKS: the parent's side of GK_MSG_HOOKS. */
    gk_hooks_fn run_hooks;
    void *hooks_ctx;
    struct gk_hook_set create_hooks; /* createContainer */
    struct gk_hook_set start_hooks;  /* startContainer */

    /* Non-NULL: the memory this description points to may be kept for the
     * child past gk_spawn's return, and `release(release_ctx)` is called
     * exactly once when the child reads it no more (from another thread,
     * possibly after gk_spawn returned). The first process may then share
     * the parent's memory until its execve instead of getting a copy of
     * it: see launch in spawn.c. */
    void (*release)(void *ctx);
    void *release_ctx;

    /* Non-NULL: called in the parent as `go_sent(pid, go_sent_ctx)` once
     * GO is sent, while the child goes on to READY (gocker writes the state
     * naming the pid there); a non-zero return kills the child and is
     * returned as gk_spawn's result. */
    int (*go_sent)(pid_t pid, void *ctx);
    void *go_sent_ctx;
};

#define GK_SECCOMP_PID_WIDTH 10

/* ---- seccomp (seccomp.c; the parent's side allocates) ------------------- */

struct gk_seccomp_arg {
    unsigned int index;
    const char *op; /* SCMP_CMP_* */
    uint64_t value, value_two;
};

struct gk_seccomp_rule {
    const char *const *names;
    size_t nnames;
    const char *action; /* SCMP_ACT_* */
    int64_t errno_ret;  /* -1: not given */
    const struct gk_seccomp_arg *args;
    size_t nargs;
};

/* An OCI linux.seccomp, its names as the runtime-spec spells them. */
struct gk_seccomp_profile {
    const char *default_action;
    int64_t default_errno_ret; /* -1: not given */
    const char *const *arches; /* SCMP_ARCH_* */
    size_t narches;
    const char *const *flags; /* SECCOMP_FILTER_FLAG_* */
    size_t nflags;
    const struct gk_seccomp_rule *rules;
    size_t nrules;
    /* 1: libseccomp's program as it is, not as a tree (for comparing the
     * two) */
    int plain;
};

struct gk_seccomp_filter {
    void *program; /* struct sock_filter[len], malloc'd */
    size_t len;
    unsigned int flags; /* for seccomp(2) */
    int notify;         /* some rule is SCMP_ACT_NOTIFY */
};

/* Compiles `p` with libseccomp for this machine's architecture and those
 * the profile lists. 0, or -errno with `what` naming the action, operator,
 * architecture, flag or syscall that cannot be had. A syscall name that
 * libseccomp does not know is left out of a rule that allows it (the call
 * gets the default action), and is an error in any other rule. */
int gk_seccomp_compile(const struct gk_seccomp_profile *p, struct gk_seccomp_filter *out, char *what, size_t size);
void gk_seccomp_free(struct gk_seccomp_filter *f);
/* `program` (struct sock_filter[len]) rewritten as a search tree over the
 * architecture and then the syscall number, each leaf an action or the
 * original's instructions from where they look at arguments: the same
 * filter, but what a call walks (and what the kernel walks for every
 * number when it loads the filter) is a few instructions instead of
 * hundreds. 1 with `*tree` malloc'd, or 0 when the program does something
 * before its argument checks that the rewrite does not follow (it is then
 * used as it is). See seccomp_tree.c. */
int gk_seccomp_tree(const void *program, size_t len, void **tree, size_t *tree_len);
/* 1 when `program` lets through, whatever their arguments, every call the
 * first process makes between READY and the exec FIFO's open (the SAVED
 * handshake, the FIFO's open and close) on this machine's architecture:
 * it may then be loaded right after READY (see 3. above). */
int gk_seccomp_early(const void *program, size_t len);
/* Loads `program` (no flags) in a child process of its own, which then
 * exits (or is killed by the filter): 0 when the kernel takes it, or
 * -errno. */
int gk_seccomp_try(const void *program, size_t len);
/* libseccomp's version, "2.5.4". */
const char *gk_seccomp_version(void);
/* A SOCK_STREAM socket connected to the unix socket `path` (close-on-exec),
 * or -errno: a seccomp listener's, a console socket. */
int gk_connect_unix(const char *path);
/* Rootless (rootless.c): whether the constructor joined the user's
 * namespaces, with the user, its group and its runtime directory; and
 * those put in the environment (GOCKER_ROOTLESS_*) for the gockers this
 * one starts, once main has its arguments. */
int gk_rootless_state(unsigned int *uid, unsigned int *gid, const char **dir);
void gk_rootless_export(void);
/* A pipe, both ends close-on-exec: 0 or -errno. */
int gk_pipe_cloexec(int fds[2]);
/* Starts a helper program (slirp4netns) in a session of its own: stdin and
 * stdout /dev/null, stderr appended to nothing but `log_path` (made 0600),
 * `fds[i]` as its descriptor 3 + i (at most 8), no other descriptor, every
 * signal's disposition and mask at their defaults. Its pid, or -errno. */
int gk_spawn_helper(const char *path, char *const argv[], const int *fds, int nfds, const char *log_path);

/*
 * Clones the container's first process and lets it run up to READY.
 * On success returns 0, stores the child's pid (as seen from the caller) in
 * *pid and leaves the child waiting on the exec FIFO. With GK_SPAWN_TERMINAL
 * the pty master the child sent is stored in *terminal_fd (else -1). On failure returns
 * -errno; if the child reported the failure, *err holds its record
 * (err->type == GK_MSG_ERROR) and the child has been reaped.
 *
 * Before GO is sent, `before_go(pid, ctx, go_fds, &n)` is called in the
 * parent if not NULL (with GK_SPAWN_LATE_GO gocker makes the groups
 * there; the spec's `go_sent` follows GO); a non-zero return kills the
 * child and is returned as the result. It may store up to GK_MAX_GO_FDS descriptors in go_fds (and
 * their count in n): each is a cgroup v1 `tasks` file, sent with GO, which
 * the child joins by writing 0 to it (moving itself, its only thread,
 * without the global lock that moving another process takes, and its RCU
 * grace period); with GK_SPAWN_NET_AT_GO the last one is the network
 * namespace the child joins. They are closed in the parent once sent. With
 * GK_SPAWN_NET_AT_GO `pid` may be 0 (see there): the child is being cloned.
 */
typedef int (*gk_before_go_fn)(pid_t pid, void *ctx, int *go_fds, size_t *ngo_fds);
int gk_spawn(const struct gk_spawn *spec, gk_before_go_fn before_go, void *ctx,
             pid_t *pid, int *terminal_fd, struct gk_msg *err);

/* Sends GK_MSG_SAVED on the sync socket a gk_spawn with `saved_sync` left
 * open (the state names the child now) and waits for the child's answer
 * that it has cleared its parent-death signal. Returns 0 or -errno. */
int gk_send_saved(int sync);

/*
 * Starts a process inside the running container whose namespaces are given
 * (`gocker exec`). Only the process part of `spec` is used: joins (in the
 * order to join them: user first), argv, envp, path, cwd (must exist), the
 * user, capabilities, rlimits, flags GK_SPAWN_TERMINAL, GK_SPAWN_SET_CAPS and
 * GK_SPAWN_NO_NEW_PRIVS, and stdio. `pid_ns_fd` (or -1) is the container's
 * PID namespace: the calling thread enters it only around the clone, so the
 * new process really is a member and is still the caller's child.
 *
 *      parent                               child
 *      clone() ----------------------------> signals reset, PDEATHSIG
 *      before_go(pid): joins the cgroups
 *      GK_MSG_GO --------------------------> setns in order, pty, chdir,
 *                                            user, rlimits, capabilities
 *                 <------------------------- GK_MSG_TERMINAL (with a terminal)
 *                 <------------------------- GK_MSG_ERROR, or end of file
 *                                            when execve() closed the socket
 *
 * Returns 0 once the command runs, with its pid in *pid; -ESRCH when the
 * container's PID namespace has no init any more; else -errno, with the
 * child's record in *err when it reported one (the child is then reaped).
 */
int gk_exec(const struct gk_spawn *spec, int pid_ns_fd, gk_before_go_fn before_go, void *ctx,
            pid_t *pid, int *terminal_fd, struct gk_msg *err);

/*
 * The `start` side of the exec FIFO. Opens `fifo_path` for reading and
 * waits until the process `pid` has either exec'd (returns 0) or reported
 * a failure (returns -EIO with *err filled in), or died (returns -ESRCH).
 */
int gk_start_wait(const char *fifo_path, pid_t pid, struct gk_msg *err);

/* gk_start_wait on the FIFO's read end opened already (O_RDONLY |
 * O_NONBLOCK), which it closes. Opened before the child reaches its open of
 * the write end, it lets the child go on to execve without waiting for
 * `start` (a foreground `run` starts what it created at once). */
int gk_start_wait_fd(int fd, pid_t pid, struct gk_msg *err);

/*
 * Signals forwarded to a foreground container's PID 1 by gk_wait_forward.
 * gk_forward_block() blocks them (and SIGCHLD) in the calling thread; call
 * it before any thread is created and before gk_spawn so that none is lost.
 */
int gk_forward_block(void);

/*
 * Waits for `pid` to end, forwarding INT, TERM, HUP, QUIT, USR1, USR2 and
 * WINCH to it. Returns the wait status (as waitpid) or -errno.
 */
int gk_wait_forward(pid_t pid);

/*
 * Like gk_wait_forward, for a container whose stdout and stderr are the
 * write ends of the pipes `out_r` and `err_r`: what comes through is copied
 * to `out_fd` and `err_fd` and kept in the container log at `log_path`
 * (docker's json-file lines, rotated past `log_max` bytes).
 */
int gk_wait_logged(pid_t pid, int out_r, int err_r, int out_fd, int err_fd, const char *log_path,
                   unsigned long long log_max);

/*
 * Like gk_wait_forward, with a terminal: copies `in_fd` (or nothing if -1)
 * to the pty master and the master to `out_fd`, and on SIGWINCH copies the
 * window size of `winsize_fd` to the master instead of forwarding it.
 * Returns the wait status once the process has ended and its output is
 * drained. With `log_path`, what the terminal prints is also kept there
 * as the container's stdout (json-file lines, rotated past `log_max`).
 */
int gk_relay_wait(pid_t pid, int master, int in_fd, int out_fd, int winsize_fd, const char *log_path,
                  unsigned long long log_max);

/* Puts the terminal `fd` in raw mode, saving its mode in `saved` (a buffer
 * of gk_termios_size() bytes); gk_term_restore puts it back. */
size_t gk_termios_size(void);
int gk_term_raw(int fd, void *saved);
int gk_term_restore(int fd, const void *saved);

/* Sends `fd` on the SOCK_SEQPACKET socket `sock` as one GK_MSG_TERMINAL
 * record (the sync socket, and the monitor's console socketpair). */
int gk_send_fd(int sock, int fd);

/* The most descriptors one record carries. */
#define GK_MAX_GO_FDS 16
/* A record with `n` descriptors attached (SCM_RIGHTS); 0 or -errno. */
int gk_send_fds(int sock, const struct gk_msg *m, const int *fds, size_t n);
/* Receives one record and up to `max` descriptors (close-on-exec; any past
 * `max` are closed): how many came, or -errno (-EPIPE at end of file,
 * -EMSGSIZE when the kernel could not pass them all). */
int gk_recv_fds(int sock, struct gk_msg *m, int *fds, size_t max);

/* Connects to the unix socket at `socket_path` and sends the pty `master`
 * there as SCM_RIGHTS (runc's --console-socket protocol). 0 or -errno. */
int gk_send_console(const char *socket_path, int master);

/* The width of the terminal on fd, in columns; 0 where it is none. */
int gk_term_columns(int fd);
/* Copies the window size of terminal `from` to terminal `to`. */
int gk_copy_winsize(int from, int to);

/* The start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 if it does not exist. Guards against pid reuse. */
unsigned long long gk_process_start_time(pid_t pid);

/* The exit status with which the monitor's "exited" command asks for the
 * container to be started again (see monitor.c). */
#define GK_MONITOR_RESTART 3

/* The filesystem type (statfs f_type) of `path`, or -errno: tells cgroup v2
 * (0x63677270) from v1. Swift's Glibc module has no statfs. */
long gk_fs_type(const char *path);

/* Moves the calling thread into a new network namespace with lo up and
 * returns a descriptor of it (close-on-exec), or -errno. For a thread of
 * its own that ends right after: a container's first process then joins
 * the namespace (a join of type CLONE_NEWNET) instead of having clone make
 * one, so that the kernel's work to make it overlaps the rest of the start. */
int gk_new_netns(void);

/* The same, for a thread that goes on with other work (the driver's, for
 * GK_SPAWN_NET_AT_GO): the thread is back in its own namespace when this
 * returns a descriptor (a failure to get back closes the new one and is
 * returned). After any failure the thread may be in neither: it should do
 * no network work again. */
int gk_new_netns_aside(void);

/* Removes `path` and everything under it (rm -rf), never following a
 * symlink: every directory is opened beside its name with O_NOFOLLOW, and a
 * symlink is removed, not what it points to. A missing path is not an
 * error. 0, or -errno with the call that failed in *call and the path it
 * failed on in `failed` (room for `n` bytes). For the parent only: it
 * allocates. */
int gk_remove_tree(const char *path, const char **call, char *failed, size_t n);

/* A detached mount of `path` (and the mounts below it), idmapped through
 * a user namespace with these maps (made for the purpose by a child that
 * exits at once): files owned by host id N show as the id the maps give N
 * inside, and are written back as N. The descriptor (close-on-exec), or
 * -errno with the call that failed in *call. For the parent. */
int gk_idmapped_tree(const char *path, const char *uid_map, const char *gid_map, const char **call);

/* The type of the namespace open as `fd` (a CLONE_NEW* flag), or -errno
 * (-ENOTTY: not a namespace). */
int gk_ns_type(int fd);

/* The stage's name, for messages ("mount", "pivot_root", ...). */
const char *gk_stage_name(int stage);

#ifdef __cplusplus
}
#endif
#endif
