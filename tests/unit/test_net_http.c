/*
 * The client HTTP server: routing to the one handler, accessors, status and
 * headers, bodies at and over the limit, deferred answers, clients that leave
 * during a long poll, streamed responses (events in order over chunked
 * HTTP/1.1, clients that leave, clients that do not read, streams open at
 * stop), and teardown that leaves no handle behind.
 *
 * The server runs on a uv loop in the test thread; a client thread speaks
 * HTTP/1.1 over plain blocking sockets (with receive timeouts) and tells the
 * loop it has finished through a uv_async. Every test is bounded by a loop
 * timer and, as a last resort, by alarm().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "net/net.h"

#define BODY_MAX_BYTES (100u * 1024)
#define DEADLINE_MS 5000
#define CLIENT_TIMEOUT_S 5
#define LATER_MS 50
#define RESPONSE_BYTES_MAX (BODY_MAX_BYTES + 8192)
#define EVENT_INTERVAL_MS 20
#define EVENTS 3
#define BURST_EVENTS 4 /* written two at a time */
#define FLOOD_INTERVAL_MS 1
#define FLOOD_WRITE_BYTES (256u * 1024)
#define STREAM_BODY_MAX 4096
#define SMALL_RCVBUF_BYTES 4096
#define STREAM_OPENER ": open\n\n"

/* One response as the client saw it. status is -1 when the connection ended
 * (or timed out) before a whole response arrived. */
typedef struct response {
    int status;
    char head[4096]; /* status line and headers, NUL-terminated */
    uint8_t *body;
    size_t body_len;
} response;

typedef struct harness harness;
typedef void (*client_fn)(harness *h);

/* What the server's ticker does with the open stream. */
enum stream_mode { STREAM_EVENTS, STREAM_FOREVER, STREAM_FLOOD, STREAM_QUIET };

struct harness {
    uv_loop_t loop;
    net_http_server *server;
    uint16_t port;
    uv_async_t client_done;
    uv_timer_t deadline;
    uv_timer_t later;
    uv_timer_t ticker; /* writes to the stream */
    pthread_t client_thread;
    client_fn client;
    int pending; /* events still awaited before the server is stopped */
    bool stopped;
    bool timed_out;
    bool teardown_hung;
    /* loop thread only */
    int handler_calls;
    int gone_calls;
    bool expect_gone;
    net_http_req *kept;
    enum stream_mode mode;
    bool burst;           /* two events per tick, the end right after the last */
    net_http_req *stream; /* NULL once ended or gone */
    int events_written;
    int write_errors;      /* writes that returned neither 0 nor an expected code */
    int write_in_gone;     /* what a write from inside gone returned */
    size_t flood_accepted; /* bytes accepted before KN_EBUSY */
    int busy_writes;
    /* shared with the client thread */
    atomic_int handler_entered;
    atomic_int events_seen;
    atomic_int busy_seen;
    response resp[2];
    int client_eof; /* 1 when a connection the server should close reached EOF */
    char stream_body[STREAM_BODY_MAX];
    size_t stream_len;
    int chunks;
    bool stream_terminated; /* the last (empty) chunk arrived */
};

/* ---------------------------------------------------------------- client side */

/* rcvbuf_bytes 0 keeps the system's receive buffer. */
static int connect_with_rcvbuf(uint16_t port, int rcvbuf_bytes)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) return -1;
    /* Before connect, so the window the server sees is small from the start. */
    if (rcvbuf_bytes != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_to(uint16_t port)
{
    return connect_with_rcvbuf(port, 0);
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *at = p;
    while (n > 0) {
        ssize_t k = send(fd, at, n, MSG_NOSIGNAL);
        if (k <= 0) return false;
        at += k;
        n -= (size_t)k;
    }
    return true;
}

static bool send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* Value of a response header (case-insensitive name) copied into out, or false. */
static bool header_value(const response *r, const char *name, char *out, size_t out_len)
{
    size_t n = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, n) != 0 || p[n] != ':') continue;
        p += n + 1;
        while (*p == ' ') p++;
        size_t len = strcspn(p, "\r");
        if (len >= out_len) return false;
        memcpy(out, p, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

/* Reads one response: the head, then content-length bytes of body. */
static void read_response(int fd, response *r)
{
    static char buf[RESPONSE_BYTES_MAX];
    size_t have = 0;
    char *end = NULL;

    r->status = -1;
    while (end == NULL && have < sizeof r->head - 1) {
        ssize_t k = recv(fd, buf + have, sizeof r->head - 1 - have, 0);
        if (k <= 0) return;
        have += (size_t)k;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (end == NULL) return;
    size_t head_len = (size_t)(end - buf) + 2;
    memcpy(r->head, buf, head_len);
    r->head[head_len] = '\0';
    char cl[32];
    size_t want = header_value(r, "content-length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
    size_t body_at = head_len + 2;
    if (want > RESPONSE_BYTES_MAX - body_at) return;
    while (have < body_at + want) {
        ssize_t k = recv(fd, buf + have, body_at + want - have, 0);
        if (k <= 0) return;
        have += (size_t)k;
    }
    r->body = malloc(want + 1);
    memcpy(r->body, buf + body_at, want);
    r->body[want] = 0;
    r->body_len = want;
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1) r->status = -1;
}

/* One request on a fresh connection, which the client then closes. */
static void exchange(harness *h, const char *head, const void *body, size_t body_len,
                     response *r)
{
    int fd = connect_to(h->port);
    r->status = -1;
    if (fd < 0) return;
    if (send_str(fd, head) && send_all(fd, body, body_len)) read_response(fd, r);
    close(fd);
}

/* True once the server reports EOF (or a reset) rather than a timeout. */
static bool reaches_eof(int fd)
{
    char c;
    ssize_t k = recv(fd, &c, 1, 0);
    return k == 0 || (k < 0 && errno == ECONNRESET);
}

/* A buffered reader for responses whose length is not known up front. */
typedef struct reader {
    int fd;
    size_t at, have;
    char buf[8192];
} reader;

static int reader_byte(reader *rd)
{
    if (rd->at == rd->have) {
        ssize_t k = recv(rd->fd, rd->buf, sizeof rd->buf, 0);
        if (k <= 0) return -1;
        rd->at = 0;
        rd->have = (size_t)k;
    }
    return (unsigned char)rd->buf[rd->at++];
}

/* One CRLF-terminated line into out (without the CRLF). */
static bool read_line(reader *rd, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        int c = reader_byte(rd);
        if (c < 0 || n + 1 >= cap) return false;
        if (c == '\n' && n > 0 && out[n - 1] == '\r') break;
        out[n++] = (char)c;
    }
    out[n - 1] = '\0';
    return true;
}

/* The status line and headers, stored as read_response stores them. */
static bool read_head(reader *rd, response *r)
{
    char line[1024];
    size_t len = 0;

    r->status = -1;
    do {
        if (!read_line(rd, line, sizeof line)) return false;
        int n = snprintf(r->head + len, sizeof r->head - len, "%s\r\n", line);
        if (n < 0 || (size_t)n >= sizeof r->head - len) return false;
        len += (size_t)n;
    } while (line[0] != '\0');
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1) r->status = -1;
    return true;
}

/* One chunk of a chunked body, appended to out. Returns its size, 0 for the
 * last chunk (after its trailing CRLF), -1 on anything malformed. */
static long read_chunk(reader *rd, char *out, size_t *out_len, size_t cap)
{
    char line[64], *end;

    if (!read_line(rd, line, sizeof line)) return -1;
    unsigned long size = strtoul(line, &end, 16);
    if (end == line || *end != '\0' || size > cap - *out_len) return -1;
    for (unsigned long i = 0; i < size; i++) {
        int c = reader_byte(rd);
        if (c < 0) return -1;
        out[(*out_len)++] = (char)c;
    }
    if (!read_line(rd, line, sizeof line) || line[0] != '\0') return -1;
    return (long)size;
}

/* Events carry an id; the opening comment does not. */
static int count_events(const char *body, size_t len)
{
    int n = 0;
    for (size_t i = 0; i + 4 <= len; i++)
        n += (i == 0 || body[i - 1] == '\n') && memcmp(body + i, "id: ", 4) == 0;
    return n;
}

static void wait_handler_entered(harness *h, int calls)
{
    for (int i = 0; i < 500 && atomic_load(&h->handler_entered) < calls; i++) usleep(10000);
}

static void *client_main(void *arg)
{
    harness *h = arg;
    h->client(h);
    uv_async_send(&h->client_done);
    return NULL;
}

/* ---------------------------------------------------------------- server side */

static void stop_everything(harness *h)
{
    if (h->stopped) return;
    h->stopped = true;
    net_http_stop(h->server);
    uv_close((uv_handle_t *)&h->client_done, NULL);
    uv_close((uv_handle_t *)&h->later, NULL);
    uv_close((uv_handle_t *)&h->ticker, NULL);
    /* The deadline keeps watching the teardown without keeping the loop alive. */
    uv_unref((uv_handle_t *)&h->deadline);
}

static void step_done(harness *h)
{
    if (--h->pending == 0) stop_everything(h);
}

static void on_client_done(uv_async_t *a)
{
    step_done(a->data);
}

static void on_deadline(uv_timer_t *t)
{
    harness *h = t->data;
    if (!h->stopped) {
        h->timed_out = true;
        stop_everything(h);
        return;
    }
    h->teardown_hung = true;
    uv_stop(&h->loop);
}

static void on_gone(void *arg)
{
    harness *h = arg;
    h->gone_calls++;
    h->kept = NULL; /* invalid from now on */
    if (h->expect_gone) step_done(h);
}

static void on_later(uv_timer_t *t)
{
    harness *h = t->data;
    net_http_req *r = h->kept;
    h->kept = NULL;
    net_http_respond(r, 200, "text/plain", "late", 4, NULL);
}

/* The stream must be valid while its gone runs, and closed. */
static void on_stream_gone(void *arg)
{
    harness *h = arg;
    h->gone_calls++;
    h->write_in_gone = net_http_stream_write(h->stream, "late\n\n", 6);
    h->stream = NULL; /* invalid from now on */
    if (h->expect_gone) step_done(h);
}

static void end_stream(harness *h)
{
    net_http_stream_end(h->stream);
    h->stream = NULL;
    uv_timer_stop(&h->ticker);
}

static void write_event(harness *h)
{
    char ev[64];

    h->events_written++;
    int n = snprintf(ev, sizeof ev, "id: %d\ndata: event %d\n\n", h->events_written,
                     h->events_written);
    if (net_http_stream_write(h->stream, ev, (size_t)n) != 0) h->write_errors++;
}

/* Writes the next event(s) once the client has read all before, so the client
 * can only finish if every event left the server while the stream was open.
 * One at a time, then the end on a tick of its own (nothing in flight); or in
 * bursts of two (the second waits for the first send) with the end right
 * after the last burst (while its send is in flight). */
static void tick_events(harness *h)
{
    if (atomic_load(&h->events_seen) < h->events_written) return;
    if (!h->burst) {
        if (h->events_written == EVENTS)
            end_stream(h);
        else
            write_event(h);
        return;
    }
    write_event(h);
    write_event(h);
    if (h->events_written == BURST_EVENTS) end_stream(h);
}

/* KN_ECLOSED is expected between the server noticing the client left and
 * gone; anything else is an error. */
static void tick_forever(harness *h)
{
    int err = net_http_stream_write(h->stream, "data: tick\n\n", 12);
    if (err != 0 && err != KN_ECLOSED) h->write_errors++;
}

static void tick_flood(harness *h)
{
    static uint8_t chunk[FLOOD_WRITE_BYTES];
    int err = net_http_stream_write(h->stream, chunk, sizeof chunk);

    if (err == 0) {
        h->flood_accepted += sizeof chunk;
        return;
    }
    if (err != KN_EBUSY) {
        h->write_errors++;
        return;
    }
    /* What the node does with a subscriber that cannot keep up. */
    h->busy_writes++;
    atomic_store(&h->busy_seen, 1);
    end_stream(h);
}

static void on_tick(uv_timer_t *t)
{
    harness *h = t->data;
    if (h->stream == NULL) {
        uv_timer_stop(t);
        return;
    }
    switch (h->mode) {
    case STREAM_EVENTS: tick_events(h); break;
    case STREAM_FOREVER: tick_forever(h); break;
    case STREAM_FLOOD: tick_flood(h); break;
    default: break;
    }
}

static void start_stream(harness *h, net_http_req *r)
{
    static const char *const sse_headers[] = {"X-Koinon-Stream", "events", NULL};

    net_http_stream_start(r, "text/event-stream", sse_headers, on_stream_gone, h);
    h->stream = r;
    /* The headers leave with the first bytes: an SSE comment sends them now. */
    if (net_http_stream_write(r, STREAM_OPENER, strlen(STREAM_OPENER)) != 0) h->write_errors++;
    if (h->mode == STREAM_QUIET) return;
    uint64_t every = h->mode == STREAM_FLOOD ? FLOOD_INTERVAL_MS : EVENT_INTERVAL_MS;
    uv_timer_start(&h->ticker, on_tick, every, every);
}

static void respond_not_found(net_http_req *r)
{
    char body[512];
    const char *probe = net_http_header(r, "x-probe");
    const char *host = net_http_header(r, "host");
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"not_found\"},\"method\":\"%s\",\"path\":\"%s\","
                     "\"query\":\"%s\",\"probe\":\"%s\",\"host\":\"%s\",\"absent\":%s}",
                     net_http_method(r), net_http_path(r), net_http_query(r),
                     probe ? probe : "(none)", host ? host : "(none)",
                     net_http_header(r, "x-absent") == NULL ? "true" : "false");
    net_http_respond(r, 404, "application/json", body, (size_t)n, NULL);
}

static void handler(void *ctx, net_http_req *r)
{
    static const char *const busy_headers[] = {"retry-after", "2", "X-Koinon-Test", "yes", NULL};
    harness *h = ctx;
    const char *path = net_http_path(r);

    h->handler_calls++;
    atomic_fetch_add(&h->handler_entered, 1);
    if (strcmp(path, "/echo") == 0) {
        size_t len;
        const uint8_t *body = net_http_body(r, &len);
        net_http_respond(r, 200, "application/octet-stream", body, len, NULL);
    } else if (strcmp(path, "/busy") == 0) {
        net_http_respond(r, 503, "text/plain", "busy", 4, busy_headers);
    } else if (strcmp(path, "/later") == 0) {
        net_http_defer(r, on_gone, h);
        h->kept = r;
        uv_timer_start(&h->later, on_later, LATER_MS, 0);
    } else if (strcmp(path, "/hang") == 0) {
        net_http_defer(r, on_gone, h);
        h->kept = r;
    } else if (strcmp(path, "/events") == 0) {
        start_stream(h, r);
    } else {
        respond_not_found(r);
    }
}

/* Starts the server and a client thread running thread_main. */
static void start(harness *h, void *(*thread_main)(void *), int port_offset)
{
    alarm(30);
    /* Below the kernel's ephemeral range (32768+), where outgoing connections could hold it. */
    h->port = (uint16_t)(25000 + getpid() % 5000 + port_offset);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(net_http_start(&h->loop, "127.0.0.1", h->port, BODY_MAX_BYTES, handler, h,
                                    &h->server),
                     0);
    uv_async_init(&h->loop, &h->client_done, on_client_done);
    h->client_done.data = h;
    uv_timer_init(&h->loop, &h->later);
    h->later.data = h;
    uv_timer_init(&h->loop, &h->ticker);
    h->ticker.data = h;
    uv_timer_init(&h->loop, &h->deadline);
    h->deadline.data = h;
    uv_timer_start(&h->deadline, on_deadline, DEADLINE_MS, 0);
    assert_int_equal(pthread_create(&h->client_thread, NULL, thread_main, h), 0);
}

/* After the loop has stopped the server: joins the client and checks that
 * every handle closed. */
static void finish(harness *h)
{
    pthread_join(h->client_thread, NULL);
    uv_close((uv_handle_t *)&h->deadline, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0); /* the server left no handle behind */
    assert_false(h->timed_out);
    alarm(0);
}

/* Runs the server until the client has finished (and, when expected, gone has
 * run), stops it, and runs the loop until every handle has closed. */
static void run(harness *h, client_fn client, int port_offset)
{
    h->client = client;
    h->pending = h->expect_gone ? 2 : 1;
    start(h, client_main, port_offset);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_false(h->teardown_hung);
    finish(h);
}

static harness *harness_new(void)
{
    harness *h = calloc(1, sizeof *h);
    atomic_init(&h->handler_entered, 0);
    atomic_init(&h->events_seen, 0);
    atomic_init(&h->busy_seen, 0);
    return h;
}

static void harness_free(harness *h)
{
    for (int i = 0; i < 2; i++) free(h->resp[i].body);
    free(h);
}

/* ---------------------------------------------------------------- tests */

static void client_get_twice(harness *h)
{
    int fd = connect_to(h->port);
    if (fd < 0) return;
    /* Two requests on one keep-alive connection: with and without a query. */
    if (send_str(fd, "GET /missing?x=1&y=two HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Probe: Hello\r\n\r\n"))
        read_response(fd, &h->resp[0]);
    if (send_str(fd, "GET /other/path HTTP/1.1\r\nHost: example\r\n\r\n"))
        read_response(fd, &h->resp[1]);
    close(fd);
}

static void get_echoes_path_and_query_with_handler_status(void **state)
{
    harness *h = harness_new();
    char v[128];

    run(h, client_get_twice, 0);
    assert_int_equal(h->handler_calls, 2);
    assert_int_equal(h->resp[0].status, 404);
    assert_string_equal((char *)h->resp[0].body,
                        "{\"error\":{\"code\":\"not_found\"},\"method\":\"GET\",\"path\":\"/missing\","
                        "\"query\":\"x=1&y=two\",\"probe\":\"Hello\",\"host\":\"127.0.0.1\","
                        "\"absent\":true}");
    assert_true(header_value(&h->resp[0], "content-type", v, sizeof v));
    assert_string_equal(v, "application/json");
    assert_true(header_value(&h->resp[0], "cache-control", v, sizeof v));
    assert_string_equal(v, "no-store");
    assert_int_equal(h->resp[1].status, 404);
    assert_string_equal((char *)h->resp[1].body,
                        "{\"error\":{\"code\":\"not_found\"},\"method\":\"GET\",\"path\":\"/other/path\","
                        "\"query\":\"\",\"probe\":\"(none)\",\"host\":\"example\",\"absent\":true}");
    harness_free(h);
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31 + 7 + (i >> 8));
    return p;
}

static void client_post_at_limit(harness *h)
{
    char head[256];
    uint8_t *body = pattern(BODY_MAX_BYTES);
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\nConnection: close\r\n\r\n",
             BODY_MAX_BYTES);
    exchange(h, head, body, BODY_MAX_BYTES, &h->resp[0]);
    free(body);
}

static void post_body_at_the_limit_arrives_intact(void **state)
{
    harness *h = harness_new();
    uint8_t *want = pattern(BODY_MAX_BYTES);

    run(h, client_post_at_limit, 1);
    assert_int_equal(h->handler_calls, 1);
    assert_int_equal(h->resp[0].status, 200);
    assert_int_equal(h->resp[0].body_len, BODY_MAX_BYTES);
    assert_memory_equal(h->resp[0].body, want, BODY_MAX_BYTES);
    free(want);
    harness_free(h);
}

/* Only the head is sent: h2o answers 413 as soon as it sees the length, and
 * closes; a body still in flight could turn that close into a reset that
 * hides the answer from the client. */
static void client_post_over_limit(harness *h)
{
    char head[256];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", BODY_MAX_BYTES + 1);
    exchange(h, head, "", 0, &h->resp[0]);
}

static void body_over_the_limit_gets_413_without_the_handler(void **state)
{
    harness *h = harness_new();

    run(h, client_post_over_limit, 2);
    assert_int_equal(h->resp[0].status, 413);
    assert_int_equal(h->handler_calls, 0);
    harness_free(h);
}

static void client_busy(harness *h)
{
    exchange(h, "GET /busy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "", 0, &h->resp[0]);
}

static void extra_headers_reach_the_client(void **state)
{
    harness *h = harness_new();
    char v[64];

    run(h, client_busy, 3);
    assert_int_equal(h->resp[0].status, 503);
    assert_string_equal((char *)h->resp[0].body, "busy");
    assert_true(header_value(&h->resp[0], "retry-after", v, sizeof v));
    assert_string_equal(v, "2");
    assert_true(header_value(&h->resp[0], "x-koinon-test", v, sizeof v));
    assert_string_equal(v, "yes");
    assert_true(header_value(&h->resp[0], "cache-control", v, sizeof v));
    assert_string_equal(v, "no-store");
    harness_free(h);
}

static void client_later(harness *h)
{
    exchange(h, "GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "", 0, &h->resp[0]);
}

static void deferred_request_is_answered_from_a_timer(void **state)
{
    harness *h = harness_new();

    run(h, client_later, 4);
    assert_int_equal(h->handler_calls, 1);
    assert_int_equal(h->resp[0].status, 200);
    assert_string_equal((char *)h->resp[0].body, "late");
    assert_null(h->kept); /* the timer answered it */
    assert_int_equal(h->gone_calls, 0); /* answered requests never report gone */
    harness_free(h);
}

static void client_leaves_early(harness *h)
{
    int fd = connect_to(h->port);
    if (fd < 0) return;
    if (send_str(fd, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")) wait_handler_entered(h, 1);
    close(fd);
}

static void client_that_leaves_a_deferred_request_triggers_gone(void **state)
{
    harness *h = harness_new();

    h->expect_gone = true;
    run(h, client_leaves_early, 5);
    assert_int_equal(h->handler_calls, 1);
    assert_int_equal(h->gone_calls, 1);
    assert_null(h->kept);
    harness_free(h);
}

/* Leaves one idle keep-alive connection and one deferred request open, then
 * lets the loop stop the server; both must be closed by the server. */
static void client_open_at_stop(harness *h)
{
    int idle = connect_to(h->port);
    int hang = connect_to(h->port);
    if (idle < 0 || hang < 0) return;
    if (send_str(idle, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")) read_response(idle, &h->resp[0]);
    if (send_str(hang, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")) wait_handler_entered(h, 2);
    uv_async_send(&h->client_done); /* the loop stops the server now */
    read_response(hang, &h->resp[1]);
    h->client_eof = reaches_eof(idle) && reaches_eof(hang);
    close(idle);
    close(hang);
}

static void *client_open_at_stop_main(void *arg)
{
    client_open_at_stop(arg);
    return NULL;
}

static void stop_closes_open_connections_and_reports_deferred_gone(void **state)
{
    harness *h = harness_new();

    /* This client signals the loop itself, before it finishes. */
    h->pending = 1;
    start(h, client_open_at_stop_main, 6);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_false(h->teardown_hung);
    assert_int_equal(h->gone_calls, 1); /* ran inside net_http_stop */
    finish(h);

    assert_int_equal(h->resp[0].status, 404);
    assert_int_equal(h->resp[1].status, 503);
    assert_int_equal(h->client_eof, 1);
    harness_free(h);
}

/* Opens GET /events and reads the head; -1 when that fails. */
static int open_stream(harness *h, reader *rd, int rcvbuf_bytes)
{
    rd->fd = connect_with_rcvbuf(h->port, rcvbuf_bytes);
    if (rd->fd < 0) return -1;
    if (send_str(rd->fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n") && read_head(rd, &h->resp[0]))
        return 0;
    close(rd->fd);
    return -1;
}

/* Reads chunks until the last one (or max_chunks, or an error), telling the
 * loop after each how many events it has seen. */
static void read_stream(harness *h, reader *rd, int max_chunks)
{
    while (h->chunks < max_chunks) {
        long n = read_chunk(rd, h->stream_body, &h->stream_len, sizeof h->stream_body);
        if (n < 0) return;
        if (n == 0) {
            h->stream_terminated = true;
            return;
        }
        h->chunks++;
        atomic_store(&h->events_seen, count_events(h->stream_body, h->stream_len));
    }
}

static void client_events(harness *h)
{
    reader rd = {0};
    if (open_stream(h, &rd, 0) != 0) return;
    read_stream(h, &rd, 1 + BURST_EVENTS + 1); /* the opener, the events, the end */
    /* The connection is still usable only if the stream ended exactly. */
    if (h->stream_terminated && send_str(rd.fd, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"))
        read_head(&rd, &h->resp[1]);
    close(rd.fd);
}

static void stream_delivers_events_in_order_as_chunks_then_ends(void **state)
{
    harness *h = harness_new();
    char v[64];

    h->mode = STREAM_EVENTS;
    run(h, client_events, 7);
    assert_int_equal(h->resp[0].status, 200);
    assert_true(header_value(&h->resp[0], "content-type", v, sizeof v));
    assert_string_equal(v, "text/event-stream");
    assert_true(header_value(&h->resp[0], "cache-control", v, sizeof v));
    assert_string_equal(v, "no-store");
    assert_true(header_value(&h->resp[0], "transfer-encoding", v, sizeof v));
    assert_string_equal(v, "chunked");
    assert_true(header_value(&h->resp[0], "x-koinon-stream", v, sizeof v));
    assert_string_equal(v, "events");
    assert_false(header_value(&h->resp[0], "content-length", v, sizeof v));
    /* Each event was written only after the client had read the one before,
     * so each came as its own chunk, after the opener's. */
    static const char want[] = STREAM_OPENER "id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\n"
                                             "id: 3\ndata: event 3\n\n";
    assert_int_equal(h->chunks, 1 + EVENTS);
    assert_int_equal(h->stream_len, sizeof want - 1);
    assert_memory_equal(h->stream_body, want, sizeof want - 1);
    assert_true(h->stream_terminated);
    assert_int_equal(h->resp[1].status, 404); /* same connection, next request */
    assert_int_equal(h->write_errors, 0);
    assert_int_equal(h->gone_calls, 0); /* ended streams never report gone */
    assert_null(h->stream);
    harness_free(h);
}

static void events_written_during_a_send_follow_it_in_order(void **state)
{
    harness *h = harness_new();
    static const char want[] = STREAM_OPENER "id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\n"
                                             "id: 3\ndata: event 3\n\nid: 4\ndata: event 4\n\n";

    h->mode = STREAM_EVENTS;
    h->burst = true;
    run(h, client_events, 12);
    assert_int_equal(h->resp[0].status, 200);
    /* One chunk per send: the second of each pair went out when the first
     * was written; the last one carried the end. */
    assert_int_equal(h->chunks, 1 + BURST_EVENTS);
    assert_int_equal(h->stream_len, sizeof want - 1);
    assert_memory_equal(h->stream_body, want, sizeof want - 1);
    assert_true(h->stream_terminated);
    assert_int_equal(h->resp[1].status, 404);
    assert_int_equal(h->write_errors, 0);
    assert_int_equal(h->gone_calls, 0);
    harness_free(h);
}

/* Reads the head, the opener and one event, then leaves while the server
 * keeps writing. */
static void client_leaves_stream(harness *h)
{
    reader rd = {0};
    if (open_stream(h, &rd, 0) != 0) return;
    read_stream(h, &rd, 2);
    close(rd.fd);
}

static void client_that_leaves_a_stream_triggers_gone_once(void **state)
{
    harness *h = harness_new();

    h->mode = STREAM_FOREVER;
    h->expect_gone = true;
    run(h, client_leaves_stream, 8);
    assert_int_equal(h->resp[0].status, 200);
    assert_int_equal(h->chunks, 2);
    assert_int_equal(h->gone_calls, 1); /* not again at stop */
    assert_int_equal(h->write_in_gone, KN_ECLOSED);
    assert_int_equal(h->write_errors, 0); /* every write returned 0 or KN_ECLOSED */
    assert_null(h->stream);
    harness_free(h);
}

/* Leaves a stream on which the server never writes: only the disconnect probe
 * can notice. */
static void client_leaves_quiet_stream(harness *h)
{
    reader rd = {0};
    if (open_stream(h, &rd, 0) != 0) return;
    close(rd.fd);
}

static void client_that_leaves_a_quiet_stream_is_noticed(void **state)
{
    harness *h = harness_new();

    h->mode = STREAM_QUIET;
    h->expect_gone = true;
    run(h, client_leaves_quiet_stream, 9);
    assert_int_equal(h->resp[0].status, 200);
    assert_int_equal(h->gone_calls, 1);
    assert_int_equal(h->write_in_gone, KN_ECLOSED);
    assert_null(h->stream);
    harness_free(h);
}

/* Never reads past the head, with a small receive window, until the server
 * has reported the stream busy. */
static void client_never_reads(harness *h)
{
    reader rd = {0};
    if (open_stream(h, &rd, SMALL_RCVBUF_BYTES) != 0) return;
    for (int i = 0; i < 500 && atomic_load(&h->busy_seen) == 0; i++) usleep(10000);
    close(rd.fd);
}

static void client_that_does_not_read_gets_busy_at_the_buffer_limit(void **state)
{
    harness *h = harness_new();

    h->mode = STREAM_FLOOD;
    run(h, client_never_reads, 10);
    assert_int_equal(h->resp[0].status, 200);
    assert_int_equal(h->busy_writes, 1);
    assert_int_equal(h->write_errors, 0);
    /* The server buffered the full allowance before refusing, on top of
     * whatever the sockets took. */
    assert_true(h->flood_accepted >= NET_HTTP_STREAM_BUFFER_MAX);
    assert_int_equal(h->gone_calls, 0); /* ended by the owner, not gone */
    harness_free(h);
}

/* Leaves a quiet stream open while the loop stops the server, then expects
 * the end of the body and the connection closed. */
static void client_stream_open_at_stop(harness *h)
{
    reader rd = {0};
    int opened = open_stream(h, &rd, 0);
    uv_async_send(&h->client_done); /* the loop stops the server now */
    if (opened != 0) return;
    read_stream(h, &rd, 2); /* the opener, then the end */
    h->client_eof = reaches_eof(rd.fd);
    close(rd.fd);
}

static void *client_stream_open_at_stop_main(void *arg)
{
    client_stream_open_at_stop(arg);
    return NULL;
}

static void stop_ends_open_streams_and_reports_gone(void **state)
{
    harness *h = harness_new();

    h->mode = STREAM_QUIET;
    h->pending = 1;
    start(h, client_stream_open_at_stop_main, 11);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_false(h->teardown_hung);
    assert_int_equal(h->gone_calls, 1); /* ran inside net_http_stop */
    assert_int_equal(h->write_in_gone, KN_ECLOSED);
    assert_null(h->stream);
    finish(h);

    assert_int_equal(h->resp[0].status, 200);
    assert_int_equal(h->chunks, 1);
    assert_true(h->stream_terminated);
    assert_int_equal(h->client_eof, 1);
    harness_free(h);
}

static void bad_listen_address_is_refused(void **state)
{
    uv_loop_t loop;
    net_http_server *s = NULL;

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(net_http_start(&loop, "not-an-address", 1, 1, handler, NULL, &s), KN_EINVAL);
    assert_null(s);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_echoes_path_and_query_with_handler_status),
        cmocka_unit_test(post_body_at_the_limit_arrives_intact),
        cmocka_unit_test(body_over_the_limit_gets_413_without_the_handler),
        cmocka_unit_test(extra_headers_reach_the_client),
        cmocka_unit_test(deferred_request_is_answered_from_a_timer),
        cmocka_unit_test(client_that_leaves_a_deferred_request_triggers_gone),
        cmocka_unit_test(stop_closes_open_connections_and_reports_deferred_gone),
        cmocka_unit_test(stream_delivers_events_in_order_as_chunks_then_ends),
        cmocka_unit_test(events_written_during_a_send_follow_it_in_order),
        cmocka_unit_test(client_that_leaves_a_stream_triggers_gone_once),
        cmocka_unit_test(client_that_leaves_a_quiet_stream_is_noticed),
        cmocka_unit_test(client_that_does_not_read_gets_busy_at_the_buffer_limit),
        cmocka_unit_test(stop_ends_open_streams_and_reports_gone),
        cmocka_unit_test(bad_listen_address_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
