/*
 * Peer links between validators: the listener, the dialer with its backoff,
 * the authenticated handshake, the frame layer and the bounded send queues.
 *
 * Protocol, per pair of validators (A, B):
 *
 *   - The node with the smaller Ed25519 public key (memcmp) dials over TCP; the
 *     other accepts. An accepted connection is anonymous until it authenticates,
 *     and one that authenticates as a key we are supposed to dial is refused, so
 *     there is only ever one link per pair and no dial races.
 *   - Each side first sends its 32-byte ephemeral X25519 public key in clear
 *     (crypto_kx_keypair). Both derive rx/tx session keys: the dialer with
 *     crypto_kx_client_session_keys, the acceptor with _server_; ephemeral
 *     secret keys are wiped as soon as the session keys exist.
 *   - Authentication (station-to-station, like CometBFT's secret connection):
 *     each side's first encrypted frame is [node public key (32) || signature
 *     (64)], the signature being kn_sign(KN_DOMAIN_HANDSHAKE, chain_id,
 *     dialer_eph || acceptor_eph || role) with role 0 for the dialer and 1 for
 *     the acceptor, so a signature cannot be reflected back to its author. The
 *     dialer sends its frame as soon as it has the acceptor's ephemeral key; the
 *     acceptor sends its frame only after the dialer's has verified and its key
 *     is allowed. So a refused dialer never sees the acceptor's identity and never
 *     comes up, and neither side reports a link that the other refused.
 *   - The receiver checks the signature, that the key is in the allowed list and
 *     is not its own (else "peer not allowed" is logged with the key and the
 *     address), and on a dialed link that it is the key it meant to dial. The
 *     whole handshake, TCP connect included, must finish within
 *     NET_HANDSHAKE_TIMEOUT_MS.
 *   - Frames (see internal.h): 4-byte big-endian ciphertext length, then
 *     ChaCha20-Poly1305-IETF ciphertext whose nonce is the direction's 64-bit
 *     counter. One frame is one message. A length over the limit (the auth size
 *     during the handshake, NET_FRAME_BYTES_MAX + tag after), a failed
 *     decryption or a spent counter closes the link.
 *   - If an accepted link authenticates for a peer that is already up, the new
 *     link replaces the old one silently (no on_down/on_up): the peer restarted
 *     or its old connection is dead and we have not noticed yet.
 *   - Only the dialer reconnects, with backoff from NET_RECONNECT_MIN_MS doubling
 *     to NET_RECONNECT_MAX_MS, reset when a handshake succeeds.
 *
 * Sending: a message is sealed when it is queued, so nonces follow the byte
 * order on the wire. Frames gather in `pending` while one write is in flight and
 * go out together in the next write. Callbacks may call back into this module:
 * a link is only freed by its close callbacks, which run in a later loop phase,
 * and the read loop stops as soon as its link starts closing. Nothing is
 * reported after net_peers_stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/internal.h"

#define NONCE_BYTES crypto_aead_chacha20poly1305_ietf_NPUBBYTES
#define READ_CHUNK_BYTES (64u << 10)
/* Buffers grown past this are released once empty, so one burst of large
 * messages does not pin memory for every peer. */
#define BUF_KEEP_BYTES (1u << 20)
/* Connections alive at once, authenticated or not: bounds what an unknown
 * host can make us hold. */
#define LINKS_MAX (4 * NET_PEERS_MAX)
#define LISTEN_BACKLOG 128
#define KEEPALIVE_S 30
#define ADDR_MAX (NET_HOST_MAX + 8) /* host, colon, port */
#define KEY_HEX_MAX (2 * KN_PK_BYTES + 1)
#define PEER_NONE UINT32_MAX

_Static_assert(crypto_kx_SESSIONKEYBYTES == NET__KEY_BYTES, "kx keys feed the AEAD directly");

enum link_state { LINK_CONNECTING, LINK_WAIT_EPH, LINK_WAIT_AUTH, LINK_UP, LINK_CLOSING };

typedef struct peer_link peer_link;
struct peer_link {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake deadline; later, a deferred close */
    uv_connect_t connect_req;
    uv_write_t write_req;
    net_peers *owner;
    peer_link *prev, *next;
    uint32_t peer; /* PEER_NONE until an accepted link authenticates */
    bool dialed;
    bool doomed; /* a close is scheduled; sends fail from now on */
    enum link_state state;
    int handles_open;
    const char *close_why;
    uint8_t eph_pk[NET__EPH_BYTES];
    uint8_t eph_sk[crypto_kx_SECRETKEYBYTES];
    uint8_t peer_eph[NET__EPH_BYTES];
    net__dir tx, rx;
    kn_buf rbuf;     /* received, not yet parsed */
    kn_buf plain;    /* the message just opened */
    kn_buf pending;  /* sealed, waiting for the write in flight to finish */
    kn_buf inflight; /* the write in flight */
    char addr[ADDR_MAX];
};

typedef struct peer_slot {
    net_peer_info info;
    peer_link *link; /* the up link; for a peer we dial, also the one being set up */
    uv_timer_t reconnect;
    net_peers *owner;
    uint32_t index;
    uint32_t backoff_ms;
    bool is_self;
    bool dials; /* its key is greater than ours, so we dial it */
} peer_slot;

struct net_peers {
    uv_loop_t *loop;
    kn_keypair self;
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uv_tcp_t listener;
    peer_slot peers[NET_PEERS_MAX];
    uint32_t n_peers;
    net_peers_cb cb;
    void *ctx;
    peer_link *links;
    uint32_t n_links;
    uint32_t handles_open; /* listener, reconnect timers, links */
    uint32_t refused;
    bool stopping;
};

static void link_close(peer_link *l, const char *why);
static void flush(peer_link *l);
static void dial(net_peers *p, peer_slot *s);
static void handshake_timeout_cb(uv_timer_t *t);

/* ---------------------------------------------------------------- frames */

static void make_nonce(uint8_t out[NONCE_BYTES], uint64_t counter)
{
    memset(out, 0, NONCE_BYTES);
    for (unsigned i = 0; i < 8; i++) out[NONCE_BYTES - 8 + i] = (uint8_t)(counter >> (8 * i));
}

int net__frame_seal(net__dir *tx, const uint8_t *msg, size_t len, kn_buf *out)
{
    if (len > NET_FRAME_BYTES_MAX) return KN_ETOOBIG;
    /* Refuse the last counter value rather than let the next one wrap to 0. */
    if (tx->nonce == UINT64_MAX) return KN_ECLOSED;
    uint32_t cipher_len = (uint32_t)(len + NET__TAG_BYTES);
    uint8_t header[NET__LEN_BYTES] = {(uint8_t)(cipher_len >> 24), (uint8_t)(cipher_len >> 16),
                                      (uint8_t)(cipher_len >> 8), (uint8_t)cipher_len};
    uint8_t nonce[NONCE_BYTES];
    make_nonce(nonce, tx->nonce);
    kn_buf_reserve(out, sizeof header + cipher_len);
    kn_buf_append(out, header, sizeof header);
    unsigned long long written = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out->data + out->len, &written, msg, len, header,
                                              sizeof header, NULL, nonce, tx->key);
    KN_REQUIRE(written == cipher_len);
    out->len += cipher_len;
    tx->nonce++;
    return 0;
}

int net__frame_open(net__dir *rx, kn_cur *in, size_t cipher_max, kn_buf *plain)
{
    kn_cur c = *in;
    const uint8_t *header, *cipher;
    if (kn_cur_take(&c, NET__LEN_BYTES, &header)) return 0;
    uint32_t cipher_len = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
                          (uint32_t)header[2] << 8 | header[3];
    /* The limit is checked before waiting for (or allocating) the body. */
    if (cipher_len > cipher_max) return KN_ETOOBIG;
    if (cipher_len < NET__TAG_BYTES) return KN_EDECODE;
    if (kn_cur_take(&c, cipher_len, &cipher)) return 0;
    if (rx->nonce == UINT64_MAX) return KN_ECLOSED;
    uint8_t nonce[NONCE_BYTES];
    make_nonce(nonce, rx->nonce);
    kn_buf_reset(plain);
    kn_buf_reserve(plain, cipher_len - NET__TAG_BYTES + 1);
    unsigned long long plain_len = 0;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(plain->data, &plain_len, NULL, cipher, cipher_len,
                                                  header, NET__LEN_BYTES, nonce, rx->key) != 0)
        return KN_EBADSIG;
    plain->len = (size_t)plain_len;
    rx->nonce++;
    *in = c;
    return 1;
}

void net__transcript(uint8_t out[NET__TRANSCRIPT_BYTES], const uint8_t dialer_eph[NET__EPH_BYTES],
                     const uint8_t acceptor_eph[NET__EPH_BYTES], uint8_t role)
{
    memcpy(out, dialer_eph, NET__EPH_BYTES);
    memcpy(out + NET__EPH_BYTES, acceptor_eph, NET__EPH_BYTES);
    out[2 * NET__EPH_BYTES] = role;
}

uint32_t net__peers_refused(const net_peers *p)
{
    return p->refused;
}

/* ---------------------------------------------------------------- helpers */

static void key_hex(char out[KEY_HEX_MAX], const uint8_t pk[KN_PK_BYTES])
{
    kn_hex(out, pk, KN_PK_BYTES);
}

static int resolve(const char *host, uint16_t port, struct sockaddr_in *addr)
{
    /* Hosts are IPv4 literals; "localhost" is the one name worth knowing. */
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    return uv_ip4_addr(host, port, addr) == 0 ? 0 : KN_ECONFIG;
}

static uint32_t find_peer(const net_peers *p, const uint8_t pk[KN_PK_BYTES])
{
    for (uint32_t i = 0; i < p->n_peers; i++)
        if (memcmp(p->peers[i].info.pk, pk, KN_PK_BYTES) == 0) return i;
    return PEER_NONE;
}

static void owner_handle_closed(net_peers *p)
{
    KN_REQUIRE(p->handles_open > 0);
    p->handles_open--;
    if (!p->stopping || p->handles_open > 0) return;
    sodium_memzero(&p->self, sizeof p->self);
    free(p);
}

static void listener_close_cb(uv_handle_t *h)
{
    owner_handle_closed(h->data);
}

static void reconnect_close_cb(uv_handle_t *h)
{
    peer_slot *s = h->data;
    owner_handle_closed(s->owner);
}

static void reconnect_cb(uv_timer_t *t)
{
    peer_slot *s = t->data;
    net_peers *p = s->owner;
    if (p->stopping || s->link) return;
    dial(p, s);
}

static void schedule_reconnect(net_peers *p, peer_slot *s)
{
    if (p->stopping) return;
    KN_REQUIRE(s->dials && s->link == NULL);
    KN_REQUIRE(uv_timer_start(&s->reconnect, reconnect_cb, s->backoff_ms, 0) == 0);
    s->backoff_ms = s->backoff_ms >= NET_RECONNECT_MAX_MS / 2 ? NET_RECONNECT_MAX_MS
                                                              : 2 * s->backoff_ms;
}

/* ---------------------------------------------------------------- link lifetime */

static peer_link *link_new(net_peers *p, uint32_t peer, bool dialed)
{
    peer_link *l = calloc(1, sizeof *l);
    KN_REQUIRE(l != NULL);
    l->owner = p;
    l->peer = peer;
    l->dialed = dialed;
    l->state = dialed ? LINK_CONNECTING : LINK_WAIT_EPH;
    snprintf(l->addr, sizeof l->addr, "?");
    KN_REQUIRE(uv_tcp_init(p->loop, &l->tcp) == 0);
    KN_REQUIRE(uv_timer_init(p->loop, &l->timer) == 0);
    l->tcp.data = l;
    l->timer.data = l;
    l->connect_req.data = l;
    l->write_req.data = l;
    l->handles_open = 2;
    /* The deadline covers the TCP connect as well as the handshake proper. */
    KN_REQUIRE(uv_timer_start(&l->timer, handshake_timeout_cb, NET_HANDSHAKE_TIMEOUT_MS, 0) == 0);
    crypto_kx_keypair(l->eph_pk, l->eph_sk);
    l->next = p->links;
    if (p->links) p->links->prev = l;
    p->links = l;
    p->n_links++;
    p->handles_open++;
    return l;
}

static void link_free(peer_link *l)
{
    net_peers *p = l->owner;
    if (l->prev) l->prev->next = l->next;
    else p->links = l->next;
    if (l->next) l->next->prev = l->prev;
    p->n_links--;
    kn_buf_free(&l->rbuf);
    kn_buf_free(&l->plain);
    kn_buf_free(&l->pending);
    kn_buf_free(&l->inflight);
    sodium_memzero(l, sizeof *l);
    free(l);
    owner_handle_closed(p);
}

static void link_handle_close_cb(uv_handle_t *h)
{
    peer_link *l = h->data;
    KN_REQUIRE(l->handles_open > 0);
    if (--l->handles_open == 0) link_free(l);
}

/* Closes the link now. Buffers stay valid until the close callbacks run, so a
 * caller deep in the read loop may still look at them. on_down runs last, when
 * the link was the peer's up link and was not replaced. */
static void link_close(peer_link *l, const char *why)
{
    if (l->state == LINK_CLOSING) return;
    net_peers *p = l->owner;
    bool was_up = l->state == LINK_UP;
    peer_slot *s = l->peer == PEER_NONE ? NULL : &p->peers[l->peer];
    bool current = s != NULL && s->link == l;
    l->state = LINK_CLOSING;
    if (current) s->link = NULL;
    sodium_memzero(l->eph_sk, sizeof l->eph_sk);
    sodium_memzero(&l->tx, sizeof l->tx);
    sodium_memzero(&l->rx, sizeof l->rx);
    uv_close((uv_handle_t *)&l->tcp, link_handle_close_cb);
    uv_close((uv_handle_t *)&l->timer, link_handle_close_cb);
    if (!current) {
        KN_DEBUG("net", "link closed", "addr=%s why=%s", l->addr, why);
        return;
    }
    char hex[KEY_HEX_MAX];
    key_hex(hex, s->info.pk);
    if (was_up) KN_INFO("net", "peer down", "peer=%s addr=%s why=%s", hex, l->addr, why);
    else KN_DEBUG("net", "dial failed", "peer=%s addr=%s why=%s", hex, l->addr, why);
    if (s->dials) schedule_reconnect(p, s);
    if (was_up && !p->stopping && p->cb.on_down) p->cb.on_down(p->ctx, s->index);
}

static void close_soon_cb(uv_timer_t *t)
{
    peer_link *l = t->data;
    link_close(l, l->close_why);
}

/* For failures inside net_peer_send: closing there would run on_down inside the
 * caller's send, so the close waits for the next loop iteration. */
static void close_soon(peer_link *l, const char *why)
{
    if (l->state == LINK_CLOSING || l->doomed) return;
    l->doomed = true;
    l->close_why = why;
    KN_REQUIRE(uv_timer_start(&l->timer, close_soon_cb, 0, 0) == 0);
}

/* A handshake that failed on the other side's fault. */
static void refuse(peer_link *l, const char *why)
{
    l->owner->refused++;
    KN_WARN("net", "handshake refused", "addr=%s why=%s", l->addr, why);
    link_close(l, why);
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    peer_link *l = t->data;
    KN_WARN("net", "handshake timed out", "addr=%s", l->addr);
    link_close(l, "handshake timed out");
}

/* ---------------------------------------------------------------- writing */

static void write_cb(uv_write_t *req, int status)
{
    peer_link *l = req->data;
    if (l->state == LINK_CLOSING) return;
    if (status < 0) {
        link_close(l, uv_strerror(status));
        return;
    }
    kn_buf_reset(&l->inflight);
    if (l->inflight.cap > BUF_KEEP_BYTES) kn_buf_free(&l->inflight);
    flush(l);
}

/* Starts a write of everything pending unless one is in flight; write_cb comes
 * back here, so frames queued meanwhile leave together. */
static void flush(peer_link *l)
{
    if (l->state == LINK_CLOSING || l->inflight.len > 0 || l->pending.len == 0) return;
    kn_buf swap = l->inflight;
    l->inflight = l->pending;
    l->pending = swap;
    KN_REQUIRE(l->inflight.len <= UINT32_MAX);
    uv_buf_t buf = uv_buf_init((char *)l->inflight.data, (unsigned)l->inflight.len);
    int rc = uv_write(&l->write_req, (uv_stream_t *)&l->tcp, &buf, 1, write_cb);
    if (rc < 0) close_soon(l, "write failed");
}

static size_t queued_bytes(const peer_link *l)
{
    return l->pending.len + l->inflight.len;
}

/* ---------------------------------------------------------------- handshake */

static void send_auth(peer_link *l)
{
    net_peers *p = l->owner;
    uint8_t transcript[NET__TRANSCRIPT_BYTES];
    if (l->dialed) net__transcript(transcript, l->eph_pk, l->peer_eph, NET__ROLE_DIALER);
    else net__transcript(transcript, l->peer_eph, l->eph_pk, NET__ROLE_ACCEPTOR);
    struct {
        uint8_t pk[KN_PK_BYTES];
        uint8_t sig[KN_SIG_BYTES];
    } auth;
    _Static_assert(sizeof auth == NET__AUTH_BYTES, "auth payload is packed");
    memcpy(auth.pk, p->self.pk, KN_PK_BYTES);
    kn_sign(auth.sig, &p->self, KN_DOMAIN_HANDSHAKE, p->chain_id, transcript, sizeof transcript);
    /* The first frame of a fresh direction: neither too big nor out of nonces. */
    KN_REQUIRE(net__frame_seal(&l->tx, (const uint8_t *)&auth, sizeof auth, &l->pending) == 0);
    flush(l);
}

static int on_peer_eph(peer_link *l, const uint8_t *peer_eph)
{
    uint8_t rx[NET__KEY_BYTES], tx[NET__KEY_BYTES];
    memcpy(l->peer_eph, peer_eph, NET__EPH_BYTES);
    int rc = l->dialed ? crypto_kx_client_session_keys(rx, tx, l->eph_pk, l->eph_sk, peer_eph)
                       : crypto_kx_server_session_keys(rx, tx, l->eph_pk, l->eph_sk, peer_eph);
    sodium_memzero(l->eph_sk, sizeof l->eph_sk);
    if (rc != 0) {
        refuse(l, "bad ephemeral key");
        return -1;
    }
    memcpy(l->rx.key, rx, sizeof rx);
    memcpy(l->tx.key, tx, sizeof tx);
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    l->state = LINK_WAIT_AUTH;
    /* The acceptor answers only once the dialer has proven an allowed key. */
    if (l->dialed) send_auth(l);
    return 1;
}

/* The peer index the authenticated key may use on this link, or PEER_NONE
 * after refusing it. */
static uint32_t check_peer_key(peer_link *l, const uint8_t pk[KN_PK_BYTES])
{
    net_peers *p = l->owner;
    uint32_t i = find_peer(p, pk);
    if (i == PEER_NONE || p->peers[i].is_self || memcmp(pk, p->self.pk, KN_PK_BYTES) == 0) {
        char hex[KEY_HEX_MAX];
        key_hex(hex, pk);
        p->refused++;
        KN_WARN("net", "peer not allowed", "key=%s addr=%s", hex, l->addr);
        link_close(l, "peer not allowed");
        return PEER_NONE;
    }
    if (l->dialed && i != l->peer) {
        refuse(l, "not the key we dialed");
        return PEER_NONE;
    }
    if (!l->dialed && p->peers[i].dials) {
        refuse(l, "peer dialed but its key says we dial");
        return PEER_NONE;
    }
    return i;
}

static void link_up(peer_link *l, uint32_t i)
{
    net_peers *p = l->owner;
    peer_slot *s = &p->peers[i];
    peer_link *old = s->link;
    l->peer = i;
    l->state = LINK_UP;
    s->link = l;
    s->backoff_ms = NET_RECONNECT_MIN_MS;
    uv_timer_stop(&l->timer);
    char hex[KEY_HEX_MAX];
    key_hex(hex, s->info.pk);
    if (old && old != l) {
        KN_INFO("net", "peer link replaced", "peer=%s addr=%s old=%s", hex, l->addr, old->addr);
        link_close(old, "replaced by a newer link");
        return;
    }
    KN_INFO("net", "peer up", "peer=%s addr=%s", hex, l->addr);
    if (!p->stopping && p->cb.on_up) p->cb.on_up(p->ctx, i);
}

static int on_peer_auth(peer_link *l)
{
    net_peers *p = l->owner;
    kn_cur c = kn_cur_make(l->plain.data, l->plain.len);
    const uint8_t *pk, *sig;
    if (c.left != NET__AUTH_BYTES || kn_cur_take(&c, KN_PK_BYTES, &pk) ||
        kn_cur_take(&c, KN_SIG_BYTES, &sig)) {
        refuse(l, "bad handshake payload");
        return -1;
    }
    uint8_t transcript[NET__TRANSCRIPT_BYTES];
    if (l->dialed) net__transcript(transcript, l->eph_pk, l->peer_eph, NET__ROLE_ACCEPTOR);
    else net__transcript(transcript, l->peer_eph, l->eph_pk, NET__ROLE_DIALER);
    if (kn_verify(sig, pk, KN_DOMAIN_HANDSHAKE, p->chain_id, transcript, sizeof transcript)) {
        refuse(l, "bad handshake signature");
        return -1;
    }
    uint32_t i = check_peer_key(l, pk);
    if (i == PEER_NONE) return -1;
    if (!l->dialed) send_auth(l);
    /* A write that failed meanwhile scheduled a close: do it now, before the
     * link is reported up (link_up would cancel that timer). */
    if (l->doomed) {
        link_close(l, l->close_why);
        return -1;
    }
    link_up(l, i);
    return l->state == LINK_CLOSING ? -1 : 1;
}

/* ---------------------------------------------------------------- reading */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    peer_link *l = h->data;
    kn_buf_reserve(&l->rbuf, READ_CHUNK_BYTES);
    size_t room = l->rbuf.cap - l->rbuf.len;
    if (room > UINT32_MAX) room = UINT32_MAX;
    *buf = uv_buf_init((char *)l->rbuf.data + l->rbuf.len, (unsigned)room);
}

static int take_eph(peer_link *l, kn_cur *in)
{
    const uint8_t *eph;
    if (kn_cur_take(in, NET__EPH_BYTES, &eph)) return 0;
    return on_peer_eph(l, eph);
}

static int take_frame(peer_link *l, kn_cur *in)
{
    net_peers *p = l->owner;
    /* Before authentication only the auth frame may come: no large buffers for
     * strangers. */
    size_t max = l->state == LINK_UP ? NET__CIPHER_BYTES_MAX : NET__AUTH_BYTES + NET__TAG_BYTES;
    int rc = net__frame_open(&l->rx, in, max, &l->plain);
    if (rc == 0) return 0;
    if (rc < 0 && l->state != LINK_UP) {
        refuse(l, kn_strerror(rc));
        return -1;
    }
    if (rc < 0) {
        KN_WARN("net", "bad frame", "addr=%s err=%s", l->addr, kn_strerror(rc));
        link_close(l, kn_strerror(rc));
        return -1;
    }
    if (l->state == LINK_WAIT_AUTH) return on_peer_auth(l);
    if (!p->stopping && p->cb.on_message)
        p->cb.on_message(p->ctx, l->peer, l->plain.data, l->plain.len);
    return l->state == LINK_CLOSING ? -1 : 1;
}

/* Moves the unparsed tail to the front and gives back memory a large message
 * left behind. */
static void compact(peer_link *l, const kn_cur *in)
{
    if (in->left > 0 && in->left < l->rbuf.len) memmove(l->rbuf.data, in->p, in->left);
    l->rbuf.len = in->left;
    if (l->rbuf.len == 0 && l->rbuf.cap > BUF_KEEP_BYTES) kn_buf_free(&l->rbuf);
    if (l->plain.cap > BUF_KEEP_BYTES) kn_buf_free(&l->plain);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    peer_link *l = stream->data;
    if (nread == 0) return;
    if (nread < 0) {
        link_close(l, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    KN_REQUIRE((size_t)nread <= l->rbuf.cap - l->rbuf.len);
    l->rbuf.len += (size_t)nread;
    kn_cur in = kn_cur_make(l->rbuf.data, l->rbuf.len);
    int rc = 1;
    while (rc > 0 && l->state != LINK_CLOSING)
        rc = l->state == LINK_WAIT_EPH ? take_eph(l, &in) : take_frame(l, &in);
    if (l->state == LINK_CLOSING) return;
    compact(l, &in);
}

/* ---------------------------------------------------------------- connecting */

/* Both sides speak first: the ephemeral key needs nothing from the other. */
static void link_start(peer_link *l)
{
    uv_tcp_nodelay(&l->tcp, 1);
    uv_tcp_keepalive(&l->tcp, 1, KEEPALIVE_S);
    l->state = LINK_WAIT_EPH;
    int rc = uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        link_close(l, uv_strerror(rc));
        return;
    }
    kn_buf_append(&l->pending, l->eph_pk, NET__EPH_BYTES);
    flush(l);
}

static void connect_cb(uv_connect_t *req, int status)
{
    peer_link *l = req->data;
    if (l->state == LINK_CLOSING) return;
    if (status < 0) {
        link_close(l, uv_strerror(status));
        return;
    }
    link_start(l);
}

static void dial(net_peers *p, peer_slot *s)
{
    struct sockaddr_in addr;
    KN_REQUIRE(resolve(s->info.host, s->info.port, &addr) == 0); /* checked at start */
    peer_link *l = link_new(p, s->index, true);
    s->link = l;
    snprintf(l->addr, sizeof l->addr, "%s:%u", s->info.host, (unsigned)s->info.port);
    int rc = uv_tcp_connect(&l->connect_req, &l->tcp, (const struct sockaddr *)&addr, connect_cb);
    if (rc < 0) link_close(l, uv_strerror(rc));
}

static void remote_addr(peer_link *l)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) != 0 || ss.ss_family != AF_INET)
        return;
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    char ip[INET_ADDRSTRLEN] = "?";
    uv_ip4_name(in, ip, sizeof ip);
    snprintf(l->addr, sizeof l->addr, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
}

static void connection_cb(uv_stream_t *server, int status)
{
    net_peers *p = server->data;
    if (status < 0) {
        KN_WARN("net", "accept failed", "err=%s", uv_strerror(status));
        return;
    }
    peer_link *l = link_new(p, PEER_NONE, false);
    int rc = uv_accept(server, (uv_stream_t *)&l->tcp);
    if (rc < 0) {
        link_close(l, uv_strerror(rc));
        return;
    }
    remote_addr(l);
    if (p->n_links > LINKS_MAX) {
        KN_WARN("net", "too many connections", "addr=%s links=%u", l->addr, (unsigned)p->n_links);
        link_close(l, "too many connections");
        return;
    }
    link_start(l);
}

/* ---------------------------------------------------------------- public API */

static int check_config(const char *chain_id, const char *host, uint16_t port,
                        const net_peer_info *peers, uint32_t n_peers)
{
    struct sockaddr_in addr;
    if (n_peers > NET_PEERS_MAX || strlen(chain_id) > KN_CHAIN_ID_MAX) return KN_ECONFIG;
    if (resolve(host, port, &addr)) return KN_ECONFIG;
    for (uint32_t i = 0; i < n_peers; i++) {
        if (memchr(peers[i].host, '\0', sizeof peers[i].host) == NULL) return KN_ECONFIG;
        if (resolve(peers[i].host, peers[i].port, &addr)) return KN_ECONFIG;
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(peers[i].pk, peers[j].pk, KN_PK_BYTES) == 0) return KN_ECONFIG;
    }
    return 0;
}

static int start_listener(net_peers *p, const char *host, uint16_t port)
{
    struct sockaddr_in addr;
    KN_REQUIRE(resolve(host, port, &addr) == 0);
    KN_REQUIRE(uv_tcp_init(p->loop, &p->listener) == 0);
    p->listener.data = p;
    p->handles_open++;
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&p->listener, LISTEN_BACKLOG, connection_cb);
    if (rc == 0) return 0;
    KN_ERROR("net", "cannot listen", "host=%s port=%u err=%s", host, (unsigned)port,
             uv_strerror(rc));
    return KN_EIO;
}

int net_peers_start(uv_loop_t *loop, const kn_keypair *self, const char *chain_id,
                    const char *host, uint16_t port, const net_peer_info *peers,
                    uint32_t n_peers, const net_peers_cb *cb, void *ctx, net_peers **out)
{
    KN_REQUIRE(loop && self && chain_id && host && cb && out && (peers || n_peers == 0));
    *out = NULL;
    int rc = check_config(chain_id, host, port, peers, n_peers);
    if (rc) {
        KN_ERROR("net", "bad peer configuration", "peers=%u", (unsigned)n_peers);
        return rc;
    }
    net_peers *p = calloc(1, sizeof *p);
    KN_REQUIRE(p != NULL);
    p->loop = loop;
    p->self = *self;
    snprintf(p->chain_id, sizeof p->chain_id, "%s", chain_id);
    p->cb = *cb;
    p->ctx = ctx;
    p->n_peers = n_peers;
    rc = start_listener(p, host, port);
    if (rc) {
        /* The listener handle exists: p goes when it has closed. */
        p->stopping = true;
        uv_close((uv_handle_t *)&p->listener, listener_close_cb);
        return rc;
    }
    for (uint32_t i = 0; i < n_peers; i++) {
        peer_slot *s = &p->peers[i];
        s->info = peers[i];
        s->owner = p;
        s->index = i;
        s->backoff_ms = NET_RECONNECT_MIN_MS;
        int order = memcmp(peers[i].pk, self->pk, KN_PK_BYTES);
        s->is_self = order == 0;
        s->dials = order > 0;
        if (!s->dials) continue;
        KN_REQUIRE(uv_timer_init(loop, &s->reconnect) == 0);
        s->reconnect.data = s;
        p->handles_open++;
        dial(p, s);
    }
    char hex[KEY_HEX_MAX];
    key_hex(hex, self->pk);
    KN_INFO("net", "peers listening", "self=%s host=%s port=%u peers=%u", hex, host,
            (unsigned)port, (unsigned)n_peers);
    *out = p;
    return 0;
}

int net_peer_send(net_peers *p, uint32_t peer, const uint8_t *msg, size_t len)
{
    if (peer >= p->n_peers) return KN_EINVAL;
    if (len > NET_FRAME_BYTES_MAX) return KN_ETOOBIG;
    peer_link *l = p->peers[peer].link;
    if (l == NULL || l->state != LINK_UP || l->doomed) return KN_ECLOSED;
    if (queued_bytes(l) + NET__LEN_BYTES + NET__TAG_BYTES + len > NET_SEND_QUEUE_BYTES_MAX)
        return KN_EBUSY;
    if (net__frame_seal(&l->tx, msg, len, &l->pending)) {
        close_soon(l, "send counter spent");
        return KN_ECLOSED;
    }
    flush(l);
    return 0;
}

uint32_t net_peers_broadcast(net_peers *p, const uint8_t *msg, size_t len)
{
    uint32_t sent = 0;
    for (uint32_t i = 0; i < p->n_peers; i++)
        if (net_peer_is_up(p, i) && net_peer_send(p, i, msg, len) == 0) sent++;
    return sent;
}

bool net_peer_is_up(const net_peers *p, uint32_t peer)
{
    if (peer >= p->n_peers) return false;
    const peer_link *l = p->peers[peer].link;
    return l != NULL && l->state == LINK_UP && !l->doomed;
}

void net_peers_stop(net_peers *p)
{
    if (p == NULL || p->stopping) return;
    p->stopping = true;
    uv_close((uv_handle_t *)&p->listener, listener_close_cb);
    for (uint32_t i = 0; i < p->n_peers; i++)
        if (p->peers[i].dials) uv_close((uv_handle_t *)&p->peers[i].reconnect, reconnect_close_cb);
    for (peer_link *l = p->links; l; l = l->next) link_close(l, "stopping");
    KN_INFO("net", "peers stopped", "links=%u", (unsigned)p->n_links);
}
