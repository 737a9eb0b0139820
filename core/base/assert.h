/* Assertions for our own invariants, on in every build. A failure calls the handler the
 * caller installed (the core does no I/O itself); the default handler traps. */
#ifndef RR_BASE_ASSERT_H
#define RR_BASE_ASSERT_H

typedef void (*rr_assert_handler)(const char *file, int line, const char *expr);

/* Install handler (NULL restores the default trap). Not thread-safe: call at start-up. */
void rr_assert_set_handler(rr_assert_handler handler);

/* Called on a failed assertion; never returns. */
_Noreturn void rr_assert_fail(const char *file, int line, const char *expr);

#define RR_ASSERT(expr)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(expr), 0)) {                                                        \
            rr_assert_fail(__FILE__, __LINE__, #expr);                                             \
        }                                                                                          \
    } while (0)

/* O(n) checks: compiled in only when RR_SLOW_ASSERTS is defined (test builds). */
#ifdef RR_SLOW_ASSERTS
#define RR_ASSERT_SLOW(expr) RR_ASSERT(expr)
#else
#define RR_ASSERT_SLOW(expr) ((void)0)
#endif

#endif
