/*
 * fuzz_frame: the peer frame layer (net__frame_open in net/internal.h).
 *
 * The first input byte picks one of two modes.
 *
 * Even: the rest is a byte stream from a peer (after one selector byte that
 * picks the starting counter and the ciphertext limit), opened frame by frame
 * with a fixed key. Properties: a refusal or an incomplete frame leaves the
 * cursor and the counter as they were, with an error net/internal.h
 * documents; "incomplete" (0) only when the stream really ends inside a frame
 * whose length is acceptable; an opened frame consumed exactly len + message +
 * tag bytes within the limit, advanced the counter by one, and sealing its
 * message again under the same key and counter gives exactly the bytes it
 * consumed.
 *
 * Odd: the rest is messages (each a length byte and that many bytes) to seal
 * into a stream, with a position and an XOR mask to tamper with it. Every
 * frame before the tampered one must open to its message; the tampered one
 * must never open. Without tampering, a stream missing its last byte opens
 * every frame but the last, which reports "incomplete".
 */
#include <string.h>

#include "net/internal.h"
#include "tests/fuzz/fuzz.h"

#define MODE_STREAM 0
#define MODE_TAMPER 1
#define TAMPER_HEAD 4 /* mode, position (2 bytes, big endian), mask */
#define FRAMES_MAX 16

static void key_init(uint8_t key[NET__KEY_BYTES])
{
    for (size_t i = 0; i < NET__KEY_BYTES; i++) key[i] = (uint8_t)(0x6b + 7 * i);
}

static net__dir dir_make(uint64_t nonce)
{
    net__dir d;
    memset(&d, 0, sizeof d);
    key_init(d.key);
    d.nonce = nonce;
    return d;
}

static bool documented_open_error(int rc)
{
    return rc == KN_ETOOBIG || rc == KN_EDECODE || rc == KN_EBADSIG || rc == KN_ECLOSED;
}

/* rc == 0 is only allowed when the stream holds no whole frame of acceptable length. */
static void check_incomplete(kn_cur in, size_t cipher_max)
{
    if (in.left < NET__LEN_BYTES) return;
    uint32_t len = (uint32_t)in.p[0] << 24 | (uint32_t)in.p[1] << 16 | (uint32_t)in.p[2] << 8 |
                   in.p[3];
    FUZZ_CHECK(len <= cipher_max && len >= NET__TAG_BYTES);
    FUZZ_CHECK(in.left - NET__LEN_BYTES < len);
}

static void open_stream(const uint8_t *data, size_t size)
{
    static const uint64_t nonces[] = {0, 1, UINT64_MAX - 1, UINT64_MAX};
    static const size_t limits[] = {NET__CIPHER_BYTES_MAX, NET__AUTH_BYTES + NET__TAG_BYTES,
                                    NET__TAG_BYTES + 1, 0};
    if (size < 1) return;
    net__dir rx = dir_make(nonces[data[0] & 3]);
    size_t cipher_max = limits[(data[0] >> 2) & 3];
    kn_cur in = kn_cur_make(data + 1, size - 1);
    kn_buf plain = {0}, sealed = {0};
    for (;;) {
        kn_cur before = in;
        uint64_t nonce = rx.nonce;
        int rc = net__frame_open(&rx, &in, cipher_max, &plain);
        if (rc != 1) {
            FUZZ_CHECK(rc == 0 || documented_open_error(rc));
            FUZZ_CHECK(in.p == before.p && in.left == before.left && rx.nonce == nonce);
            if (rc == 0) check_incomplete(before, cipher_max);
            break;
        }
        size_t n = before.left - in.left;
        FUZZ_CHECK(in.p == before.p + n);
        FUZZ_CHECK(n == NET__LEN_BYTES + plain.len + NET__TAG_BYTES);
        FUZZ_CHECK(plain.len + NET__TAG_BYTES <= cipher_max);
        FUZZ_CHECK(nonce != UINT64_MAX && rx.nonce == nonce + 1);
        net__dir tx = dir_make(nonce);
        kn_buf_reset(&sealed);
        FUZZ_CHECK(net__frame_seal(&tx, plain.data, plain.len, &sealed) == 0);
        FUZZ_CHECK(sealed.len == n && memcmp(sealed.data, before.p, n) == 0);
    }
    kn_buf_free(&plain);
    kn_buf_free(&sealed);
}

/* One message: the slice of the input after its length byte. */
typedef struct frame_msg {
    const uint8_t *p;
    size_t n;
} frame_msg;

/* Opens stream (of len bytes) frame by frame and checks each against msgs:
 * frames before `bad` open to their message, frame `bad` (if any) must not. */
static void open_expect(const uint8_t *stream, size_t len, const frame_msg *msgs, uint32_t n_msgs,
                        uint32_t bad, bool truncated)
{
    net__dir rx = dir_make(0);
    kn_cur in = kn_cur_make(stream, len);
    kn_buf plain = {0};
    for (uint32_t i = 0; i < n_msgs; i++) {
        int rc = net__frame_open(&rx, &in, NET__CIPHER_BYTES_MAX, &plain);
        if (i == bad) {
            FUZZ_CHECK(rc != 1);
            break;
        }
        if (truncated && i + 1 == n_msgs) {
            FUZZ_CHECK(rc == 0);
            break;
        }
        FUZZ_CHECK(rc == 1 && plain.len == msgs[i].n);
        FUZZ_CHECK(msgs[i].n == 0 || memcmp(plain.data, msgs[i].p, msgs[i].n) == 0);
    }
    if (bad == UINT32_MAX && !truncated) FUZZ_CHECK(in.left == 0);
    kn_buf_free(&plain);
}

static void seal_and_tamper(const uint8_t *data, size_t size)
{
    if (size < TAMPER_HEAD) return;
    size_t pos = (size_t)data[1] << 8 | data[2];
    uint8_t mask = data[3];
    frame_msg msgs[FRAMES_MAX];
    size_t ends[FRAMES_MAX];
    uint32_t n_msgs = 0;
    net__dir tx = dir_make(0);
    kn_buf stream = {0};
    kn_cur in = kn_cur_make(data + TAMPER_HEAD, size - TAMPER_HEAD);
    while (in.left && n_msgs < FRAMES_MAX) {
        const uint8_t *len_byte;
        KN_REQUIRE(kn_cur_take(&in, 1, &len_byte) == 0);
        size_t n = *len_byte < in.left ? *len_byte : in.left;
        KN_REQUIRE(kn_cur_take(&in, n, &msgs[n_msgs].p) == 0);
        msgs[n_msgs].n = n;
        FUZZ_CHECK(net__frame_seal(&tx, msgs[n_msgs].p, n, &stream) == 0);
        ends[n_msgs++] = stream.len;
    }
    FUZZ_CHECK(tx.nonce == n_msgs);
    if (n_msgs == 0) return;
    open_expect(stream.data, stream.len, msgs, n_msgs, UINT32_MAX, false);
    if (mask == 0) {
        open_expect(stream.data, stream.len - 1, msgs, n_msgs, UINT32_MAX, true);
    } else {
        pos %= stream.len;
        stream.data[pos] ^= mask;
        uint32_t bad = 0;
        while (ends[bad] <= pos) bad++;
        open_expect(stream.data, stream.len, msgs, n_msgs, bad, false);
    }
    kn_buf_free(&stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size == 0) return 0;
    if ((data[0] & 1) == MODE_STREAM) open_stream(data + 1, size - 1);
    else seal_and_tamper(data, size);
    return 0;
}

/* Stream seeds: [mode][selector][frames sealed from counter 0]. */
static void add_stream_seed(fuzz_seed_cb add, void *ctx, uint8_t selector, const kn_buf *msg1,
                            const kn_buf *msg2)
{
    net__dir tx = dir_make(0);
    kn_buf b = {0};
    uint8_t head[2] = {MODE_STREAM, selector};
    kn_buf_append(&b, head, sizeof head);
    KN_REQUIRE(net__frame_seal(&tx, msg1->data, msg1->len, &b) == 0);
    if (msg2) KN_REQUIRE(net__frame_seal(&tx, msg2->data, msg2->len, &b) == 0);
    add(ctx, b.data, b.len);
    kn_buf_free(&b);
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    kn_buf vote = {0}, auth = {0}, tamper = {0};
    KN_REQUIRE(fuzz_seed_vote(&vote, 0));
    uint8_t auth_bytes[NET__AUTH_BYTES];
    memset(auth_bytes, 0x41, sizeof auth_bytes);
    kn_buf_append(&auth, auth_bytes, sizeof auth_bytes);
    add_stream_seed(add, ctx, 0, &vote, &auth);     /* counter 0, link-up limit */
    add_stream_seed(add, ctx, 4, &auth, NULL);      /* the pre-auth limit */
    add_stream_seed(add, ctx, 0, &vote, NULL);
    /* Tamper seeds: three messages, untouched and with one flipped bit. */
    for (uint8_t mask = 0; mask < 2; mask++) {
        uint8_t head[TAMPER_HEAD] = {MODE_TAMPER, 0, 40, mask};
        kn_buf_reset(&tamper);
        kn_buf_append(&tamper, head, sizeof head);
        uint8_t len = (uint8_t)vote.len;
        kn_buf_append(&tamper, &len, 1);
        kn_buf_append(&tamper, vote.data, vote.len);
        static const uint8_t more[] = {5, 'h', 'e', 'l', 'l', 'o', 0, 3, 'a', 'b', 'c'};
        kn_buf_append(&tamper, more, sizeof more);
        add(ctx, tamper.data, tamper.len);
    }
    kn_buf_free(&vote);
    kn_buf_free(&auth);
    kn_buf_free(&tamper);
}
