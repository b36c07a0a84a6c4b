/*
 * The device allow-list on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program
 * written as instructions by hand, loaded and attached with bpf(2). See
 * include/gocker_cgroup.h for what the rules mean.
 *
 * The program's context is struct bpf_cgroup_dev_ctx:
 *   access_type = (access bits << 16) | device type (1 block, 2 char),
 *   major, minor.
 * It loads them into r2 (type), r3 (access), r4 (major), r5 (minor), then
 * tests the rules from the last to the first; the first match returns its
 * verdict (1 allow, 0 deny). Nothing matched: 1. A rule that matches
 * everything ends the program there.
 */
#include "gocker_cgroup.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

/* A conditional jump to the end of the rule's block, patched once its
 * length is known. */
#define NEXT_RULE 0x7fff

int gk_dev_program(const struct gk_dev_rule *rules, size_t n, void *out, size_t cap)
{
    struct bpf_insn *p = out;
    size_t len = 0;
#define EMIT(x)                   \
    do {                          \
        if (len >= cap)           \
            return -E2BIG;        \
        p[len++] = (x);           \
    } while (0)

    if (n > GK_DEV_MAX_RULES)
        return -E2BIG;
    EMIT(INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0));
    EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0));
    EMIT(INSN(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16));
    EMIT(INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff));
    EMIT(INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, major), 0));
    EMIT(INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0));

    for (size_t k = n; k-- > 0;) {
        const struct gk_dev_rule *r = &rules[k];
        unsigned acc = r->access & (GK_DEV_MKNOD | GK_DEV_READ | GK_DEV_WRITE);
        if (r->type != 'a' && r->type != 'c' && r->type != 'b')
            return -EINVAL;
        if (acc == 0 || r->major > 0xfff || r->minor > 0xfffff)
            return -EINVAL;
        size_t start = len;
        if (r->type != 'a')
            EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, NEXT_RULE,
                      r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR));
        if (r->allow && acc != (GK_DEV_MKNOD | GK_DEV_READ | GK_DEV_WRITE)) {
            /* Every requested bit must be allowed: access & ~acc == 0. */
            EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
            EMIT(INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_1, 0, 0, (int32_t)(~acc & 0xffff)));
            EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, NEXT_RULE, 0));
        } else if (!r->allow && acc != (GK_DEV_MKNOD | GK_DEV_READ | GK_DEV_WRITE)) {
            /* Any requested bit denied: access & acc != 0. */
            EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
            EMIT(INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_1, 0, 0, (int32_t)acc));
            EMIT(INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_1, 0, NEXT_RULE, 0));
        }
        if (r->type != 'a' && r->major >= 0)
            EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, NEXT_RULE, (int32_t)(uint32_t)r->major));
        if (r->type != 'a' && r->minor >= 0)
            EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, NEXT_RULE, (int32_t)(uint32_t)r->minor));
        int unconditional = len == start;
        EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0));
        EMIT(INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
        /* A rule that matches everything ends the program: the verifier
         * refuses unreachable instructions. */
        if (unconditional)
            return (int)len;
        for (size_t i = start; i < len; i++)
            if (p[i].off == NEXT_RULE && BPF_CLASS(p[i].code) == BPF_JMP && BPF_OP(p[i].code) != BPF_EXIT)
                p[i].off = (int16_t)(len - i - 1);
    }
    EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1));
    EMIT(INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
#undef EMIT
    return (int)len;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

int gk_dev_attach(int cgroup_fd, const struct gk_dev_rule *rules, size_t n, char *log, size_t logsize)
{
    struct bpf_insn insns[8 + GK_DEV_MAX_RULES * 8];
    if (log && logsize)
        log[0] = '\0';
    int count = gk_dev_program(rules, n, insns, sizeof insns / sizeof insns[0]);
    if (count < 0)
        return count;

    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)count;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    int prog = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    if (prog < 0) {
        int err = errno;
        if (log && logsize > 1) {
            /* Once more with the verifier's log, to say why. */
            attr.log_buf = (uint64_t)(uintptr_t)log;
            attr.log_size = (uint32_t)logsize;
            attr.log_level = 1;
            prog = (int)sys_bpf(BPF_PROG_LOAD, &attr);
            log[logsize - 1] = '\0';
        }
        if (prog < 0)
            return -err;
    }

    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    int ret = sys_bpf(BPF_PROG_ATTACH, &attr) < 0 ? -errno : 0;
    close(prog);
    return ret;
}
