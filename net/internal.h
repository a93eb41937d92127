/*
 * net internals shared between the files of net/ (and its unit tests); never
 * included from outside the folder.
 *
 * Owns the frame layer of peer links: sealing one message into a length-prefixed
 * ChaCha20-Poly1305 frame and opening frames from the front of a byte stream.
 * It is kept apart from the socket code so it can be tested (tampering, replay,
 * size limits) without a connection.
 *
 * Frame on the wire: len (4 bytes, big endian) = length of what follows, then
 * crypto_aead_chacha20poly1305_ietf(msg, ad = the 4 length bytes, nonce = 4 zero
 * bytes || the direction's 64-bit counter, little endian). Each direction of a
 * link has its own key, so the two counters never share a (key, nonce) pair.
 */
#ifndef KOINON_NET_INTERNAL_H
#define KOINON_NET_INTERNAL_H

#include <sodium.h>

#include "net/net.h"

#define NET__EPH_BYTES crypto_kx_PUBLICKEYBYTES
#define NET__KEY_BYTES crypto_aead_chacha20poly1305_ietf_KEYBYTES
#define NET__TAG_BYTES crypto_aead_chacha20poly1305_ietf_ABYTES
#define NET__LEN_BYTES 4u
/* The largest ciphertext a frame header may announce once the link is up. */
#define NET__CIPHER_BYTES_MAX (NET_FRAME_BYTES_MAX + NET__TAG_BYTES)
/* The handshake's authentication payload: node public key, then signature. */
#define NET__AUTH_BYTES (KN_PK_BYTES + KN_SIG_BYTES)
/* Transcript signed in the handshake: dialer eph || acceptor eph || signer role. */
#define NET__TRANSCRIPT_BYTES (2 * NET__EPH_BYTES + 1)
#define NET__ROLE_DIALER 0
#define NET__ROLE_ACCEPTOR 1

/* One direction of an encrypted link. */
typedef struct net__dir {
    uint8_t key[NET__KEY_BYTES];
    uint64_t nonce; /* counter of the next frame */
} net__dir;

/* Appends one frame carrying msg to out and advances the counter. KN_ETOOBIG
 * over NET_FRAME_BYTES_MAX; KN_ECLOSED when the counter is spent (the link must
 * close rather than reuse a nonce). out is untouched on error. */
KN_MUST int net__frame_seal(net__dir *tx, const uint8_t *msg, size_t len, kn_buf *out);

/* Opens the frame at the front of in, whose ciphertext may be at most
 * cipher_max bytes. Returns 1 with the message in plain (replacing its
 * contents) and the cursor past the frame; 0 when in does not yet hold a whole
 * frame (cursor unmoved); or an error, after which the link must close:
 * KN_ETOOBIG (announced length over cipher_max), KN_EDECODE (shorter than a
 * tag), KN_EBADSIG (authentication failed), KN_ECLOSED (counter spent). */
KN_MUST int net__frame_open(net__dir *rx, kn_cur *in, size_t cipher_max, kn_buf *plain);

/* The handshake transcript as signed by role (NET__ROLE_*). */
void net__transcript(uint8_t out[NET__TRANSCRIPT_BYTES], const uint8_t dialer_eph[NET__EPH_BYTES],
                     const uint8_t acceptor_eph[NET__EPH_BYTES], uint8_t role);

/* Handshakes this instance refused (bad signature, key not allowed, bad frame).
 * For tests, which need proof that a refusal happened, not just silence. */
uint32_t net__peers_refused(const net_peers *p);

#endif
