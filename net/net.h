/*
 * net: everything that crosses a socket, on the node's libuv loop.
 *
 * Owns: (1) peer links between validators: TCP, a station-to-station handshake
 * (ephemeral X25519, each side signing the transcript with its Ed25519 node key),
 * authenticated encryption of every frame, a maximum frame size, bounded send
 * queues, reconnect with backoff; (2) the client HTTP server (h2o's libuv build).
 * Only this module calls libuv networking.
 *
 * Peer links: the node is given the list of allowed peers (the validators). For
 * each pair, the node with the smaller public key dials and the other accepts;
 * a connection whose key is not in the list is refused and logged. Messages are
 * opaque byte strings to this module, delivered whole and in order per link.
 *
 *     net_peers *p;
 *     net_peers_start(loop, &node_key, chain_id, "127.0.0.1", 26600, peers, n,
 *                     &callbacks, ctx, &p);
 *     net_peer_send(p, 2, msg, len);
 *     net_peers_stop(p);   // then run the loop until handles close
 *
 * HTTP: one handler receives every request; it answers at once with
 * net_http_respond(), or keeps the request and answers later (long polling);
 * if the client goes away first, the request's gone callback runs and the
 * request must not be used again. A handler may also turn the request into a
 * stream (server-sent events): a 200 whose body it writes piece by piece for
 * as long as the client stays, with the same gone rule.
 *
 *     net_http_stream_start(req, "text/event-stream", NULL, sub_gone, sub);
 *     ...
 *     if (net_http_stream_write(req, ev, len) == KN_EBUSY) net_http_stream_end(req);
 */
#ifndef KOINON_NET_H
#define KOINON_NET_H

#include <uv.h>

#include "common/common.h"

#define NET_PEERS_MAX 64
#define NET_FRAME_BYTES_MAX (16u << 20)     /* one decrypted message */
#define NET_SEND_QUEUE_BYTES_MAX (64u << 20) /* per peer, beyond it sends fail */
#define NET_RECONNECT_MIN_MS 100
#define NET_RECONNECT_MAX_MS 5000
#define NET_HANDSHAKE_TIMEOUT_MS 5000
#define NET_HOST_MAX 63

typedef struct net_peer_info {
    uint8_t pk[KN_PK_BYTES];
    char host[NET_HOST_MAX + 1];
    uint16_t port;
} net_peer_info;

typedef struct net_peers_cb {
    void (*on_up)(void *ctx, uint32_t peer);
    void (*on_down)(void *ctx, uint32_t peer);
    /* msg is valid only during the call. */
    void (*on_message)(void *ctx, uint32_t peer, const uint8_t *msg, size_t len);
} net_peers_cb;

typedef struct net_peers net_peers;

/* Listens on host:port and dials the peers whose key is greater than ours.
 * peers may include this node's own key: that entry is skipped. Peer indexes in
 * callbacks and sends are indexes into peers. Copies peers and the keypair. */
KN_MUST int net_peers_start(uv_loop_t *loop, const kn_keypair *self, const char *chain_id,
                            const char *host, uint16_t port, const net_peer_info *peers,
                            uint32_t n_peers, const net_peers_cb *cb, void *ctx,
                            net_peers **out);
/* Queues one message (copied). KN_ECLOSED when the link is down, KN_EBUSY when
 * its send queue is over NET_SEND_QUEUE_BYTES_MAX, KN_ETOOBIG over the frame limit. */
KN_MUST int net_peer_send(net_peers *p, uint32_t peer, const uint8_t *msg, size_t len);
/* Sends to every connected peer; returns how many it was queued for. */
uint32_t net_peers_broadcast(net_peers *p, const uint8_t *msg, size_t len);
bool net_peer_is_up(const net_peers *p, uint32_t peer);
/* Closes every handle; the structure is freed once they have closed (keep
 * running the loop). */
void net_peers_stop(net_peers *p);

/* ---------------------------------------------------------------- HTTP */

typedef struct net_http_server net_http_server;
typedef struct net_http_req net_http_req;

typedef void (*net_http_handler)(void *ctx, net_http_req *req);

/* Listens on host:port. Bodies over body_max_bytes get 413 without reaching the
 * handler. Sets SIGPIPE to be ignored if it has its default action (a write
 * to a client that left would otherwise kill the process). */
KN_MUST int net_http_start(uv_loop_t *loop, const char *host, uint16_t port,
                           size_t body_max_bytes, net_http_handler handler, void *ctx,
                           net_http_server **out);
void net_http_stop(net_http_server *s);

/* Request accessors; strings are NUL-terminated and live as long as the request. */
const char *net_http_method(const net_http_req *r);
const char *net_http_path(const net_http_req *r);  /* without the query */
const char *net_http_query(const net_http_req *r); /* after '?', "" if none */
/* A request header's value or NULL (name in lower case). */
const char *net_http_header(const net_http_req *r, const char *name);
const uint8_t *net_http_body(const net_http_req *r, size_t *len);

/* Sends the response (body copied) and ends the request. extra_headers is NULL
 * or a NULL-terminated list of name, value pairs. */
void net_http_respond(net_http_req *r, int status, const char *content_type, const void *body,
                      size_t len, const char *const *extra_headers);
/* Keeps the request open after the handler returns. gone(arg) runs if the
 * client disconnects before net_http_respond; after it the request is invalid. */
void net_http_defer(net_http_req *r, void (*gone)(void *arg), void *arg);

/* Streams: bytes accepted but not yet taken by the client, per stream. */
#define NET_HTTP_STREAM_BUFFER_MAX (4u << 20)

/* Starts a streamed 200 response with the given content type (e.g.
 * "text/event-stream") and extra headers (as for net_http_respond; strings
 * copied), with "cache-control: no-store"; the request stays open. The status
 * and headers leave with the first bytes written (h2o holds them until then),
 * so write something at once, e.g. the SSE comment ": open\n\n", for the
 * client to see the stream open. Over HTTP/1.1 the body is chunked. Called
 * from the handler or on a deferred request (whose gone it replaces), once.
 * gone(arg) runs once if the client disconnects or the server stops (inside
 * net_http_stop); the stream stays valid while gone runs (writes then return
 * KN_ECLOSED) and is invalid once it returns. gone does not run from inside
 * net_http_stream_write or net_http_stream_end (h2o completes sends later,
 * from the loop), so a caller may write to many streams in one loop. */
void net_http_stream_start(net_http_req *r, const char *content_type,
                           const char *const *extra_headers, void (*gone)(void *arg), void *arg);
/* Queues bytes (copied) on an open stream. Returns 0; KN_EBUSY when accepting
 * them would leave more than NET_HTTP_STREAM_BUFFER_MAX bytes waiting to be
 * written to a slow client (nothing is queued; the caller then ends the stream
 * or drops events); KN_ECLOSED after the client left or the server stopped,
 * until gone has run; KN_ENOMEM. */
KN_MUST int net_http_stream_write(net_http_req *r, const void *p, size_t len);
/* Ends the stream normally: bytes already accepted are still sent, then the
 * end of the body. gone does not run afterwards and the stream is invalid
 * once this returns. Also valid on a stream that returned KN_ECLOSED. */
void net_http_stream_end(net_http_req *r);

#endif
