/* Hex, clocks and the structured logger. */
#include "common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char digits[] = "0123456789abcdef";

void kn_hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int kn_unhex(uint8_t *out, size_t n, const char *hex, size_t hex_len)
{
    if (hex == NULL || hex_len != 2 * n) return KN_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return KN_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t kn_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

uint64_t kn_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

uint64_t kn_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static enum kn_log_level log_min = KN_LOG_INFO;
static bool log_json;

typedef struct module_level {
    char name[16];
    enum kn_log_level min;
} module_level;
static module_level modules[KN_LOG_MODULES_MAX];
static size_t n_modules;

void kn_log_setup(enum kn_log_level min, bool json)
{
    log_min = min;
    log_json = json;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int kn_log_level_parse(const char *name, size_t len, enum kn_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strlen(level_names[i]) == len && strncmp(name, level_names[i], len) == 0) {
            *out = (enum kn_log_level)i;
            return 0;
        }
    return KN_EINVAL;
}

int kn_log_modules(const char *spec)
{
    module_level parsed[KN_LOG_MODULES_MAX];
    size_t count = 0;
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq == p || (size_t)(eq - p) >= sizeof parsed[0].name || count == KN_LOG_MODULES_MAX)
            return KN_EINVAL;
        if (kn_log_level_parse(eq + 1, (size_t)(end - eq - 1), &parsed[count].min)) return KN_EINVAL;
        memcpy(parsed[count].name, p, (size_t)(eq - p));
        parsed[count].name[eq - p] = '\0';
        count++;
        if (*end && !end[1]) return KN_EINVAL; /* a trailing comma */
        p = *end ? end + 1 : end;
    }
    memcpy(modules, parsed, sizeof parsed[0] * count);
    n_modules = count;
    return 0;
}

static enum kn_log_level min_for(const char *module)
{
    for (size_t i = 0; i < n_modules; i++)
        if (strcmp(modules[i].name, module) == 0) return modules[i].min;
    return log_min;
}

/* The caller's pairs arrive as `k=v k2="v two"`; in JSON mode each becomes a
 * string member, which is what log shippers index. Values are quoted when they
 * hold spaces and never hold quotes or backslashes themselves. */
static void emit_json_pairs(FILE *f, const char *pairs)
{
    const char *p = pairs;
    while (*p) {
        while (*p == ' ') p++;
        const char *eq = strchr(p, '=');
        if (!eq) break;
        const char *value = eq + 1, *end;
        if (*value == '"') {
            value++;
            end = strchr(value, '"');
            if (!end) end = value + strlen(value);
        } else {
            end = strchr(value, ' ');
            if (!end) end = value + strlen(value);
        }
        fprintf(f, ",\"%.*s\":\"%.*s\"", (int)(eq - p), p, (int)(end - value), value);
        p = *end == '"' ? end + 1 : end;
    }
}

void kn_log(enum kn_log_level level, const char *module, const char *msg, const char *fmt, ...)
{
    if (level < min_for(module)) return;
    char pairs[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pairs, sizeof pairs, fmt, ap);
    va_end(ap);

    uint64_t now = kn_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(now % 1000));
    if (log_json) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"%s\",\"msg\":\"%s\"", ts,
                level_names[level], module, msg);
        emit_json_pairs(stderr, pairs);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s mod=%s msg=\"%s\"%s%s\n", ts, level_names[level], module,
                msg, pairs[0] ? " " : "", pairs);
    }
}
