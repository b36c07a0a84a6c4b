/*
 * SHA-256 through libcrypto's SHA256_Init/Update/Final.
 *
 * OpenSSL 3 marks these deprecated in favour of EVP_Digest*, and they are
 * kept here on purpose, measured on this machine (a static binary): EVP's
 * first digest costs about 0.9 ms (the library context and its default
 * provider are set up) and its static link about 4 MB (the provider
 * machinery, BIO, dlopen and getaddrinfo among it), against 1 us and
 * about 0.1 MB for these calls, which run the same assembly. A digest is
 * on the start path (the seccomp cache's key) and start latency is a
 * headline. Only this file sees the deprecated declarations.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "gocker_sha256.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(gk_sha256_ctx), "gk_sha256_ctx is too small for SHA256_CTX");
_Static_assert(_Alignof(SHA256_CTX) <= _Alignof(gk_sha256_ctx), "gk_sha256_ctx is not aligned for SHA256_CTX");

void gk_sha256_init(gk_sha256_ctx *ctx) {
    SHA256_Init((SHA256_CTX *)ctx);
}

void gk_sha256_update(gk_sha256_ctx *ctx, const void *bytes, size_t count) {
    SHA256_Update((SHA256_CTX *)ctx, bytes, count);
}

void gk_sha256_final(gk_sha256_ctx *ctx, uint8_t *out) {
    SHA256_Final(out, (SHA256_CTX *)ctx);
}
