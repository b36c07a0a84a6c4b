/*
 * rtnetlink for gocker's networks (see gocker_net.h): bridges, veth pairs,
 * addresses and routes, spoken directly to the kernel.
 *
 * A request is a batch of messages sent with one send(); each carries
 * NLM_F_ACK and a sequence number of its own, and every ack is read back,
 * so that the first failing message's errno is the answer. A netlink
 * socket stays bound to the network namespace it was opened in: to talk to
 * another namespace the calling thread enters it only for socket(), then
 * returns.
 *
 * For the parent only (it is not async-signal-safe in spirit: it is never
 * called between clone and execve).
 */
#include "gocker_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>

/* ---- building messages ---- */

#define BATCH_MAX 8

/* Messages to send at once, with room for their nested attributes. */
struct batch {
    union {
        char buf[2048];
        struct nlmsghdr align;
    } u;
    size_t len;
    int full;                 /* something did not fit: nothing is sent */
    unsigned int n;           /* messages */
    struct nlmsghdr *last;    /* the one being built */
};

static void *put(struct batch *b, size_t size)
{
    size_t aligned = NLMSG_ALIGN(size);
    if (b->full || b->len + aligned > sizeof b->u.buf) {
        b->full = 1;
        return NULL;
    }
    void *p = b->u.buf + b->len;
    memset(p, 0, aligned);
    b->len += aligned;
    if (b->last)
        b->last->nlmsg_len = (uint32_t)(b->u.buf + b->len - (char *)b->last);
    return p;
}

/* Starts a message with its family header of `hdr` bytes, returned zeroed. */
static void *msg(struct batch *b, uint16_t type, uint16_t flags, size_t hdr)
{
    if (b->n == BATCH_MAX)
        b->full = 1;
    b->last = NULL;
    struct nlmsghdr *h = put(b, NLMSG_HDRLEN);
    if (!h)
        return NULL;
    h->nlmsg_type = type;
    h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
    b->last = h;
    b->n++;
    return put(b, hdr);
}

static struct rtattr *attr(struct batch *b, unsigned short type, const void *data, size_t len)
{
    struct rtattr *a = put(b, RTA_LENGTH(len));
    if (!a)
        return NULL;
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    return a;
}

static void attr_u32(struct batch *b, unsigned short type, uint32_t v) { attr(b, type, &v, sizeof v); }
static void attr_u8(struct batch *b, unsigned short type, uint8_t v) { attr(b, type, &v, sizeof v); }
static void attr_str(struct batch *b, unsigned short type, const char *s) { attr(b, type, s, strlen(s) + 1); }

/* A nested attribute: its length is set by nest_end. */
static struct rtattr *nest(struct batch *b, unsigned short type) { return attr(b, type, NULL, 0); }

static void nest_end(struct batch *b, struct rtattr *a)
{
    if (a && !b->full)
        a->rta_len = (unsigned short)(b->u.buf + b->len - (char *)a);
}

/* ---- talking ---- */

struct rtnl {
    int fd;
    uint32_t seq;
};

/* What a reply to RTM_GETLINK says. */
struct link {
    int index;
    unsigned int mtu;
    char kind[16];
};

static void parse_link(const struct nlmsghdr *h, struct link *l)
{
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof *ifi))
        return;
    l->index = ifi->ifi_index;
    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *ifi));
    for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= 4) {
            memcpy(&l->mtu, RTA_DATA(a), 4);
        } else if (a->rta_type == IFLA_LINKINFO) {
            int n = (int)RTA_PAYLOAD(a);
            for (const struct rtattr *i = RTA_DATA(a); RTA_OK(i, n); i = RTA_NEXT(i, n))
                if (i->rta_type == IFLA_INFO_KIND) {
                    size_t k = RTA_PAYLOAD(i) < sizeof l->kind ? RTA_PAYLOAD(i) : sizeof l->kind - 1;
                    memcpy(l->kind, RTA_DATA(i), k);
                    l->kind[k] = '\0';
                }
        }
    }
}

/* Sends the batch and reads until every message in it is acked. A
 * RTM_NEWLINK reply (to a RTM_GETLINK) fills `got` when given. 0, or the
 * error of the first message that failed. */
static int talk(struct rtnl *s, struct batch *b, struct link *got)
{
    if (b->full || b->n == 0)
        return -EMSGSIZE;
    const uint32_t first = s->seq + 1;
    for (struct nlmsghdr *h = &b->u.align; (char *)h < b->u.buf + b->len;
         h = (struct nlmsghdr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len)))
        h->nlmsg_seq = ++s->seq;

    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t sent;
    do
        sent = sendto(s->fd, b->u.buf, b->len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (sent < 0 && errno == EINTR);
    if (sent < 0)
        return -errno;
    if ((size_t)sent != b->len)
        return -EMSGSIZE;

    int results[BATCH_MAX];
    unsigned int acked = 0;
    for (unsigned int i = 0; i < b->n; i++)
        results[i] = 1; /* not acked yet */
    union {
        char buf[32768];
        struct nlmsghdr align;
    } in;
    while (acked < b->n) {
        struct sockaddr_nl from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(s->fd, in.buf, sizeof in.buf, MSG_TRUNC, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if ((size_t)n > sizeof in.buf)
            return -EMSGSIZE;
        if (from.nl_pid != 0)
            continue; /* not from the kernel */
        int len = (int)n;
        for (struct nlmsghdr *h = &in.align; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_seq < first || h->nlmsg_seq - first >= b->n)
                continue;
            unsigned int i = h->nlmsg_seq - first;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof e->error))
                    return -EBADMSG;
                if (results[i] == 1) {
                    results[i] = e->error;
                    acked++;
                }
            } else if (h->nlmsg_type == RTM_NEWLINK && got) {
                parse_link(h, got);
            }
        }
    }
    for (unsigned int i = 0; i < b->n; i++)
        if (results[i] < 0)
            return results[i];
    return 0;
}

/* A rtnetlink socket in the network namespace `ns`; the calling thread
 * enters it for socket() only when it is elsewhere. */
static int rtnl_open(struct rtnl *s, int ns)
{
    s->seq = 0;
    struct stat want, here;
    if (fstat(ns, &want) < 0 || stat("/proc/thread-self/ns/net", &here) < 0)
        return -errno;
    if (want.st_ino == here.st_ino && want.st_dev == here.st_dev) {
        s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        return s->fd < 0 ? -errno : 0;
    }
    int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (back < 0)
        return -errno;
    int r = 0;
    if (setns(ns, CLONE_NEWNET) < 0) {
        r = -errno;
    } else {
        s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (s->fd < 0)
            r = -errno;
        /* A thread left in the other namespace would make whatever it
         * does next there: never go on from that. */
        if (setns(back, CLONE_NEWNET) < 0)
            abort();
    }
    close(back);
    return r;
}

/* A socket in the network namespace of the process's main thread. */
static int rtnl_open_host(struct rtnl *s)
{
    int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0)
        return -errno;
    int r = rtnl_open(s, ns);
    close(ns);
    return r;
}

static int valid_name(const char *name)
{
    return name && name[0] && strlen(name) < IFNAMSIZ;
}

/* ---- requests ---- */

static void get_link(struct batch *b, const char *name)
{
    msg(b, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
    attr_str(b, IFLA_IFNAME, name);
}

static int query_link(struct rtnl *s, const char *name, struct link *l)
{
    struct batch b = {0};
    memset(l, 0, sizeof *l);
    get_link(&b, name);
    int r = talk(s, &b, l);
    return r < 0 ? r : l->index > 0 ? 0 : -ENODEV;
}

/* Flags on link `index`: up, and the MTU when not 0. */
static void set_up(struct batch *b, int index, unsigned int mtu)
{
    struct ifinfomsg *ifi = msg(b, RTM_NEWLINK, 0, sizeof *ifi);
    if (ifi) {
        ifi->ifi_index = index;
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
    }
    if (mtu)
        attr_u32(b, IFLA_MTU, mtu);
}

static void delete_link(struct batch *b, const char *name)
{
    msg(b, RTM_DELLINK, 0, sizeof(struct ifinfomsg));
    attr_str(b, IFLA_IFNAME, name);
}

/* IPv4 `addr`/`prefix` on link `index` (EEXIST when it has it). */
static void add_addr(struct batch *b, int index, uint32_t addr, unsigned int prefix)
{
    struct ifaddrmsg *ifa = msg(b, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifa);
    if (ifa) {
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = (unsigned char)prefix;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        ifa->ifa_index = (unsigned int)index;
    }
    attr(b, IFA_LOCAL, &addr, 4);
    attr(b, IFA_ADDRESS, &addr, 4);
    if (prefix <= 30) {
        uint32_t host = prefix ? 0xffffffffu >> prefix : 0xffffffffu;
        uint32_t brd = addr | htonl(host);
        attr(b, IFA_BROADCAST, &brd, 4);
    }
}

static void add_default_route(struct batch *b, int index, uint32_t gateway)
{
    struct rtmsg *rt = msg(b, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rt);
    if (rt) {
        rt->rtm_family = AF_INET;
        rt->rtm_table = RT_TABLE_MAIN;
        rt->rtm_protocol = RTPROT_BOOT;
        rt->rtm_scope = RT_SCOPE_UNIVERSE;
        rt->rtm_type = RTN_UNICAST;
    }
    attr(b, RTA_GATEWAY, &gateway, 4);
    attr_u32(b, RTA_OIF, (uint32_t)index);
}

int gk_link_index(const char *name)
{
    if (!valid_name(name))
        return -EINVAL;
    struct rtnl s;
    struct link l;
    int r = rtnl_open_host(&s);
    if (r < 0)
        return r;
    r = query_link(&s, name, &l);
    close(s.fd);
    return r < 0 ? r : l.index;
}

int gk_link_delete(const char *name)
{
    if (!valid_name(name))
        return -EINVAL;
    struct rtnl s;
    int r = rtnl_open_host(&s);
    if (r < 0)
        return r;
    struct batch b = {0};
    delete_link(&b, name);
    r = talk(&s, &b, NULL);
    close(s.fd);
    return r;
}

int gk_bridge_up(const char *name, uint32_t addr, unsigned int prefix, unsigned int mtu)
{
    if (!valid_name(name) || prefix > 32)
        return -EINVAL;
    struct rtnl s;
    struct link l;
    int r = rtnl_open_host(&s);
    if (r < 0)
        return r;
    r = query_link(&s, name, &l);
    if (r == -ENODEV) {
        struct batch b = {0};
        struct ifinfomsg *ifi = msg(&b, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
        if (ifi) {
            ifi->ifi_flags = IFF_UP;
            ifi->ifi_change = IFF_UP;
        }
        attr_str(&b, IFLA_IFNAME, name);
        if (mtu)
            attr_u32(&b, IFLA_MTU, mtu);
        struct rtattr *info = nest(&b, IFLA_LINKINFO);
        attr_str(&b, IFLA_INFO_KIND, "bridge");
        nest_end(&b, info);
        r = talk(&s, &b, NULL);
        /* EEXIST: another gocker made it meanwhile; it is looked at below. */
        if (r == 0 || r == -EEXIST)
            r = query_link(&s, name, &l);
    }
    if (r == 0 && strcmp(l.kind, "bridge") != 0)
        r = -EEXIST;
    if (r == 0) {
        struct batch b = {0};
        set_up(&b, l.index, mtu != l.mtu ? mtu : 0);
        if (addr)
            add_addr(&b, l.index, addr, prefix);
        r = talk(&s, &b, NULL);
        if (r == -EEXIST)
            r = 0; /* it had the address */
    }
    close(s.fd);
    return r < 0 ? r : l.index;
}

/* The container's end: lo up, its address, up, the default route. */
static int configure_peer(int netns_fd, const struct gk_veth *v)
{
    struct rtnl s;
    struct link l;
    int r = rtnl_open(&s, netns_fd);
    if (r < 0)
        return r;
    if ((r = query_link(&s, v->peer_name, &l)) == 0) {
        struct batch b = {0};
        set_up(&b, 1, 0); /* lo: always index 1 */
        if (v->addr)
            add_addr(&b, l.index, v->addr, v->prefix);
        set_up(&b, l.index, 0);
        if (v->gateway)
            add_default_route(&b, l.index, v->gateway);
        r = talk(&s, &b, NULL);
    }
    close(s.fd);
    return r;
}

/* The pair through the host's socket `s`; deleted again on a failure. */
static int make_pair(struct rtnl *s, int netns_fd, const struct gk_veth *v)
{
    struct link br;
    int r = query_link(s, v->bridge, &br);
    if (r < 0)
        return r;
    const unsigned int mtu = v->mtu ? v->mtu : br.mtu;
    static const unsigned char zero[6];

    /* The host end on the bridge and up, the peer made in the container's
     * namespace. */
    struct batch b = {0};
    struct ifinfomsg *ifi = msg(&b, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
    if (ifi) {
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
    }
    attr_str(&b, IFLA_IFNAME, v->host_name);
    attr_u32(&b, IFLA_MTU, mtu);
    attr_u32(&b, IFLA_MASTER, (uint32_t)br.index);
    struct rtattr *info = nest(&b, IFLA_LINKINFO);
    attr_str(&b, IFLA_INFO_KIND, "veth");
    struct rtattr *data = nest(&b, IFLA_INFO_DATA);
    struct rtattr *peer = nest(&b, VETH_INFO_PEER);
    put(&b, sizeof(struct ifinfomsg));
    attr_str(&b, IFLA_IFNAME, v->peer_name);
    attr_u32(&b, IFLA_MTU, mtu);
    if (memcmp(v->mac, zero, sizeof zero) != 0)
        attr(&b, IFLA_ADDRESS, v->mac, sizeof v->mac);
    attr_u32(&b, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    nest_end(&b, peer);
    nest_end(&b, data);
    nest_end(&b, info);
    if ((r = talk(s, &b, NULL)) < 0)
        return r; /* the kernel made neither end */

    /* Hairpin on the host end, a bridge port's setting (which cannot come
     * with the port's creation). */
    memset(&b, 0, sizeof b);
    msg(&b, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
    attr_str(&b, IFLA_IFNAME, v->host_name);
    info = nest(&b, IFLA_LINKINFO);
    attr_str(&b, IFLA_INFO_SLAVE_KIND, "bridge");
    data = nest(&b, IFLA_INFO_SLAVE_DATA);
    attr_u8(&b, IFLA_BRPORT_MODE, 1);
    nest_end(&b, data);
    nest_end(&b, info);
    r = talk(s, &b, NULL);

    if (r == 0)
        r = configure_peer(netns_fd, v);
    if (r < 0) {
        memset(&b, 0, sizeof b);
        delete_link(&b, v->host_name);
        (void)talk(s, &b, NULL);
    }
    return r;
}

int gk_veth_attach(int netns_fd, const struct gk_veth *v)
{
    if (!v || !valid_name(v->bridge) || !valid_name(v->host_name) || !valid_name(v->peer_name) ||
        v->prefix > 32 || netns_fd < 0)
        return -EINVAL;
    struct rtnl s;
    int r = rtnl_open_host(&s);
    if (r < 0)
        return r;
    r = make_pair(&s, netns_fd, v);
    close(s.fd);
    return r;
}

int gk_default_route(int netns_fd, const char *name, uint32_t gateway)
{
    if (!valid_name(name) || netns_fd < 0 || !gateway)
        return -EINVAL;
    struct rtnl s;
    struct link l;
    int r = rtnl_open(&s, netns_fd);
    if (r < 0)
        return r;
    if ((r = query_link(&s, name, &l)) == 0) {
        struct batch b = {0};
        add_default_route(&b, l.index, gateway);
        r = talk(&s, &b, NULL);
    }
    close(s.fd);
    return r;
}
