/*
 * Port-map elements of gocker's nf_tables table over nfnetlink: the message
 * sequence and the encodings are described in include/gocker_nft.h.
 * Runs in the (multithreaded) parent, never between clone and execve, so it
 * may allocate.
 */
#include "gocker_nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int gk_nft_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

size_t gk_nft_port_key(const struct gk_nft_port *p, int with_addr, uint8_t out[GK_NFT_KEY_MAX]) {
    size_t off = 0;
    memset(out, 0, GK_NFT_KEY_MAX);
    if (with_addr) {
        uint32_t a = htonl(p->host_ip);
        memcpy(out, &a, 4);
        off = 4;
    }
    out[off] = p->proto;             /* inet_proto: one byte, padded to 4 */
    uint16_t port = htons(p->host_port);
    memcpy(out + off + 4, &port, 2); /* inet_service: big-endian, padded to 4 */
    return off + 8;
}

void gk_nft_port_data(const struct gk_nft_port *p, uint8_t out[GK_NFT_DATA_LEN]) {
    memset(out, 0, GK_NFT_DATA_LEN);
    uint32_t a = htonl(p->dest_ip);
    memcpy(out, &a, 4);
    uint16_t port = htons(p->dest_port);
    memcpy(out + 4, &port, 2);
}

/* ---- building the batch ------------------------------------------------ */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void *put(struct buf *b, size_t len) {
    size_t a = NLMSG_ALIGN(len);
    void *at = b->p + b->len;       /* room was reserved by the caller */
    memset(at, 0, a);
    b->len += a;
    return at;
}

static struct nlmsghdr *msg_start(struct buf *b, uint16_t type, uint16_t flags, uint32_t seq,
                                  uint8_t family, uint16_t res_id) {
    struct nlmsghdr *h = put(b, sizeof *h);
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = seq;
    struct nfgenmsg *g = put(b, sizeof *g);
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = htons(res_id);
    return h;
}

static void msg_end(struct buf *b, struct nlmsghdr *h) {
    h->nlmsg_len = (uint32_t)(b->p + b->len - (uint8_t *)h);
}

static void attr(struct buf *b, uint16_t type, const void *data, size_t len) {
    struct nlattr *a = put(b, NLA_HDRLEN + len);
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
}

static size_t nest_start(struct buf *b, uint16_t type) {
    size_t off = b->len;
    struct nlattr *a = put(b, NLA_HDRLEN);
    a->nla_type = NLA_F_NESTED | type;
    return off;
}

static void nest_end(struct buf *b, size_t off) {
    struct nlattr *a = (struct nlattr *)(b->p + off);
    a->nla_len = (uint16_t)(b->len - off);
}

/* The bytes one element's message takes at most. */
static size_t elem_msg_size(size_t table_len, size_t map_len) {
    return NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg))
        + NLA_ALIGN(NLA_HDRLEN + table_len + 1) + NLA_ALIGN(NLA_HDRLEN + map_len + 1)
        + 4 * NLA_HDRLEN + NLA_ALIGN(NLA_HDRLEN + GK_NFT_KEY_MAX)
        + NLA_HDRLEN + NLA_ALIGN(NLA_HDRLEN + GK_NFT_DATA_LEN);
}

static void elem_msg(struct buf *b, const char *table, const char *map, const char *map_at, int add,
                     const struct gk_nft_port *p, uint32_t seq) {
    int with_addr = p->host_ip != 0;
    if (with_addr) map = map_at;
    uint16_t type = (NFNL_SUBSYS_NFTABLES << 8) | (add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    struct nlmsghdr *h = msg_start(b, type, NLM_F_ACK | (add ? NLM_F_CREATE : 0), seq, NFPROTO_IPV4, 0);
    attr(b, NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
    attr(b, NFTA_SET_ELEM_LIST_SET, map, strlen(map) + 1);
    size_t list = nest_start(b, NFTA_SET_ELEM_LIST_ELEMENTS);
    size_t elem = nest_start(b, NFTA_LIST_ELEM);
    uint8_t key[GK_NFT_KEY_MAX];
    size_t klen = gk_nft_port_key(p, with_addr, key);
    size_t k = nest_start(b, NFTA_SET_ELEM_KEY);
    attr(b, NFTA_DATA_VALUE, key, klen);
    nest_end(b, k);
    if (add) {
        uint8_t data[GK_NFT_DATA_LEN];
        gk_nft_port_data(p, data);
        size_t d = nest_start(b, NFTA_SET_ELEM_DATA);
        attr(b, NFTA_DATA_VALUE, data, sizeof data);
        nest_end(b, d);
    }
    nest_end(b, elem);
    nest_end(b, list);
    msg_end(b, h);
}

/* ---- one transaction --------------------------------------------------- */

/*
 * Sends one batch of the elements whose skip[i] is 0 and reads every ack
 * queued for it. status[i] becomes the kernel's answer for element i (0 or
 * -errno; 1 when none came). Returns 0 when the socket exchange worked (the
 * elements' answers say the rest), else -errno with *batch_err set.
 */
static int transact(int fd, struct buf *b, const char *table, const char *map, const char *map_at,
                    int add, const struct gk_nft_port *ports, size_t n, const uint8_t *skip,
                    int *status, uint32_t seq0, int *batch_err) {
    b->len = 0;
    *batch_err = 0;
    struct nlmsghdr *h = msg_start(b, NFNL_MSG_BATCH_BEGIN, 0, seq0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    msg_end(b, h);
    for (size_t i = 0; i < n; i++) {
        status[i] = 1;
        if (!skip[i]) elem_msg(b, table, map, map_at, add, &ports[i], seq0 + 1 + (uint32_t)i);
    }
    uint32_t seq_end = seq0 + 1 + (uint32_t)n;
    h = msg_start(b, NFNL_MSG_BATCH_END, 0, seq_end, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    msg_end(b, h);

    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t w;
    do w = sendto(fd, b->p, b->len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (w < 0 && errno == EINTR);
    if (w < 0) return -errno;
    if ((size_t)w != b->len) return -EMSGSIZE;

    /* The batch ran inside sendto: every answer is queued already. */
    uint8_t rb[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        ssize_t r = recv(fd, rb, sizeof rb, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -errno; /* ENOBUFS: answers were lost */
        }
        int left = (int)r;
        for (struct nlmsghdr *m = (struct nlmsghdr *)rb; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
            if (m->nlmsg_type != NLMSG_ERROR) continue;
            if (m->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EPROTO;
            const struct nlmsgerr *e = NLMSG_DATA(m);
            uint32_t s = m->nlmsg_seq;
            if (s > seq0 && s < seq_end) status[s - seq0 - 1] = e->error;
            else if (e->error) *batch_err = e->error; /* BATCH_BEGIN/END, or the commit */
        }
    }
    return 0;
}

int gk_nft_port_elements(const char *table, const char *map, const char *map_at, int add,
                         const struct gk_nft_port *ports, size_t n, long *failed) {
    *failed = -1;
    if (n == 0) return 0;
    size_t tl = strlen(table), ml = strlen(map), mal = strlen(map_at);
    if (tl == 0 || tl >= NFT_TABLE_MAXNAMELEN || ml == 0 || ml >= NFT_SET_MAXNAMELEN
        || mal == 0 || mal >= NFT_SET_MAXNAMELEN) return -EINVAL;
    if (mal > ml) ml = mal;
    if (n > 65536 * 2) return -E2BIG;

    struct buf b = {0};
    b.cap = 2 * NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(struct nfgenmsg)) + n * elem_msg_size(tl, ml);
    b.p = malloc(b.cap);
    int *status = malloc(n * sizeof *status);
    uint8_t *skip = calloc(n, 1);
    int fd = -1, ret = 0;
    if (!b.p || !status || !skip) { ret = -ENOMEM; goto out; }

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) { ret = -errno; goto out; }
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) { ret = -errno; goto out; }
    int one = 1;
    /* Acks without a copy of the request: a few dozen bytes each. */
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    /* A large batch needs room to go out and for its acks to come back
     * (each queued ack costs about a kilobyte of receive buffer). Forcing
     * needs CAP_NET_ADMIN, which changing nf_tables needs anyway. */
    int snd = (int)(b.cap + 65536), rcv = (int)(n * 1280 + 65536);
    if (snd > 200000) setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd);
    if (rcv > 200000) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);

    uint32_t seq = (uint32_t)time(NULL);
    /* A removal drops the elements that are not there and tries again;
     * each round removes at least one element from the batch. */
    for (;;) {
        int batch_err;
        int r = transact(fd, &b, table, map, map_at, add, ports, n, skip, status, seq, &batch_err);
        seq += (uint32_t)n + 2;
        if (r < 0) { ret = r; goto out; }
        int missing = 0, sent = 0;
        for (size_t i = 0; i < n; i++) {
            if (skip[i]) continue;
            sent++;
            if (!add && status[i] == -ENOENT) { skip[i] = 1; missing++; continue; }
            if (status[i] < 0) { *failed = (long)i; ret = status[i]; goto out; }
        }
        if (missing) {
            if (missing == sent) goto out; /* nothing left to remove */
            continue;
        }
        if (batch_err) { ret = batch_err; goto out; }
        for (size_t i = 0; i < n; i++) {
            if (!skip[i] && status[i] != 0) { ret = -EPROTO; goto out; } /* an ack never came */
        }
        goto out;
    }
out:
    if (fd >= 0) close(fd);
    free(b.p);
    free(status);
    free(skip);
    return ret;
}
