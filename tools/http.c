/* A small libcurl wrapper: one request, a bounded reply body, failures reported
 * in the house format; and lenient JSON readers for display. */
#include "tools/internal.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int cli_http_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : KN_EINVAL;
}

typedef struct sink {
    kn_buf *body;
    bool overflow;
} sink;

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ctx)
{
    sink *s = ctx;
    size_t n = size * nmemb;
    if (n > CLI_REPLY_BYTES_MAX - s->body->len) {
        s->overflow = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    kn_buf_append(s->body, p, n);
    return n;
}

static void set_request(CURL *h, const char *url, const char *content_type, const void *body,
                        size_t n, long timeout_ms, struct curl_slist **headers)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "koinon/" KOINON_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    *headers = curl_slist_append(*headers, "Accept: application/json");
    if (body) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        *headers = curl_slist_append(*headers, ct);
        /* A transaction is small; do not wait for a 100-continue round trip. */
        *headers = curl_slist_append(*headers, "Expect:");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
}

static int report_transport(CURL *h, CURLcode cc, const char *errbuf, const char *node,
                            bool overflow)
{
    if (overflow) {
        cli_fail(KN_ETOOBIG, "reply from %s is larger than %u bytes", node, CLI_REPLY_BYTES_MAX);
        return KN_ETOOBIG;
    }
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    /* A timeout after the connection was made means the node may have acted on
     * the request; callers tell the two apart by the code. */
    curl_off_t connect_us = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
    if (cc == CURLE_OPERATION_TIMEDOUT && connect_us > 0) {
        cli_fail(KN_ETIMEOUT, "node at %s did not answer in time: %s", node, why);
        return KN_ETIMEOUT;
    }
    cli_fail(KN_ECLOSED, "cannot reach node at %s: %s", node, why);
    return KN_ECLOSED;
}

int cli_http(const char *node, const char *path, const char *content_type, const void *body,
             size_t n, long timeout_ms, cli_reply *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_s = -1;
    char url[CLI_URL_MAX + CLI_PATH_MAX];
    if (snprintf(url, sizeof url, "%s%s", node, path) >= (int)sizeof url) {
        cli_fail(KN_EINVAL, "URL %s%s is too long", node, path);
        return KN_EINVAL;
    }

    CURL *h = curl_easy_init();
    if (!h) {
        cli_fail(KN_ENOMEM, "cannot create an HTTP request");
        return KN_ENOMEM;
    }
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    sink s = {&out->body, false};
    set_request(h, url, content_type, body, n, timeout_ms, &headers);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);

    int rc = 0;
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        rc = report_transport(h, cc, errbuf, node, s.overflow);
        kn_buf_free(&out->body);
    } else {
        curl_off_t retry = -1;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
            out->retry_after_s = (long)retry;
        out->json = json_loadb((const char *)out->body.data, out->body.len, 0, NULL);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

void cli_reply_free(cli_reply *r)
{
    if (r->json) json_decref(r->json);
    kn_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

int cli_reply_error(const cli_reply *r)
{
    const json_t *err = json_object_get(r->json, "error");
    const char *code = cli_jstr(err, "code", NULL);
    const char *message = cli_jstr(err, "message", NULL);
    if (r->status == 503) {
        if (r->retry_after_s > 0)
            cli_error_text(code ? code : "busy", "node busy, retry in %ld s", r->retry_after_s);
        else
            cli_error_text(code ? code : "busy", "node busy, retry");
        return CLI_EXIT_FAIL;
    }
    if (code) {
        cli_error_text(code, "%s", message ? message : kn_strerror(kn_errcode(code)));
        return CLI_EXIT_FAIL;
    }
    if (r->status >= 200 && r->status < 300)
        return cli_fail(KN_EDECODE, "node answered HTTP %ld without a JSON object", r->status);
    return cli_fail(KN_EIO, "node answered HTTP %ld", r->status);
}

int cli_get_json(const char *node, const char *path, bool raw, cli_reply *r)
{
    if (cli_http(node, path, NULL, NULL, 0, CLI_REQUEST_TIMEOUT_MS, r) != 0) return CLI_EXIT_FAIL;
    if (raw) cli_print_body(r);
    if (r->status >= 200 && r->status < 300 && json_is_object(r->json)) return 0;
    int rc = cli_reply_error(r);
    cli_reply_free(r);
    return rc;
}

void cli_print_body(const cli_reply *r)
{
    if (r->body.len == 0) return;
    fwrite(r->body.data, 1, r->body.len, stdout);
    if (r->body.data[r->body.len - 1] != '\n') putchar('\n');
}

/* ---------------------------------------------------------------- JSON, amounts */

const char *cli_jstr(const json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : fallback;
}

bool cli_jint(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

void cli_format_amount(char *out, size_t cap, int64_t amount_minor, unsigned scale)
{
    /* The magnitude as unsigned, so INT64_MIN does not overflow. */
    uint64_t mag = amount_minor < 0 ? -(uint64_t)amount_minor : (uint64_t)amount_minor;
    const char *sign = amount_minor < 0 ? "-" : "";
    if (scale == 0 || scale > 19) {
        snprintf(out, cap, "%s%" PRIu64, sign, mag);
        return;
    }
    uint64_t unit = 1;
    for (unsigned i = 0; i < scale; i++) unit *= 10;
    snprintf(out, cap, "%s%" PRIu64 ".%0*" PRIu64, sign, mag / unit, (int)scale, mag % unit);
}
