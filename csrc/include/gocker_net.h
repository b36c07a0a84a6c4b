/*
 * Links, addresses and routes of gocker's networks, over rtnetlink spoken
 * by gocker itself (netlink.c): a bridge on the host and, per container, a
 * veth pair with one end on the bridge and the other in the container's
 * network namespace. No `ip` child processes, no libmnl.
 *
 * Every function works on the network namespace of the process's main
 * thread (/proc/self/ns/net) unless it takes a namespace descriptor, from
 * any thread whatever namespace that thread is in, and leaves the calling
 * thread in the namespace it was in. Errors are -errno, as the kernel gave
 * them.
 */
#ifndef GOCKER_NET_H
#define GOCKER_NET_H

#include <stdint.h>

/* A container's end of a network: what gk_veth_attach makes. */
struct gk_veth {
    const char *bridge;    /* host bridge the host end is enslaved to */
    const char *host_name; /* name of the host end (< IFNAMSIZ) */
    const char *peer_name; /* name of the container end, e.g. "eth0" */
    unsigned char mac[6];  /* the container end's MAC address; all zero: the kernel picks one */
    unsigned int mtu;      /* both ends; 0 = the bridge's MTU */
    uint32_t addr;         /* container IPv4 address, network byte order; 0 = none */
    unsigned int prefix;   /* its prefix length */
    uint32_t gateway;      /* network byte order; 0 = no default route */
};

/* Makes bridge `name` if absent (kind "bridge"), gives it addr/prefix if it
 * lacks it (0 addr = none), sets its MTU when mtu != 0, brings it up.
 * Returns its ifindex or -errno. A link of that name that is not a bridge:
 * -EEXIST. */
int gk_bridge_up(const char *name, uint32_t addr, unsigned int prefix, unsigned int mtu);

/* Deletes link `name`: 0, or -ENODEV when there is none, or -errno. */
int gk_link_delete(const char *name);

/* ifindex of `name`, or -ENODEV / -errno. */
int gk_link_index(const char *name);

/* A veth pair: the host end named host_name, enslaved to the bridge,
 * hairpin mode on, up; the other end created directly inside the network
 * namespace `netns_fd` as peer_name with the MAC and MTU; then inside that
 * namespace: lo up, addr/prefix on the peer, peer up, default route via
 * gateway. On any failure nothing is left: the pair is deleted. Returns 0
 * or -errno. */
int gk_veth_attach(int netns_fd, const struct gk_veth *v);

/* A default route via `gateway` (network byte order) out of link `name`
 * in the namespace `netns_fd`: 0, -EEXIST when there is one, or -errno. */
int gk_default_route(int netns_fd, const char *name, uint32_t gateway);

#endif
