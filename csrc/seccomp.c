/*
 * seccomp: an OCI `linux.seccomp` profile compiled into a classic BPF
 * program in the parent (libseccomp, which allocates: parent only), and
 * that program loaded in the child with seccomp(2) (no allocation, async-
 * signal-safe), with the listener descriptor of a notifying filter sent to
 * the engine's socket.
 */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

/* ---- the parent: names to values, rules to a program ------------------- */

static void say(char *what, size_t size, const char *a, const char *name, const char *b)
{
    size_t n = gk_strlcat(what, 0, size, a);
    if (name) {
        n = gk_strlcat(what, n, size, "\"");
        n = gk_strlcat(what, n, size, name);
        n = gk_strlcat(what, n, size, "\"");
    }
    if (b)
        gk_strlcat(what, n, size, b);
}

/* A name of the spec's and its value. */
struct named {
    const char *name;
    uint32_t value;
};

/* The value of `name` in `table`: 0, or -EINVAL when it is not there. */
static int find_named(const struct named *table, size_t n, const char *name, uint32_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].value;
            return 0;
        }
    return -EINVAL;
}

/* The action named `name` (SCMP_ACT_*), with `errno_ret` (-1: none given)
 * for ERRNO and TRACE; 0 or -EINVAL. */
static int action_value(const char *name, int64_t errno_ret, uint32_t *out, char *what, size_t size)
{
    static const struct named plain[] = {
        {"SCMP_ACT_KILL", SCMP_ACT_KILL},       {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
        {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS}, {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
        {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},     {"SCMP_ACT_LOG", SCMP_ACT_LOG},
        {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY},
    };
    /* As the runtime-spec says, ERRNO and TRACE return EPERM unless told. */
    uint32_t ret = errno_ret < 0 ? EPERM : (uint32_t)errno_ret;
    if (errno_ret > 0xffff) {
        say(what, size, "errnoRet of ", name, " is out of range");
        return -EINVAL;
    }
    if (strcmp(name, "SCMP_ACT_ERRNO") == 0) {
        *out = SCMP_ACT_ERRNO(ret);
        return 0;
    }
    if (strcmp(name, "SCMP_ACT_TRACE") == 0) {
        *out = SCMP_ACT_TRACE(ret);
        return 0;
    }
    if (find_named(plain, sizeof plain / sizeof plain[0], name, out) == 0) {
        if (errno_ret >= 0) {
            say(what, size, "errnoRet is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not ", name, NULL);
            return -EINVAL;
        }
        return 0;
    }
    say(what, size, "unknown seccomp action ", name, NULL);
    return -EINVAL;
}

static int compare_op(const char *name, enum scmp_compare *out)
{
    static const struct named ops[] = {
        {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
        {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    };
    uint32_t v;
    if (find_named(ops, sizeof ops / sizeof ops[0], name, &v) < 0)
        return -EINVAL;
    *out = (enum scmp_compare)v;
    return 0;
}

static int filter_flag(const char *name, unsigned int *out)
{
    static const struct named flags[] = {
        {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
        {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
        {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
        {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
    };
    return find_named(flags, sizeof flags / sizeof flags[0], name, out);
}

/* "SCMP_ARCH_X86_64" -> libseccomp's token for "x86_64". */
static int arch_token(const char *name, uint32_t *out)
{
    static const char prefix[] = "SCMP_ARCH_";
    char lower[32];
    if (strncmp(name, prefix, sizeof prefix - 1) != 0)
        return -EINVAL;
    const char *p = name + sizeof prefix - 1;
    size_t n = strlen(p);
    if (n == 0 || n >= sizeof lower)
        return -EINVAL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] - 'A' + 'a') : p[i];
    uint32_t token = seccomp_arch_resolve_name(lower);
    if (token == 0)
        return -EINVAL;
    *out = token;
    return 0;
}

/* A syscall name as kernels spell them: the shape gocker checks for a name
 * that libseccomp does not know. */
static int well_formed(const char *name)
{
    if (!name[0])
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

static int add_rule(scmp_filter_ctx ctx, const struct gk_seccomp_rule *r, uint32_t action, char *what, size_t size)
{
    struct scmp_arg_cmp conds[6];
    int count[6] = {0};
    if (r->nargs > 6) {
        say(what, size, "too many argument conditions for ", r->nnames ? r->names[0] : "", NULL);
        return -EINVAL;
    }
    for (size_t i = 0; i < r->nargs; i++) {
        const struct gk_seccomp_arg *a = &r->args[i];
        if (a->index >= 6) {
            say(what, size, "argument index out of range (0-5) for ", r->nnames ? r->names[0] : "", NULL);
            return -EINVAL;
        }
        if (compare_op(a->op, &conds[i].op) < 0) {
            say(what, size, "unknown seccomp operator ", a->op, NULL);
            return -EINVAL;
        }
        conds[i].arg = a->index;
        conds[i].datum_a = a->value;
        conds[i].datum_b = a->value_two;
        count[a->index]++;
    }
    /* libseccomp takes one condition per argument in a rule: conditions
     * that name one argument twice are added as rules of their own (either
     * matches), as runc adds them. */
    int split = 0;
    for (int i = 0; i < 6; i++)
        if (count[i] > 1)
            split = 1;
    for (size_t k = 0; k < r->nnames; k++) {
        const char *name = r->names[k];
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            if (!well_formed(name)) {
                say(what, size, "invalid syscall name ", name, NULL);
                return -EINVAL;
            }
            /* A name this libseccomp cannot number is left out when the
             * rule lets the call through (it then gets the default action,
             * as every call gets that a filter cannot name: docker's
             * profile lists calls newer than many libseccomps). A rule that
             * restricts it cannot be enforced: an error, never a filter
             * weaker than the one asked for. */
            if (action == SCMP_ACT_ALLOW || action == SCMP_ACT_LOG)
                continue;
            say(what, size, "syscall ", name, " is unknown to libseccomp: cannot enforce its rule");
            return -EINVAL;
        }
        int rc;
        if (split) {
            for (size_t i = 0; i < r->nargs; i++)
                if ((rc = seccomp_rule_add_array(ctx, action, nr, 1, &conds[i])) < 0)
                    goto failed;
            continue;
        }
        rc = seccomp_rule_add_array(ctx, action, nr, (unsigned int)r->nargs, conds);
        if (rc >= 0)
            continue;
    failed:
        say(what, size, "add seccomp rule for ", name, NULL);
        return rc;
    }
    return 0;
}

int gk_seccomp_compile(const struct gk_seccomp_profile *p, struct gk_seccomp_filter *out, char *what, size_t size)
{
    uint32_t def;
    int r;
    memset(out, 0, sizeof *out);
    what[0] = '\0';
    if ((r = action_value(p->default_action, p->default_errno_ret, &def, what, size)) < 0)
        return r;
    if (def == SCMP_ACT_NOTIFY) {
        say(what, size, "SCMP_ACT_NOTIFY cannot be the default action", NULL, NULL);
        return -EINVAL;
    }
    unsigned int flags = 0;
    for (size_t i = 0; i < p->nflags; i++) {
        unsigned int f;
        if (filter_flag(p->flags[i], &f) < 0) {
            say(what, size, "unknown seccomp flag ", p->flags[i], NULL);
            return -EINVAL;
        }
        flags |= f;
    }
    uint32_t arches[32];
    if (p->narches > 32) {
        say(what, size, "too many seccomp architectures", NULL, NULL);
        return -EINVAL;
    }
    for (size_t i = 0; i < p->narches; i++)
        if (arch_token(p->arches[i], &arches[i]) < 0) {
            say(what, size, "unknown seccomp architecture ", p->arches[i], NULL);
            return -EINVAL;
        }

    scmp_filter_ctx ctx = seccomp_init(def);
    if (!ctx) {
        say(what, size, "seccomp_init", NULL, NULL);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->narches; i++) {
        r = seccomp_arch_add(ctx, arches[i]);
        if (r < 0 && r != -EEXIST) {
            say(what, size, "add seccomp architecture ", p->arches[i], NULL);
            goto done;
        }
    }
    int notify = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        const struct gk_seccomp_rule *rule = &p->rules[i];
        uint32_t action;
        if ((r = action_value(rule->action, rule->errno_ret, &action, what, size)) < 0)
            goto done;
        /* A rule that does what the default does changes nothing, and
         * libseccomp refuses it. */
        if (action == def)
            continue;
        if (action == SCMP_ACT_NOTIFY)
            notify = 1;
        if ((r = add_rule(ctx, rule, action, what, size)) < 0)
            goto done;
    }

    /* The program, through a memory file: libseccomp 2.5 exports only to
     * a descriptor. */
    int fd = memfd_create("gocker-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        say(what, size, "memfd_create", NULL, NULL);
        goto done;
    }
    if ((r = seccomp_export_bpf(ctx, fd)) < 0) {
        close(fd);
        say(what, size, "export the seccomp filter", NULL, NULL);
        goto done;
    }
    off_t len = lseek(fd, 0, SEEK_END);
    void *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (!buf || pread(fd, buf, (size_t)len, 0) != len || len % sizeof(struct sock_filter) != 0) {
        r = buf ? -EIO : -ENOMEM;
        free(buf);
        close(fd);
        say(what, size, "read the exported seccomp filter", NULL, NULL);
        goto done;
    }
    close(fd);
    if ((size_t)len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        /* The kernel would refuse it, and only at the container's start. */
        free(buf);
        r = -E2BIG;
        say(what, size, "the seccomp profile compiles to more than 4096 instructions", NULL, NULL);
        goto done;
    }
    out->program = buf;
    out->len = (size_t)len / sizeof(struct sock_filter);
    /* The same filter as a search tree (seccomp_tree.c), when the kernel
     * takes it: what a call walks is a few instructions, and docker's
     * profile loads in a fifth of the time. */
    void *tree;
    size_t tree_len;
    if (!p->plain && gk_seccomp_tree(buf, out->len, &tree, &tree_len)) {
        if (gk_seccomp_try(tree, tree_len) == 0) {
            free(buf);
            out->program = tree;
            out->len = tree_len;
        } else {
            free(tree);
        }
    }
    out->flags = flags;
    out->notify = notify;
    r = 0;
done:
    seccomp_release(ctx);
    return r;
}

int gk_seccomp_early(const void *program, size_t len)
{
    /* What wait_go's caller in spawn.c makes after READY: recv and send
     * (the SAVED handshake), prctl (the parent-death signal), open and
     * close (the FIFO), clock_gettime (a timing mark, without the vDSO),
     * and _exit where one of those fails. */
    static const int calls[] = {SYS_recvfrom, SYS_sendto, SYS_prctl, SYS_openat, SYS_close, SYS_clock_gettime,
                                SYS_exit_group, SYS_exit};
    return gk_seccomp_allows(program, len, seccomp_arch_native(), calls, sizeof calls / sizeof calls[0]);
}

int gk_seccomp_try(const void *program, size_t len)
{
    struct sock_fprog prog = {.len = (unsigned short)len, .filter = (struct sock_filter *)program};
    if (len == 0 || len > BPF_MAXINSNS)
        return -EINVAL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* A filter that refuses the exit ends it with SIGSEGV (glibc's
         * _exit halts): by the default action, not the parent's handler. */
        const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGSYS};
        for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
            signal(fatal[i], SIG_DFL);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            _exit(errno);
        _exit(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? errno : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    /* Only a refused load exits with a code of its own: a filter that
     * was loaded may kill, trap or refuse the exit itself. */
    return WIFEXITED(status) ? -WEXITSTATUS(status) : 0;
}

void gk_seccomp_free(struct gk_seccomp_filter *f)
{
    free(f->program);
    f->program = NULL;
    f->len = 0;
}

const char *gk_seccomp_version(void)
{
    static char v[32];
    if (!v[0]) {
        const struct scmp_version *ver = seccomp_version();
        size_t n = 0;
        char num[12];
        gk_utoa(num, sizeof num, ver->major);
        n = gk_strlcat(v, n, sizeof v, num);
        n = gk_strlcat(v, n, sizeof v, ".");
        gk_utoa(num, sizeof num, ver->minor);
        n = gk_strlcat(v, n, sizeof v, num);
        n = gk_strlcat(v, n, sizeof v, ".");
        gk_utoa(num, sizeof num, ver->micro);
        gk_strlcat(v, n, sizeof v, num);
    }
    return v;
}


/* ---- the child: load, and hand the listener on -------------------------- */

/* Writes `v` right-aligned in the `width` bytes at `dst`, spaces before it
 * (JSON allows them before a number). */
static void put_padded(char *dst, size_t width, unsigned long v)
{
    char digits[24];
    gk_utoa(digits, sizeof digits, v);
    size_t n = strlen(digits);
    if (n > width)
        return;
    memset(dst, ' ', width - n);
    memcpy(dst + width - n, digits, n);
}

int gk_seccomp_load(const struct gk_spawn *s, pid_t host_pid)
{
    if (!s->seccomp_program)
        return 0;
    struct sock_fprog prog = {
        .len = (unsigned short)s->seccomp_len,
        .filter = (struct sock_filter *)s->seccomp_program,
    };
    unsigned int flags = s->seccomp_flags;
    if (s->seccomp_state) {
        /* TSYNC is met (this process has one thread) and the kernel takes
         * it with a listener only as TSYNC_ESRCH. */
        flags = (flags & ~(unsigned int)SECCOMP_FILTER_FLAG_TSYNC) | SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (fd < 0)
        return -errno;
    if (!s->seccomp_state)
        return 0;

    /* The container process state, with this process's pid (as the host
     * sees it) in its two padded places, and the listener attached. */
    char *state = (char *)s->seccomp_state;
    for (int i = 0; i < 2; i++)
        if (s->seccomp_pid_at[i])
            put_padded(state + s->seccomp_pid_at[i], GK_SECCOMP_PID_WIDTH, (unsigned long)host_pid);
    struct iovec iov = {.iov_base = state, .iov_len = s->seccomp_state_len};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    memset(&c, 0, sizeof c);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    int lfd = (int)fd;
    memcpy(CMSG_DATA(cm), &lfd, sizeof lfd);
    ssize_t n;
    do
        n = sendmsg(s->seccomp_listener, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : (size_t)n != s->seccomp_state_len ? EPIPE : 0;
    /* The state goes whole in one message; what is left of a short send
     * follows. */
    if (n > 0 && (size_t)n < s->seccomp_state_len)
        err = gk_send_all(s->seccomp_listener, state + n, s->seccomp_state_len - (size_t)n) < 0 ? EPIPE : 0;
    close(lfd);
    close(s->seccomp_listener);
    return err ? -err : 0;
}
