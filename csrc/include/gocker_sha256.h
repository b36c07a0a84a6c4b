/*
 * SHA-256 for image and layer digests: libcrypto's (OpenSSL's assembly,
 * with the SHA extensions or AVX2 where the CPU has them), linked
 * statically into the release binary. See csrc/sha256.c for why these
 * calls and not EVP's.
 */
#ifndef GOCKER_SHA256_H
#define GOCKER_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Room for libcrypto's SHA256_CTX (112 bytes on Linux; sha256.c checks it
 * at compile time), kept by value so that a Swift struct copies it whole. */
typedef struct {
    uint64_t opaque[16];
} gk_sha256_ctx;

void gk_sha256_init(gk_sha256_ctx *ctx);
void gk_sha256_update(gk_sha256_ctx *ctx, const void *bytes, size_t count);
/* Writes the 32-byte digest to `out`; the context is then spent. */
void gk_sha256_final(gk_sha256_ctx *ctx, uint8_t *out);

#endif
