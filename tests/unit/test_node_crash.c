/* Crash points (node/crash.c): what KOINON_CRASH_AT accepts, and that an armed
 * point ends the process with NODE_CRASH_EXIT_STATUS on its n-th visit and not
 * before, while other points and an unarmed daemon pass through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node/internal.h"

static void arm_accepts_every_point_and_a_count(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < NODE_CRASH__COUNT; i++) {
        assert_int_equal(node__crash_arm(node__crash_name((enum node_crash_point)i)), 0);
        assert_true(node__crash_armed);
    }
    assert_int_equal(node__crash_arm("mid_commit:3"), 0);
    assert_true(node__crash_armed);
    assert_int_equal(node__crash_arm(""), 0);
    assert_false(node__crash_armed);
    assert_int_equal(node__crash_arm(NULL), 0);
    assert_false(node__crash_armed);
}

static void arm_refuses_unknown_or_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "mid_comit",
        "mid_commit:",
        "mid_commit:0",
        "mid_commit:-1",
        "mid_commit:2x",
        "mid_commit:+2",
        "mid_commit:99999999999",
        "MID_COMMIT",
        "mid_commit ",
        ":3",
        "mid",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(node__crash_arm("after_send"), 0);
        assert_int_equal(node__crash_arm(bad[i]), KN_ECONFIG);
        assert_false(node__crash_armed); /* a refused value leaves nothing armed */
    }
}

/* Runs visits of point in a child armed with spec; its wait status. */
static int child_status(const char *spec, enum node_crash_point point, int visits)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (node__crash_arm(spec)) _exit(2);
        for (int i = 0; i < visits; i++)
            node__crash_reached(point);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void armed_point_fires_on_its_nth_visit(void **state)
{
    (void)state;
    assert_int_equal(child_status("mid_commit:3", NODE_CRASH_MID_COMMIT, 2), 0);
    assert_int_equal(child_status("mid_commit:3", NODE_CRASH_MID_COMMIT, 3),
                     NODE_CRASH_EXIT_STATUS);
    assert_int_equal(child_status("mid_commit", NODE_CRASH_MID_COMMIT, 1), NODE_CRASH_EXIT_STATUS);
    /* Another point passes through however often it is reached. */
    assert_int_equal(child_status("mid_commit", NODE_CRASH_AFTER_COMMIT, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arm_accepts_every_point_and_a_count),
        cmocka_unit_test(arm_refuses_unknown_or_malformed),
        cmocka_unit_test(armed_point_fires_on_its_nth_visit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
