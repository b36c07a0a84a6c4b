/*
 * Published ports as elements of an nf_tables map, added and removed over
 * nfnetlink by gocker itself: Debian 12 has no static libnftables or libmnl,
 * gocker is one static binary, and a container start must not wait for an
 * `nft` child. The table, its chains, sets and maps are made by `nft -f -`
 * at `network create` (Sources/GockerRuntime/NetFilter.swift says how);
 * only the elements of its two port maps go through here:
 *
 *   map ports    { type inet_proto . inet_service : ipv4_addr . inet_service }
 *   map ports_at { type ipv4_addr . inet_proto . inet_service
 *                                  : ipv4_addr . inet_service }
 *
 * One call is one nf_tables transaction:
 *
 *   NFNL_MSG_BATCH_BEGIN  (res_id NFNL_SUBSYS_NFTABLES)
 *   NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM, one per element, each with
 *       NLM_F_ACK and its own sequence number (the first element's is
 *       BATCH_BEGIN's + 1), family NFPROTO_IPV4:
 *         NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET,
 *         NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM {
 *             NFTA_SET_ELEM_KEY  { NFTA_DATA_VALUE key  }
 *             NFTA_SET_ELEM_DATA { NFTA_DATA_VALUE data } (add only) } }
 *   NFNL_MSG_BATCH_END
 *
 * The kernel runs the batch inside sendmsg() and queues one ack (an
 * NLMSG_ERROR, 0 or -errno) per element message before sendmsg returns; if
 * any message fails, the whole batch is rolled back. Deleting an element
 * that is not there (ENOENT) is not an error: the batch is sent again
 * without those elements, so removal is idempotent and still atomic.
 *
 * Concatenated keys and data as the kernel stores them: each component
 * padded with zeros to a multiple of 4 bytes, in order; an address in
 * network order (4 bytes), an inet_proto as one byte (+3 zero), a port as
 * two bytes big-endian (+2 zero).
 */
#ifndef GOCKER_NFT_H
#define GOCKER_NFT_H

#include <stddef.h>
#include <stdint.h>

/* One published port. Addresses are in host order (as IPv4.value on the
 * Swift side); host_ip is used only by a map whose key starts with an
 * address (`ports_at`). */
struct gk_nft_port {
    uint32_t host_ip;
    uint32_t dest_ip;
    uint16_t host_port;
    uint16_t dest_port;
    uint8_t proto;      /* IPPROTO_TCP or IPPROTO_UDP */
    uint8_t pad[3];
};

#define GK_NFT_KEY_MAX 12
#define GK_NFT_DATA_LEN 8

/* The key of `p` in a map whose key starts with an address (with_addr != 0,
 * 12 bytes) or not (8 bytes): its length. */
size_t gk_nft_port_key(const struct gk_nft_port *p, int with_addr, uint8_t out[GK_NFT_KEY_MAX]);

/* The data of `p` (ipv4_addr . inet_service, 8 bytes). */
void gk_nft_port_data(const struct gk_nft_port *p, uint8_t out[GK_NFT_DATA_LEN]);

/*
 * Adds (add != 0) or removes the n elements of `ports` to or from the maps
 * of table `ip <table>`, in one transaction: an element with host_ip 0 (every
 * address of the host) in `map` (`ports`), one with an address in `map_at`
 * (`ports_at`), whose key starts with that address. Adding an element that is there
 * with the same data is not an error; removing one that is not there is not
 * either.
 *
 * Returns 0, or -errno; then *failed is the index of the element the kernel
 * refused, or -1 when the failure is not one element's (the socket, the
 * batch, a missing ack).
 */
int gk_nft_port_elements(const char *table, const char *map, const char *map_at, int add,
                         const struct gk_nft_port *ports, size_t n, long *failed);

/* pipe2(fds, O_CLOEXEC), for the `nft -f -` child's pipes (Glibc's Swift
 * module has no pipe2): 0, or -1 with errno set. */
int gk_nft_pipe(int fds[2]);

#endif
