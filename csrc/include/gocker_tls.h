#ifndef GOCKER_TLS_H
#define GOCKER_TLS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * A TLS client session over a connected socket, through OpenSSL's libssl
 * (Debian libssl-dev, linked statically): the registry client's only use of
 * it. The peer's certificate is verified against the system's CA bundle and
 * `ca_file` (a registry's own CA, docker's certs.d/HOST/ca.crt), and its
 * name or IP address against `host`. The session is opaque to Swift.
 *
 * gk_tls_open returns 0 and the session in *out, or -1 with what failed in
 * `err` (NUL-terminated). gk_tls_read and gk_tls_write return the bytes
 * moved, 0 at the peer's end of the stream (read), or -1 with `err` filled
 * (a timeout of the socket's SO_RCVTIMEO/SO_SNDTIMEO is one).
 */
typedef struct gk_tls gk_tls;

int gk_tls_open(int fd, const char *host, const char *ca_file, gk_tls **out, char *err, size_t errlen);
ssize_t gk_tls_read(gk_tls *t, void *buf, size_t n, char *err, size_t errlen);
ssize_t gk_tls_write(gk_tls *t, const void *buf, size_t n, char *err, size_t errlen);
void gk_tls_close(gk_tls *t);

#endif
