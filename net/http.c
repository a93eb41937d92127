/*
 * net/http.c: the client HTTP server, on h2o 2.2 (libuv build).
 *
 * Owns the listening socket, the client connections (each a uv_tcp_t handed to
 * h2o), h2o's configuration and context, and the wrapper (net_http_req) that
 * the node's handler sees for each request.
 *
 * h2o buffers the whole request entity before it calls a handler (HTTP/1
 * stops reading once the entity is complete; HTTP/2 collects DATA frames),
 * and answers 413 itself when the entity is over max_request_entity_size, so
 * the handler only ever sees complete bodies within the limit.
 *
 * The wrapper is a ref-counted chunk linked to the request's memory pool, so
 * it lives exactly as long as h2o's request; its dispose callback is where a
 * deferred request learns that h2o has freed it (client gone) and calls the
 * owner's gone callback. HTTP/1 in h2o 2.2 stops reading the socket while a
 * request is being processed, so it never notices a client that closes during
 * a long poll or a quiet stream; a timer therefore peeks at the sockets of
 * held (deferred or streaming) HTTP/1 requests and, on EOF or error, ends the
 * request itself, which makes h2o close the connection and free the request.
 *
 * Streams use our own generator. h2o allows one send in flight per request:
 * after h2o_send(IN_PROGRESS) it reads the given bytes until it calls proceed
 * (written, send more) or stop (the request is being freed). Bytes the owner
 * writes meanwhile wait in a bounded queue, handed over whole at the next
 * proceed. Over HTTP/1.1, h2o's chunked filter frames each send as one chunk.
 * The status and headers leave with the first send that carries bytes.
 *
 * Request states: HANDLING (inside the handler) -> ANSWERED (responded), or
 * -> DEFERRED -> ANSWERED / ABANDONED (the client left, or the server stops;
 * we sent a last response ourselves and h2o will free the request soon), or
 * (from HANDLING or DEFERRED) -> STREAMING -> STREAM_ENDED (the owner ended it)
 * / STREAM_CLOSED (the client left or the server stops; writes fail until h2o
 * frees the request and gone runs). Held requests (DEFERRED or STREAMING) are
 * linked in the server's held list. gone runs at most once, from
 * on_req_disposed or from net_http_stop, and never after the owner answered
 * or ended the request.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>

#include "net/net.h"

#define HTTP_BACKLOG 128
/* Open client connections; beyond it new connections are closed at once. */
#define HTTP_CONNS_MAX 1024
/* How often held HTTP/1 requests are checked for a client that left. */
#define HTTP_GONE_POLL_MS 250
/* Status of the last response sent to a client that already closed (nobody
 * reads it; nginx's code for the same situation). */
#define HTTP_STATUS_CLIENT_GONE 499
/* A stream's drained buffer is kept for the next writes up to this size and
 * freed beyond it, so one burst does not pin megabytes for the stream's life. */
#define STREAM_BUFFER_KEEP_BYTES (64u * 1024)
#define STREAM_BUFFER_MIN_BYTES 4096u

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

enum req_state {
    REQ_HANDLING,
    REQ_DEFERRED,
    REQ_ANSWERED,
    REQ_ABANDONED,
    REQ_STREAMING,
    REQ_STREAM_ENDED,
    REQ_STREAM_CLOSED,
};

struct net_http_server {
    uv_loop_t *loop;
    net_http_handler handler;
    void *handler_ctx;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_timer_t gone_poll;
    h2o_linklist_t conns;    /* http_conn, open or closing */
    h2o_linklist_t held;     /* net_http_req in REQ_DEFERRED or REQ_STREAMING */
    uint32_t n_conns;
    uint32_t handles_open; /* listener, gone_poll and conns not yet closed */
    bool stopping;
};

/* One client connection. h2o owns tcp.data (its socket) once accepted. */
typedef struct http_conn {
    uv_tcp_t tcp;
    net_http_server *server;
    h2o_linklist_t link;
} http_conn;

/* h2o allocates handlers itself; this carries the server to on_req. */
typedef struct server_handler {
    h2o_handler_t super;
    net_http_server *server;
} server_handler;

/* The response side of a streamed request. flight holds the bytes of the one
 * send h2o is working on (valid until proceed or stop, or, after the final
 * send, until the request is freed); queue collects what the owner writes
 * meanwhile. Both are malloc'd and freed with the wrapper. */
typedef struct http_stream {
    h2o_generator_t generator;
    uint8_t *flight;
    size_t flight_len, flight_cap;
    uint8_t *queue;
    size_t queue_len, queue_cap;
    bool in_flight;
} http_stream;

struct net_http_req {
    h2o_req_t *req;
    net_http_server *server;
    const char *method;
    const char *path;
    const char *query;
    enum req_state state;
    bool streamed; /* net_http_stream_start was called */
    void (*gone)(void *arg);
    void *gone_arg;
    h2o_linklist_t held_link;
    http_stream stream;
};

/* ---------------------------------------------------------------- responses */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return ""; /* an empty reason phrase is valid HTTP/1.1 */
    }
}

/* Header names and values come from the node, never from a client verbatim,
 * but a CR or LF in one would split the response: that is a node bug. */
static h2o_iovec_t pool_header_str(h2o_mem_pool_t *pool, const char *s, bool lower)
{
    size_t n = strlen(s);
    KN_REQUIRE(strpbrk(s, "\r\n") == NULL);
    h2o_iovec_t v = h2o_strdup(pool, s, n);
    if (lower) h2o_strtolower(v.base, v.len);
    return v;
}

static void add_headers(h2o_req_t *req, const char *content_type, const char *const *extra)
{
    static const h2o_iovec_t no_store = {H2O_STRLIT("no-store")};

    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, no_store.base,
                   no_store.len);
    if (content_type != NULL) {
        h2o_iovec_t v = pool_header_str(&req->pool, content_type, false);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, v.base, v.len);
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i += 2) {
        KN_REQUIRE(extra[i + 1] != NULL);
        h2o_iovec_t name = pool_header_str(&req->pool, extra[i], true);
        h2o_iovec_t value = pool_header_str(&req->pool, extra[i + 1], false);
        h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL,
                              value.base, value.len);
    }
}

/* The body is copied into the request's pool because h2o writes it after we
 * return. Content-length is set so HTTP/1 answers are not chunked. */
static void send_response(h2o_req_t *req, int status, const char *content_type, const void *body,
                          size_t len, const char *const *extra)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = {NULL, 0};

    KN_REQUIRE(status >= 100 && status <= 999);
    KN_REQUIRE(body != NULL || len == 0);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    add_headers(req, content_type, extra);
    bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (len != 0 && !head) {
        buf.base = h2o_mem_alloc_pool(&req->pool, len);
        memcpy(buf.base, body, len);
        buf.len = len;
    }
    h2o_start_response(req, &generator);
    h2o_send(req, &buf, buf.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

/* Ends a deferred request the owner can no longer answer. HTTP/1 keep-alive is
 * turned off so h2o closes the connection (and frees the request) once the
 * response is written or the write fails. */
static void abandon(net_http_req *r, int status)
{
    static const char msg[] = "request abandoned\n";

    KN_REQUIRE(r->state == REQ_DEFERRED);
    h2o_linklist_unlink(&r->held_link);
    r->state = REQ_ABANDONED;
    r->req->http1_is_persistent = 0;
    send_response(r->req, status, "text/plain", msg, sizeof msg - 1, NULL);
    KN_DEBUG("http", "request abandoned", "method=%s path=%s status=%d", r->method, r->path,
             status);
}

void net_http_respond(net_http_req *r, int status, const char *content_type, const void *body,
                      size_t len, const char *const *extra_headers)
{
    KN_REQUIRE(r != NULL);
    KN_REQUIRE(status >= 100 && status <= 999);
    /* The client left or the server is stopping, and h2o has not freed the
     * request yet: the answer has nowhere to go. Clearing gone keeps the
     * promise that gone never runs after respond. */
    if (r->state == REQ_ABANDONED) {
        r->gone = NULL;
        return;
    }
    KN_REQUIRE(r->state == REQ_HANDLING || r->state == REQ_DEFERRED);
    if (r->state == REQ_DEFERRED) h2o_linklist_unlink(&r->held_link);
    r->state = REQ_ANSWERED;
    r->gone = NULL;
    KN_DEBUG("http", "request", "method=%s path=%s status=%d", r->method, r->path, status);
    send_response(r->req, status, content_type, body, len, extra_headers);
}

/* ---------------------------------------------------------------- deferral */

/* Runs when h2o clears the request's pool: after a response was written, or
 * when the connection or stream died. Must not touch r->req, already gone.
 * The wrapper is freed when this returns; gone may still call the stream
 * functions (they see STREAM_CLOSED and touch neither h2o nor the buffers). */
static void on_req_disposed(void *p)
{
    net_http_req *r = p;

    if (h2o_linklist_is_linked(&r->held_link)) h2o_linklist_unlink(&r->held_link);
    /* stop() normally got here first; this covers a stream h2o freed without it. */
    if (r->state == REQ_STREAMING) r->state = REQ_STREAM_CLOSED;
    r->stream.in_flight = false;
    if (r->gone != NULL) {
        void (*gone)(void *) = r->gone;
        r->gone = NULL;
        KN_DEBUG("http", "client gone", "method=%s path=%s", r->method, r->path);
        gone(r->gone_arg);
    }
    free(r->stream.flight);
    free(r->stream.queue);
}

/* True when the client has closed or reset the connection. A client that
 * pipelined its next request cannot be judged and counts as present; one that
 * half-closes after its request counts as gone (HTTP clients do not do that). */
static bool client_left(h2o_req_t *req)
{
    if (req->conn->callbacks->get_socket == NULL) return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL) return false;
    int fd = h2o_socket_get_fd(sock);
    if (fd < 0) return false;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return n == 0;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void close_stream(net_http_req *r);

/* Ends a held request whose client left (or, from net_http_stop, that the
 * server will no longer serve). Unlinks it. gone still runs later, when h2o
 * frees the request, unless the caller runs it itself. */
static void end_held(net_http_req *r, int status)
{
    switch (r->state) {
    case REQ_DEFERRED: abandon(r, status); break;
    case REQ_STREAMING: close_stream(r); break;
    default: KN_REQUIRE(!"held request in an unheld state");
    }
}

static void on_gone_poll(uv_timer_t *timer)
{
    net_http_server *s = container_of(timer, net_http_server, gone_poll);
    h2o_linklist_t *node = s->held.next;

    while (node != &s->held) {
        net_http_req *r = container_of(node, net_http_req, held_link);
        node = node->next; /* end_held() unlinks r */
        /* HTTP/2 keeps reading, so h2o sees the close and frees the stream. */
        if (r->req->version < 0x200 && client_left(r->req)) end_held(r, HTTP_STATUS_CLIENT_GONE);
    }
    if (h2o_linklist_is_empty(&s->held)) uv_timer_stop(&s->gone_poll);
}

static void hold(net_http_req *r)
{
    net_http_server *s = r->server;

    h2o_linklist_insert(&s->held, &r->held_link);
    if (!s->stopping && !uv_is_active((uv_handle_t *)&s->gone_poll))
        uv_timer_start(&s->gone_poll, on_gone_poll, HTTP_GONE_POLL_MS, HTTP_GONE_POLL_MS);
}

void net_http_defer(net_http_req *r, void (*gone)(void *arg), void *arg)
{
    KN_REQUIRE(r != NULL && gone != NULL);
    /* Only the handler may defer, and only once. */
    KN_REQUIRE(r->state == REQ_HANDLING);
    r->state = REQ_DEFERRED;
    r->gone = gone;
    r->gone_arg = arg;
    hold(r);
}

/* ---------------------------------------------------------------- streams */

/* Bytes accepted from the owner that the client has not taken yet. */
static size_t stream_waiting(const http_stream *st)
{
    return st->queue_len + (st->in_flight ? st->flight_len : 0);
}

/* Hands the whole queue to h2o as the next send. The buffers swap, so the
 * old flight buffer (h2o is done with it) collects the next writes. */
static void stream_send(net_http_req *r, h2o_send_state_t state)
{
    http_stream *st = &r->stream;
    uint8_t *spare = st->flight;
    size_t spare_cap = st->flight_cap;

    KN_REQUIRE(!st->in_flight);
    st->flight = st->queue;
    st->flight_cap = st->queue_cap;
    st->flight_len = st->queue_len;
    st->queue = spare;
    st->queue_cap = spare_cap;
    st->queue_len = 0;
    h2o_iovec_t buf = h2o_iovec_init(st->flight, st->flight_len);
    /* Set first: h2o may call proceed from inside h2o_send. */
    st->in_flight = state == H2O_SEND_STATE_IN_PROGRESS;
    h2o_send(r->req, &buf, buf.len != 0 ? 1 : 0, state);
}

/* Copies len bytes to the queue; the caller checked the limit, which also
 * bounds the queue's capacity. */
static int stream_queue(http_stream *st, const void *p, size_t len)
{
    if (st->queue_cap - st->queue_len < len) {
        size_t cap = st->queue_cap != 0 ? st->queue_cap : STREAM_BUFFER_MIN_BYTES;
        while (cap - st->queue_len < len) cap *= 2;
        if (cap > NET_HTTP_STREAM_BUFFER_MAX) cap = NET_HTTP_STREAM_BUFFER_MAX;
        uint8_t *q = realloc(st->queue, cap);
        if (q == NULL) return KN_ENOMEM;
        st->queue = q;
        st->queue_cap = cap;
    }
    memcpy(st->queue + st->queue_len, p, len);
    st->queue_len += len;
    return 0;
}

/* h2o has written the last send (HTTP/1) or taken it into its frames (HTTP/2). */
static void on_stream_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    net_http_req *r = container_of(generator, net_http_req, stream.generator);
    http_stream *st = &r->stream;

    KN_REQUIRE(r->req == req && st->in_flight);
    st->in_flight = false;
    st->flight_len = 0;
    if (st->flight_cap > STREAM_BUFFER_KEEP_BYTES) {
        free(st->flight);
        st->flight = NULL;
        st->flight_cap = 0;
    }
    switch (r->state) {
    case REQ_STREAMING:
        if (st->queue_len != 0) stream_send(r, H2O_SEND_STATE_IN_PROGRESS);
        break;
    case REQ_STREAM_ENDED:
    case REQ_STREAM_CLOSED: stream_send(r, H2O_SEND_STATE_FINAL); break;
    default: KN_REQUIRE(!"proceed on a request that is not a stream");
    }
}

/* h2o is freeing the request (client gone, write failed, server stopping)
 * before our final send: it reads none of our bytes from now on. gone runs
 * from on_req_disposed, a moment later in the same teardown. */
static void on_stream_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    net_http_req *r = container_of(generator, net_http_req, stream.generator);

    (void)req;
    r->stream.in_flight = false;
    if (r->state == REQ_STREAMING) {
        h2o_linklist_unlink(&r->held_link);
        r->state = REQ_STREAM_CLOSED;
    }
}

/* Ends an open stream from our side: the client left, or the server stops.
 * The queued bytes are dropped; the final send (at once, or when the send in
 * flight completes) ends the response, and without keep-alive h2o then closes
 * the connection and frees the request. */
static void close_stream(net_http_req *r)
{
    KN_REQUIRE(r->state == REQ_STREAMING);
    h2o_linklist_unlink(&r->held_link);
    r->state = REQ_STREAM_CLOSED;
    r->stream.queue_len = 0;
    r->req->http1_is_persistent = 0;
    if (!r->stream.in_flight) stream_send(r, H2O_SEND_STATE_FINAL);
    KN_DEBUG("http", "stream closed", "method=%s path=%s", r->method, r->path);
}

void net_http_stream_start(net_http_req *r, const char *content_type,
                           const char *const *extra_headers, void (*gone)(void *arg), void *arg)
{
    KN_REQUIRE(r != NULL && gone != NULL);
    KN_REQUIRE(!r->streamed);
    r->streamed = true;
    /* A deferred request whose client already left: the stream is born
     * closed, and the new gone runs when h2o frees the request. */
    if (r->state == REQ_ABANDONED) {
        r->state = REQ_STREAM_CLOSED;
        r->gone = gone;
        r->gone_arg = arg;
        return;
    }
    KN_REQUIRE(r->state == REQ_HANDLING || r->state == REQ_DEFERRED);
    if (r->state == REQ_DEFERRED) h2o_linklist_unlink(&r->held_link);
    r->state = REQ_STREAMING;
    r->gone = gone;
    r->gone_arg = arg;

    h2o_req_t *req = r->req;
    req->res.status = 200;
    req->res.reason = reason_phrase(200);
    add_headers(req, content_type, extra_headers);
    r->stream.generator.proceed = on_stream_proceed;
    r->stream.generator.stop = on_stream_stop;
    h2o_start_response(req, &r->stream.generator);
    hold(r);
    /* No empty send to push the headers out now: h2o 2.2 holds them back
     * until the first bytes (or the end), so the owner writes at once if the
     * client should see the stream open. */
    KN_DEBUG("http", "stream", "method=%s path=%s", r->method, r->path);
}

int net_http_stream_write(net_http_req *r, const void *p, size_t len)
{
    KN_REQUIRE(r != NULL && r->streamed);
    KN_REQUIRE(p != NULL || len == 0);
    if (r->state == REQ_STREAM_CLOSED) return KN_ECLOSED;
    KN_REQUIRE(r->state == REQ_STREAMING);
    http_stream *st = &r->stream;
    if (len > NET_HTTP_STREAM_BUFFER_MAX - stream_waiting(st)) return KN_EBUSY;
    if (len == 0) return 0;
    int err = stream_queue(st, p, len);
    if (err != 0) return err;
    if (!st->in_flight) stream_send(r, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

void net_http_stream_end(net_http_req *r)
{
    KN_REQUIRE(r != NULL && r->streamed);
    r->gone = NULL;
    if (r->state == REQ_STREAM_CLOSED) return; /* h2o frees it on its own */
    KN_REQUIRE(r->state == REQ_STREAMING);
    h2o_linklist_unlink(&r->held_link);
    r->state = REQ_STREAM_ENDED;
    /* With a send in flight, proceed sends the rest and the end. */
    if (!r->stream.in_flight) stream_send(r, H2O_SEND_STATE_FINAL);
    KN_DEBUG("http", "stream ended", "method=%s path=%s", r->method, r->path);
}

/* ---------------------------------------------------------------- requests */

static const char *pool_cstr(h2o_req_t *req, const char *p, size_t n)
{
    return h2o_strdup(&req->pool, p, n).base;
}

/* Copies n bytes to *at as a C string and advances *at. */
static const char *put_cstr(char **at, const char *p, size_t n)
{
    char *s = *at;
    memcpy(s, p, n);
    s[n] = '\0';
    *at += n + 1;
    return s;
}

/* The wrapper and its method, path and query strings are one shared chunk, so
 * the strings stay readable as long as the wrapper, even in its dispose. */
static net_http_req *make_req(net_http_server *s, h2o_req_t *req)
{
    size_t path_len = req->query_at == SIZE_MAX ? req->path.len : req->query_at;
    size_t query_len = req->query_at == SIZE_MAX ? 0 : req->path.len - req->query_at - 1;
    size_t size = sizeof(net_http_req) + req->method.len + path_len + query_len + 3;
    net_http_req *r = h2o_mem_alloc_shared(&req->pool, size, on_req_disposed);

    memset(r, 0, sizeof(*r));
    r->req = req;
    r->server = s;
    r->state = REQ_HANDLING;
    char *at = (char *)(r + 1);
    r->method = put_cstr(&at, req->method.base, req->method.len);
    r->path = put_cstr(&at, req->path.base, path_len);
    r->query = put_cstr(&at, req->path.base + path_len + (query_len != 0 ? 1 : 0), query_len);
    return r;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    net_http_server *s = ((server_handler *)self)->server;
    net_http_req *r = make_req(s, req);

    /* Our reference keeps r readable after the handler even if h2o were to
     * free the request while it runs. */
    h2o_mem_addref_shared(r);
    s->handler(s->handler_ctx, r);
    /* A handler that neither answers nor defers would hang the client. */
    KN_REQUIRE(r->state != REQ_HANDLING);
    if ((r->state == REQ_DEFERRED || r->state == REQ_STREAMING) && s->stopping) {
        /* The handler stopped the server and then held the request: nobody
         * will serve it. */
        void (*gone)(void *) = r->gone;
        r->gone = NULL;
        end_held(r, 503);
        gone(r->gone_arg);
    }
    h2o_mem_release_shared(r);
    return 0;
}

const char *net_http_method(const net_http_req *r)
{
    return r->method;
}

const char *net_http_path(const net_http_req *r)
{
    return r->path;
}

const char *net_http_query(const net_http_req *r)
{
    return r->query;
}

/* h2o keeps host, content-length and transfer-encoding out of the header list;
 * host is the only one a handler may want, so it is served from the authority. */
const char *net_http_header(const net_http_req *r, const char *name)
{
    h2o_req_t *req = r->req;
    size_t n = strlen(name);

    if (h2o_memis(name, n, H2O_STRLIT("host")))
        return req->authority.base != NULL ? pool_cstr(req, req->authority.base, req->authority.len)
                                           : NULL;
    ssize_t i = h2o_find_header_by_str(&req->headers, name, n, -1);
    if (i < 0) return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    return pool_cstr(req, v.base, v.len);
}

const uint8_t *net_http_body(const net_http_req *r, size_t *len)
{
    if (r->req->entity.base == NULL) {
        *len = 0;
        return (const uint8_t *)"";
    }
    *len = r->req->entity.len;
    return (const uint8_t *)r->req->entity.base;
}

/* ---------------------------------------------------------------- lifecycle */

/* Frees the server once every handle it owns has closed. h2o_context_dispose
 * in 2.2 ends with uv_run(loop, UV_RUN_NOWAIT) so that the timer and async
 * handles it closes are finished before it returns; that nested run is why
 * this only happens from a close callback, when no code of ours or of h2o is
 * midway through anything. After it, no handle refers to the context. */
static void finish_if_closed(net_http_server *s)
{
    if (!s->stopping || s->handles_open != 0) return;
    KN_REQUIRE(h2o_linklist_is_empty(&s->conns) && h2o_linklist_is_empty(&s->held));
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    KN_DEBUG("http", "stopped", "%s", "");
    free(s);
}

static void on_handle_closed(uv_handle_t *handle)
{
    net_http_server *s = handle->data;

    s->handles_open--;
    finish_if_closed(s);
}

/* h2o calls this (through its own close callback) when it closes a socket. */
static void on_conn_closed(uv_handle_t *handle)
{
    http_conn *c = container_of(handle, http_conn, tcp);
    net_http_server *s = c->server;

    h2o_linklist_unlink(&c->link);
    s->n_conns--;
    s->handles_open--;
    free(c);
    finish_if_closed(s);
}

static void on_accept(uv_stream_t *listener, int status)
{
    net_http_server *s = container_of(listener, net_http_server, listener);

    if (status != 0) {
        KN_WARN("http", "accept failed", "err=%s", uv_strerror(status));
        return;
    }
    http_conn *c = h2o_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->server = s;
    KN_REQUIRE(uv_tcp_init(s->loop, &c->tcp) == 0);
    h2o_linklist_insert(&s->conns, &c->link);
    s->n_conns++;
    s->handles_open++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > HTTP_CONNS_MAX) {
        /* Accepting and closing at once keeps the backlog from filling up. */
        if (s->n_conns > HTTP_CONNS_MAX)
            KN_WARN("http", "connection refused", "conns_max=%d", HTTP_CONNS_MAX);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&s->accept_ctx, sock);
}

static void on_start_failed_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static int listen_on(net_http_server *s, const char *host, uint16_t port)
{
    struct sockaddr_storage addr;
    int err;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        KN_ERROR("http", "bad listen address", "host=%s", host);
        return KN_EINVAL;
    }
    KN_REQUIRE(uv_tcp_init(s->loop, &s->listener) == 0);
    s->listener.data = s;
    err = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (err == 0) err = uv_listen((uv_stream_t *)&s->listener, HTTP_BACKLOG, on_accept);
    if (err != 0) {
        KN_ERROR("http", "listen failed", "host=%s port=%u err=%s", host, (unsigned)port,
                 uv_strerror(err));
        /* The handle was initialised, so the server is freed when it closes. */
        uv_close((uv_handle_t *)&s->listener, on_start_failed_closed);
        return KN_EIO;
    }
    return 0;
}

/* One host, one catch-all path, one handler: routing is the node's business. */
static void configure(net_http_server *s, size_t body_max_bytes)
{
    h2o_config_init(&s->config);
    s->config.max_request_entity_size = body_max_bytes;
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("koinon"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    server_handler *h = (server_handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;
}

/* h2o's libuv sockets write with uv_write, i.e. writev(2), which raises
 * SIGPIPE when the client has gone: its default action would kill the node
 * the second time a stream writes to a client that left. Linux has no
 * per-socket opt-out, so the process ignores it, unless the program already
 * chose a handler of its own. */
static void ignore_sigpipe(void)
{
    struct sigaction old;

    if (sigaction(SIGPIPE, NULL, &old) != 0 || old.sa_handler != SIG_DFL) return;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    KN_REQUIRE(sigaction(SIGPIPE, &ign, NULL) == 0);
}

int net_http_start(uv_loop_t *loop, const char *host, uint16_t port, size_t body_max_bytes,
                   net_http_handler handler, void *ctx, net_http_server **out)
{
    KN_REQUIRE(loop != NULL && host != NULL && handler != NULL && out != NULL);
    net_http_server *s = calloc(1, sizeof(*s));
    if (s == NULL) return KN_ENOMEM;
    s->loop = loop;
    s->handler = handler;
    s->handler_ctx = ctx;
    h2o_linklist_init_anchor(&s->conns);
    h2o_linklist_init_anchor(&s->held);

    int err = listen_on(s, host, port);
    if (err == KN_EINVAL) free(s); /* no handle was made */
    if (err != 0) return err;

    ignore_sigpipe();
    configure(s, body_max_bytes);
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    KN_REQUIRE(uv_timer_init(loop, &s->gone_poll) == 0);
    s->gone_poll.data = s;
    s->handles_open = 2; /* listener and gone_poll */
    KN_INFO("http", "listening", "host=%s port=%u body_max_bytes=%zu", host, (unsigned)port,
            body_max_bytes);
    *out = s;
    return 0;
}

/* Teardown without leaving a handle behind. Deferred requests are abandoned
 * with a 503 to the client and open streams are ended; their gone callbacks
 * run now, so the owner may free its state once this returns. Every
 * connection's socket is shut down: h2o's reads then see EOF and its writes
 * fail, so it closes each connection promptly, whatever it was waiting for. The server is freed when the last
 * handle has closed; keep running the loop. */
void net_http_stop(net_http_server *s)
{
    if (s == NULL) return;
    KN_REQUIRE(!s->stopping);
    /* Not h2o_context_request_shutdown: its HTTP/2 GOAWAY timer stays linked
     * for a second and h2o_context_dispose asserts that no timer is linked;
     * shutting the sockets down below ends HTTP/2 connections as well. */
    s->stopping = true;

    while (!h2o_linklist_is_empty(&s->held)) {
        net_http_req *r = container_of(s->held.next, net_http_req, held_link);
        void (*gone)(void *) = r->gone;
        r->gone = NULL;
        end_held(r, 503);
        gone(r->gone_arg);
    }
    for (h2o_linklist_t *node = s->conns.next; node != &s->conns; node = node->next) {
        http_conn *c = container_of(node, http_conn, link);
        uv_os_fd_t fd;
        if (!uv_is_closing((uv_handle_t *)&c->tcp) && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
    }
    uv_close((uv_handle_t *)&s->listener, on_handle_closed);
    uv_close((uv_handle_t *)&s->gone_poll, on_handle_closed);
}
