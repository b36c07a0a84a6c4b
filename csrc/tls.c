/*
 * TLS for the registry client (gocker_tls.h), through libssl. Off the
 * start path: nothing here runs unless a registry is spoken to over https.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gocker_tls.h"

struct gk_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    /* A close_notify is sent only on a session that shook hands and saw
     * no fatal error. */
    int clean;
};

/* What OpenSSL's error queue says, after `what`; the queue is emptied. */
static void say(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char detail[256] = "";
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", detail);
}

static int is_ip(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int gk_tls_open(int fd, const char *host, const char *ca_file, gk_tls **out, char *err, size_t errlen)
{
    struct gk_tls *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(t->ctx = SSL_CTX_new(TLS_client_method()))) {
        say(err, errlen, "TLS setup");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        say(err, errlen, "load the system's CA certificates");
        goto fail;
    }
    if (ca_file && *ca_file && SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
        char what[512];
        snprintf(what, sizeof what, "load the CA certificate %s", ca_file);
        say(err, errlen, what);
        goto fail;
    }
    if (!(t->ssl = SSL_new(t->ctx)) || SSL_set_fd(t->ssl, fd) != 1) {
        say(err, errlen, "TLS setup");
        goto fail;
    }
    /* The certificate must name the host: its DNS name, or its address. */
    if (is_ip(host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1) {
            say(err, errlen, "TLS setup");
            goto fail;
        }
    } else if (SSL_set1_host(t->ssl, host) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1) {
        say(err, errlen, "TLS setup");
        goto fail;
    }
    ERR_clear_error();
    errno = 0;
    if (SSL_connect(t->ssl) != 1) {
        long v = SSL_get_verify_result(t->ssl);
        if (v != X509_V_OK) {
            ERR_clear_error();
            snprintf(err, errlen, "tls: failed to verify certificate: %s", X509_verify_cert_error_string(v));
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ERR_clear_error();
            snprintf(err, errlen, "TLS handshake timeout");
        } else {
            say(err, errlen, "TLS handshake");
        }
        goto fail;
    }
    t->clean = 1;
    *out = t;
    return 0;
fail:
    gk_tls_close(t);
    return -1;
}

/* SSL_read/SSL_write's failure, said: a socket timeout, the peer gone, or
 * what the library reports. */
static ssize_t failure(gk_tls *t, int r, char *err, size_t errlen)
{
    int code = SSL_get_error(t->ssl, r);
    if (code == SSL_ERROR_ZERO_RETURN)
        return 0;
    t->clean = 0;
    /* The socket's SO_RCVTIMEO/SO_SNDTIMEO ran out: the BIO says "retry". */
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ||
        (code == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))) {
        ERR_clear_error();
        snprintf(err, errlen, "timeout");
        return -1;
    }
    if (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(err, errlen, "%s", errno ? strerror(errno) : "connection closed in the middle of the stream");
        return -1;
    }
    say(err, errlen, "TLS");
    return -1;
}

ssize_t gk_tls_read(gk_tls *t, void *buf, size_t n, char *err, size_t errlen)
{
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(t->ssl, buf, n, &got) == 1)
        return (ssize_t)got;
    return failure(t, 0, err, errlen);
}

ssize_t gk_tls_write(gk_tls *t, const void *buf, size_t n, char *err, size_t errlen)
{
    size_t done = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(t->ssl, buf, n, &done) == 1)
        return (ssize_t)done;
    return failure(t, 0, err, errlen);
}

void gk_tls_close(gk_tls *t)
{
    if (!t)
        return;
    if (t->ssl) {
        if (t->clean)
            (void)SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
    }
    ERR_clear_error();
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    free(t);
}
