/* Crash points: named places in the daemon where a test can make the process
 * die at once, as from a power cut, to prove that what is durable at that
 * place is enough to resume without contradicting itself.
 *
 * KOINON_CRASH_AT=<name>[:<n>] arms one point: the n-th time (default 1) the
 * loop thread reaches it, one line naming it goes to stderr with write(2) and
 * the process ends with _exit(NODE_CRASH_EXIT_STATUS): no atexit handlers, no
 * stdio flush, no store close, no goodbye to the peers. Unarmed, a point costs
 * one test of a flag read once at startup. */
#include "node/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool node__crash_armed;

static enum node_crash_point armed_point;
static uint64_t armed_count; /* fire when reached this many times */
static uint64_t reached;

static const char *const point_names[] = {
#define NODE__CRASH_NAME(id, name) [NODE_CRASH_##id] = name,
    NODE_CRASH_POINTS(NODE__CRASH_NAME)
#undef NODE__CRASH_NAME
};

const char *node__crash_name(enum node_crash_point point)
{
    return point < NODE_CRASH__COUNT ? point_names[point] : "?";
}

int node__crash_arm(const char *spec)
{
    node__crash_armed = false;
    reached = 0;
    if (spec == NULL || spec[0] == '\0') return 0;
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    uint64_t count = 1;
    if (colon) {
        char *end;
        if (colon[1] < '0' || colon[1] > '9') return KN_ECONFIG;
        unsigned long long v = strtoull(colon + 1, &end, 10);
        if (*end != '\0' || v == 0 || v > UINT32_MAX) return KN_ECONFIG;
        count = v;
    }
    for (uint32_t i = 0; i < NODE_CRASH__COUNT; i++) {
        if (strlen(point_names[i]) != name_len || memcmp(point_names[i], spec, name_len) != 0)
            continue;
        armed_point = (enum node_crash_point)i;
        armed_count = count;
        node__crash_armed = true;
        return 0;
    }
    return KN_ECONFIG;
}

int node__crash_init(void)
{
    const char *spec = getenv("KOINON_CRASH_AT");
    int rc = node__crash_arm(spec);
    if (rc) {
        KN_ERROR("node", "KOINON_CRASH_AT must be <point>[:<n>] with a known point", "value=\"%s\"",
                 spec);
        return rc;
    }
    if (node__crash_armed)
        KN_WARN("node", "crash point armed: this process will die on purpose", "point=%s n=%llu",
                point_names[armed_point], (unsigned long long)armed_count);
    return 0;
}

void node__crash_reached(enum node_crash_point point)
{
    if (point != armed_point || ++reached < armed_count) return;
    char line[128];
    int len = snprintf(line, sizeof line, "koinond: crash point %s reached (%llu): exiting now\n",
                       point_names[point], (unsigned long long)reached);
    if (len > 0) {
        ssize_t written = write(STDERR_FILENO, line, strlen(line));
        (void)written; /* nothing to do about a lost line: the exit status says it too */
    }
    _exit(NODE_CRASH_EXIT_STATUS);
}
