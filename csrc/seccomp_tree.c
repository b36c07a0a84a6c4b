/*
 * A seccomp program rewritten so that a call's architecture and number are
 * found by binary search, not by one comparison after another.
 *
 * libseccomp 2.5 compares the syscall number with each rule in turn: for
 * docker's profile, 988 instructions of which a call walks ~400 on
 * average. Since 5.11 the kernel runs the filter once for every syscall
 * number of the native and compat architecture when the filter is loaded
 * (to cache the calls it always allows), so that walk, ~900 times over, is
 * most of what loading costs: 1.3 ms here, against 0.1 ms for a tree.
 * libseccomp's own binary-tree option still walks its per-architecture
 * prefix and costs 0.5 ms.
 *
 * The rewrite does not trust any reading of libseccomp's rules: it runs
 * the program itself. Until the program looks at an argument or the
 * instruction pointer, it only loads the number and the architecture and
 * compares them with constants (anything else: the program is kept as it
 * is). Between two consecutive constants (c and c + 1 of every comparison)
 * such a prefix takes the same path for every value, so running it once per
 * interval, for every architecture interval and then every number interval,
 * finds for each value either the action it returns or the instruction
 * where it goes on to look at arguments. The new program is a search tree
 * over the architecture intervals, then one over the number intervals of
 * each architecture, with a `ret` at each leaf or a jump into the original
 * instructions from that point on (copied, their jumps moved, and checked to
 * use neither X nor scratch memory, so that the state they start from is
 * only what they load).
 */
#include "gocker_core.h"
#include "internal.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>

/* What a value of the architecture (and then number) leads to. */
enum leaf_kind {
    LEAF_RET,     /* returns `value` */
    LEAF_CODE,    /* goes on at original instruction `value` */
    LEAF_SECTION, /* architecture known: the number search `value` */
};

struct leaf {
    enum leaf_kind kind;
    uint32_t value;
};

/* [start, next interval's start): `leaf`. */
struct interval {
    uint32_t start;
    struct leaf leaf;
};

/* ---- running the prefix -------------------------------------------------- */

#define NR_OFFSET 0
#define ARCH_OFFSET 4

/* Runs `p` from the top with the given architecture and, when `nr_known`,
 * number. 1 with `*out` set; 0 when the prefix does something this rewrite
 * does not follow. Without the number, reaching its load is a LEAF_CODE at
 * that load. */
static int run_prefix(const struct sock_filter *p, size_t n, uint32_t arch, int nr_known, uint32_t nr, struct leaf *out,
                      size_t *budget)
{
    uint32_t a = 0;
    size_t pc = 0;
    while (pc < n) {
        if (budget && (*budget)-- == 0)
            return 0;
        const struct sock_filter *in = &p[pc];
        switch (in->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (in->k == ARCH_OFFSET) {
                a = arch;
            } else if (in->k == NR_OFFSET && nr_known) {
                a = nr;
            } else {
                *out = (struct leaf){LEAF_CODE, (uint32_t)pc};
                return 1;
            }
            pc++;
            break;
        case BPF_JMP | BPF_JA:
            if (in->k >= n - pc)
                return 0;
            pc += 1 + in->k;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            pc += 1 + (a == in->k ? in->jt : in->jf);
            break;
        case BPF_JMP | BPF_JGT | BPF_K:
            pc += 1 + (a > in->k ? in->jt : in->jf);
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            pc += 1 + (a >= in->k ? in->jt : in->jf);
            break;
        case BPF_RET | BPF_K:
            *out = (struct leaf){LEAF_RET, in->k};
            return 1;
        default:
            return 0;
        }
    }
    return 0;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* Every value at which some comparison of the program changes its answer,
 * 0 first, sorted, once each. */
static uint32_t *breakpoints(const struct sock_filter *p, size_t n, size_t *count)
{
    uint32_t *v = malloc((2 * n + 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t c = 0;
    v[c++] = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = p[i].k;
        switch (p[i].code) {
        case BPF_JMP | BPF_JEQ | BPF_K:
            v[c++] = k;
            if (k != UINT32_MAX)
                v[c++] = k + 1;
            break;
        case BPF_JMP | BPF_JGT | BPF_K:
            if (k != UINT32_MAX)
                v[c++] = k + 1;
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            v[c++] = k;
            break;
        }
    }
    qsort(v, c, sizeof *v, cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < c; i++)
        if (u == 0 || v[i] != v[u - 1])
            v[u++] = v[i];
    *count = u;
    return v;
}

/* Intervals that lead to the same leaf, one after another, made one. */
static size_t merge(struct interval *iv, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || iv[i].leaf.kind != iv[u - 1].leaf.kind || iv[i].leaf.value != iv[u - 1].leaf.value)
            iv[u++] = iv[i];
    return u;
}

int gk_seccomp_allows(const void *program, size_t len, uint32_t arch, const int *nrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct leaf l;
        if (!run_prefix(program, len, arch, 1, (uint32_t)nrs[i], &l, NULL) || l.kind != LEAF_RET ||
            (l.value & SECCOMP_RET_ACTION_FULL) != SECCOMP_RET_ALLOW)
            return 0;
    }
    return 1;
}

/* ---- writing the new program --------------------------------------------- */

struct out {
    struct sock_filter *p;
    size_t n, cap;
    /* jumps whose target is known only at the end: the instruction, and
     * what it goes to (a section, or an original instruction) */
    struct fixup {
        size_t at;
        struct leaf to;
    } *fix;
    size_t nfix, capfix;
    int failed;
};

static size_t emit(struct out *o, struct sock_filter f)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 256;
        struct sock_filter *p = cap > BPF_MAXINSNS ? NULL : realloc(o->p, cap * sizeof *p);
        if (!p) {
            o->failed = 1;
            return o->n;
        }
        o->p = p;
        o->cap = cap;
    }
    o->p[o->n] = f;
    return o->n++;
}

static void emit_leaf(struct out *o, struct leaf l)
{
    if (l.kind == LEAF_RET) {
        emit(o, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, l.value));
        return;
    }
    size_t at = emit(o, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0));
    if (o->nfix == o->capfix) {
        size_t cap = o->capfix ? 2 * o->capfix : 64;
        struct fixup *f = realloc(o->fix, cap * sizeof *f);
        if (!f) {
            o->failed = 1;
            return;
        }
        o->fix = f;
        o->capfix = cap;
    }
    o->fix[o->nfix++] = (struct fixup){at, l};
}

/* A leaf a conditional jump can go to directly: a `ret` in a pool. */
static int pooled(const struct interval *iv, size_t lo, size_t hi)
{
    return hi - lo == 1 && iv[lo].leaf.kind == LEAF_RET;
}

/* Instructions of the tree over iv[lo, hi) other than its pooled leaves. */
static size_t body_size(const struct interval *iv, size_t lo, size_t hi)
{
    if (hi - lo == 1)
        return !pooled(iv, lo, hi);
    size_t mid = lo + (hi - lo) / 2;
    return 1 + body_size(iv, lo, mid) + body_size(iv, mid, hi);
}

/* The values the pooled leaves of iv[lo, hi) return, once each. */
static size_t pool_values(const struct interval *iv, size_t lo, size_t hi, uint32_t *values, size_t max)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++) {
        if (iv[i].leaf.kind != LEAF_RET)
            continue;
        size_t k = 0;
        while (k < n && values[k] != iv[i].leaf.value)
            k++;
        if (k == n) {
            if (n == max)
                return max + 1;
            values[n++] = iv[i].leaf.value;
        }
    }
    return n;
}

#define POOL_MAX 8

/* A tree that fits in the reach of a conditional jump (255): its nodes
 * jump straight to a pool of `ret`s after it, one for each value. */
static size_t compact_size(const struct interval *iv, size_t lo, size_t hi)
{
    uint32_t values[POOL_MAX];
    size_t n = pool_values(iv, lo, hi, values, POOL_MAX);
    return n > POOL_MAX ? SIZE_MAX : body_size(iv, lo, hi) + n;
}

static void emit_compact_node(struct out *o, const struct interval *iv, size_t lo, size_t hi, size_t pool_at,
                              const uint32_t *values, size_t nvalues)
{
    if (hi - lo == 1) {
        emit_leaf(o, iv[lo].leaf);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    size_t at = emit(o, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, iv[mid].start, 0, 0));
    /* A pooled child is a jump into the pool; the other is laid out next. */
    size_t to[2];
    for (int side = 0; side < 2; side++) {
        size_t a = side ? mid : lo, b = side ? hi : mid;
        if (pooled(iv, a, b)) {
            size_t k = 0;
            while (values[k] != iv[a].leaf.value)
                k++;
            (void)nvalues;
            to[side] = pool_at + k;
        } else {
            to[side] = o->n;
            emit_compact_node(o, iv, a, b, pool_at, values, nvalues);
        }
    }
    if (o->failed)
        return;
    o->p[at].jf = (uint8_t)(to[0] - at - 1);
    o->p[at].jt = (uint8_t)(to[1] - at - 1);
}

static void emit_compact(struct out *o, const struct interval *iv, size_t lo, size_t hi)
{
    uint32_t values[POOL_MAX];
    size_t n = pool_values(iv, lo, hi, values, POOL_MAX);
    size_t pool_at = o->n + body_size(iv, lo, hi);
    emit_compact_node(o, iv, lo, hi, pool_at, values, n);
    for (size_t k = 0; k < n; k++)
        emit(o, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, values[k]));
}

/* Instructions the tree over iv[lo, hi) takes. */
static size_t tree_size(const struct interval *iv, size_t lo, size_t hi)
{
    if (hi - lo == 1)
        return 1;
    size_t c = compact_size(iv, lo, hi);
    if (c <= 256)
        return c;
    size_t mid = lo + (hi - lo) / 2;
    size_t left = tree_size(iv, lo, mid);
    return 1 + (left > 255) + left + tree_size(iv, mid, hi);
}

/* The search for the value in A over iv[lo, hi): at each node, values at
 * or above the middle interval's start go right. */
static void emit_tree(struct out *o, const struct interval *iv, size_t lo, size_t hi)
{
    if (hi - lo == 1) {
        emit_leaf(o, iv[lo].leaf);
        return;
    }
    if (compact_size(iv, lo, hi) <= 256) {
        emit_compact(o, iv, lo, hi);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    size_t left = tree_size(iv, lo, mid);
    if (left <= 255) {
        emit(o, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, iv[mid].start, (uint8_t)left, 0));
    } else {
        /* Too far for a conditional jump: through a `ja`. */
        emit(o, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, iv[mid].start, 0, 1));
        emit(o, (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, (uint32_t)left));
    }
    emit_tree(o, iv, lo, mid);
    emit_tree(o, iv, mid, hi);
}

/* An instruction of the original's rest that the copy may keep: nothing
 * that reads or writes X or scratch memory. */
static int plain(const struct sock_filter *in)
{
    switch (BPF_CLASS(in->code)) {
    case BPF_LD:
        return BPF_MODE(in->code) == BPF_ABS || BPF_MODE(in->code) == BPF_IMM;
    case BPF_ALU:
        return BPF_SRC(in->code) == BPF_K || BPF_OP(in->code) == BPF_NEG;
    case BPF_JMP:
        return BPF_OP(in->code) == BPF_JA || BPF_SRC(in->code) == BPF_K;
    case BPF_RET:
        return BPF_RVAL(in->code) == BPF_K || BPF_RVAL(in->code) == BPF_A;
    default:
        return 0;
    }
}

/* Marks the original instructions reachable from the leaves that go on in
 * them; 0 when one of them is not plain or a jump leaves the program. */
static int mark_rest(const struct sock_filter *p, size_t n, char *keep)
{
    for (size_t pc = 0; pc < n; pc++) {
        if (!keep[pc])
            continue;
        const struct sock_filter *in = &p[pc];
        if (!plain(in))
            return 0;
        if (BPF_CLASS(in->code) == BPF_RET)
            continue;
        if (BPF_CLASS(in->code) != BPF_JMP) {
            if (pc + 1 >= n)
                return 0;
            keep[pc + 1] = 1;
        } else if (BPF_OP(in->code) == BPF_JA) {
            if (in->k >= n - pc - 1)
                return 0;
            keep[pc + 1 + in->k] = 1;
        } else {
            if (pc + 1 + in->jt >= n || pc + 1 + in->jf >= n)
                return 0;
            keep[pc + 1 + in->jt] = 1;
            keep[pc + 1 + in->jf] = 1;
        }
    }
    return 1;
}

int gk_seccomp_tree(const void *program, size_t len, void **tree, size_t *tree_len)
{
    const struct sock_filter *p = program;
    size_t nb = 0;
    uint32_t *b = NULL;
    struct interval *arch = NULL, *nr = NULL, **sections = NULL;
    size_t *section_len = NULL, nsections = 0;
    char *keep = NULL;
    size_t *moved = NULL;
    struct out o = {0};
    int r = 0;
    /* Instructions run to find the intervals: docker's profile takes half
     * a million; a profile that would take more than this many (a program
     * near 4096 instructions on many architectures: seconds) is used as
     * it is. */
    size_t budget = 64u << 20;
    *tree = NULL;
    *tree_len = 0;

    if (len == 0 || len > BPF_MAXINSNS || !(b = breakpoints(p, len, &nb)))
        goto done;
    arch = malloc(nb * sizeof *arch);
    nr = malloc(nb * sizeof *nr);
    sections = calloc(nb, sizeof *sections);
    section_len = calloc(nb, sizeof *section_len);
    keep = calloc(len, 1);
    moved = malloc(len * sizeof *moved);
    if (!arch || !nr || !sections || !section_len || !keep || !moved)
        goto done;

    /* Each architecture interval: a leaf, or the number's load. */
    for (size_t i = 0; i < nb; i++) {
        arch[i].start = b[i];
        if (!run_prefix(p, len, b[i], 0, 0, &arch[i].leaf, &budget))
            goto done;
        const struct leaf l = arch[i].leaf;
        if (l.kind != LEAF_CODE || p[l.value].k != NR_OFFSET) {
            if (l.kind == LEAF_CODE)
                keep[l.value] = 1;
            continue;
        }
        /* The number's intervals for this architecture. */
        for (size_t j = 0; j < nb; j++) {
            nr[j].start = b[j];
            if (!run_prefix(p, len, b[i], 1, b[j], &nr[j].leaf, &budget))
                goto done;
            if (nr[j].leaf.kind == LEAF_CODE)
                keep[nr[j].leaf.value] = 1;
        }
        size_t m = merge(nr, nb);
        size_t s = 0;
        while (s < nsections && !(section_len[s] == m && memcmp(sections[s], nr, m * sizeof *nr) == 0))
            s++;
        if (s == nsections) {
            if (!(sections[s] = malloc(m * sizeof *nr)))
                goto done;
            memcpy(sections[s], nr, m * sizeof *nr);
            section_len[s] = m;
            nsections++;
        }
        arch[i].leaf = (struct leaf){LEAF_SECTION, (uint32_t)s};
    }
    size_t narch = merge(arch, nb);
    if (!mark_rest(p, len, keep))
        goto done;

    emit(&o, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET));
    emit_tree(&o, arch, 0, narch);
    size_t *starts = malloc((nsections ? nsections : 1) * sizeof *starts);
    if (!starts)
        goto done;
    for (size_t s = 0; s < nsections; s++) {
        starts[s] = emit(&o, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET));
        emit_tree(&o, sections[s], 0, section_len[s]);
    }
    /* The original's rest, in its order, its jumps moved. Dropping
     * instructions between a jump and its target only brings them closer. */
    for (size_t pc = 0; pc < len; pc++)
        if (keep[pc])
            moved[pc] = emit(&o, p[pc]);
    if (o.failed) {
        free(starts);
        goto done;
    }
    for (size_t pc = 0; pc < len; pc++) {
        if (!keep[pc] || BPF_CLASS(p[pc].code) != BPF_JMP)
            continue;
        struct sock_filter *in = &o.p[moved[pc]];
        if (BPF_OP(p[pc].code) == BPF_JA) {
            in->k = (uint32_t)(moved[pc + 1 + p[pc].k] - moved[pc] - 1);
        } else {
            in->jt = (uint8_t)(moved[pc + 1 + p[pc].jt] - moved[pc] - 1);
            in->jf = (uint8_t)(moved[pc + 1 + p[pc].jf] - moved[pc] - 1);
        }
    }
    for (size_t i = 0; i < o.nfix; i++) {
        const struct fixup *f = &o.fix[i];
        size_t target = f->to.kind == LEAF_SECTION ? starts[f->to.value] : moved[f->to.value];
        o.p[f->at].k = (uint32_t)(target - f->at - 1);
    }
    free(starts);
    *tree = o.p;
    *tree_len = o.n;
    o.p = NULL;
    r = 1;
done:
    for (size_t s = 0; s < nsections; s++)
        free(sections[s]);
    free(sections);
    free(section_len);
    free(b);
    free(arch);
    free(nr);
    free(keep);
    free(moved);
    free(o.p);
    free(o.fix);
    return r;
}
