/* Helpers shared by the C core's files; async-signal-safe unless noted. */
#ifndef GOCKER_INTERNAL_H
#define GOCKER_INTERNAL_H

#include <stddef.h>
#include "gocker_core.h"

/* Appends `src` to `dst` (of `size` bytes, holding `len` bytes now), always
 * NUL-terminating; returns the new length. */
size_t gk_strlcat(char *dst, size_t len, size_t size, const char *src);

/* Writes `v` in decimal into `dst`, NUL-terminated. */
void gk_utoa(char *dst, size_t size, unsigned long v);

/* Sends one whole record; 0 or -errno. Never raises SIGPIPE. */
int gk_send_all(int fd, const void *buf, size_t len);

/* Receives one gk_msg; 0, -EPIPE at end of file, or -errno. */
int gk_recv_msg(int fd, struct gk_msg *m);

#endif
