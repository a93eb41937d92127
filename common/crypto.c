/* Hashing and signing with domain separation, and key files. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int kn_crypto_init(void)
{
    return sodium_init() < 0 ? KN_EINVAL : 0;
}

static void hash_part(crypto_generichash_state *st, const void *p, size_t n)
{
    static const uint8_t zero = 0;
    crypto_generichash_update(st, p, n);
    crypto_generichash_update(st, &zero, 1);
}

void kn_hash(uint8_t out[KN_HASH_BYTES], const char *domain, const void *data, size_t n)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, KN_HASH_BYTES);
    hash_part(&st, domain, strlen(domain));
    crypto_generichash_update(&st, data, n);
    crypto_generichash_final(&st, out, KN_HASH_BYTES);
}

void kn_sign_digest(uint8_t out[KN_HASH_BYTES], const char *domain, const char *chain_id,
                    const void *msg, size_t n)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, KN_HASH_BYTES);
    hash_part(&st, domain, strlen(domain));
    hash_part(&st, chain_id, strlen(chain_id));
    crypto_generichash_update(&st, msg, n);
    crypto_generichash_final(&st, out, KN_HASH_BYTES);
}

void kn_sign(uint8_t sig[KN_SIG_BYTES], const kn_keypair *kp, const char *domain,
             const char *chain_id, const void *msg, size_t n)
{
    uint8_t digest[KN_HASH_BYTES];
    kn_sign_digest(digest, domain, chain_id, msg, n);
    crypto_sign_detached(sig, NULL, digest, sizeof digest, kp->sk);
}

int kn_verify(const uint8_t sig[KN_SIG_BYTES], const uint8_t pk[KN_PK_BYTES], const char *domain,
              const char *chain_id, const void *msg, size_t n)
{
    uint8_t digest[KN_HASH_BYTES];
    kn_sign_digest(digest, domain, chain_id, msg, n);
    return crypto_sign_verify_detached(sig, digest, sizeof digest, pk) == 0 ? 0 : KN_EBADSIG;
}

void kn_keypair_generate(kn_keypair *kp)
{
    crypto_sign_keypair(kp->pk, kp->sk);
}

void kn_keypair_wipe(kn_keypair *kp)
{
    sodium_memzero(kp, sizeof *kp);
}

/* Key file: {"type":"ed25519","public_key":hex,"seed":hex}. Only the 32-byte seed
 * is stored; the secret key is rebuilt from it on load. */
int kn_keyfile_write(const char *path, const kn_keypair *kp)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    char pk_hex[2 * KN_PK_BYTES + 1], seed_hex[2 * sizeof seed + 1];
    crypto_sign_ed25519_sk_to_seed(seed, kp->sk);
    kn_hex(pk_hex, kp->pk, KN_PK_BYTES);
    kn_hex(seed_hex, seed, sizeof seed);
    char text[256];
    int len = snprintf(text, sizeof text,
                       "{\"type\":\"ed25519\",\"public_key\":\"%s\",\"seed\":\"%s\"}\n", pk_hex,
                       seed_hex);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(seed_hex, sizeof seed_hex);

    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        sodium_memzero(text, sizeof text);
        return KN_EIO;
    }
    ssize_t w = write(fd, text, (size_t)len);
    sodium_memzero(text, sizeof text);
    int rc = (w == len && fsync(fd) == 0) ? 0 : KN_EIO;
    close(fd);
    return rc;
}

int kn_keyfile_read(const char *path, kn_keypair *kp)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return KN_EIO;
    const char *seed_hex = json_string_value(json_object_get(root, "seed"));
    const char *pk_hex = json_string_value(json_object_get(root, "public_key"));
    uint8_t seed[crypto_sign_SEEDBYTES], pk[KN_PK_BYTES];
    int rc = KN_ECONFIG;
    if (seed_hex && pk_hex && kn_unhex(seed, sizeof seed, seed_hex, strlen(seed_hex)) == 0 &&
        kn_unhex(pk, sizeof pk, pk_hex, strlen(pk_hex)) == 0) {
        crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
        rc = memcmp(pk, kp->pk, sizeof pk) == 0 ? 0 : KN_ECONFIG;
    }
    sodium_memzero(seed, sizeof seed);
    json_decref(root);
    if (rc) kn_keypair_wipe(kp);
    return rc;
}
