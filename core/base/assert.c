#include "core/base/assert.h"

#include <stddef.h>

static rr_assert_handler assert_handler; /* NULL: trap. Set once at start-up. */

void rr_assert_set_handler(rr_assert_handler handler)
{
    assert_handler = handler;
}

_Noreturn void rr_assert_fail(const char *file, int line, const char *expr)
{
    if (assert_handler != NULL) {
        assert_handler(file, line, expr);
    }
    /* A handler must not return; if it does, or there is none, stop here. */
    __builtin_trap();
}
