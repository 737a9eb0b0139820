/* The node's log: one line per event, "time level [wN] message", written with one write(2)
 * so lines from different workers never interleave. Repeated messages from one call site are
 * rate limited (at most LOG_BURST per second per site; the number suppressed is reported
 * with the next line that passes). */
#ifndef RR_IO_LOG_H
#define RR_IO_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_NOTICE = 2, LOG_WARN = 3, LOG_ERROR = 4 };

/* Process-wide settings, set once at start-up before workers run. fd: where lines go. */
void log_setup(enum log_level min, int fd);
/* Parses "debug", "info" (or "verbose"), "notice", "warning", "error"; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level l);
/* The calling thread's worker number, shown as [wN] (-1: the main thread, shown as [main]). */
void log_set_worker(int worker);

struct log_site {
    int64_t window_start_ms;
    uint32_t in_window;
    uint32_t suppressed;
};
#define LOG_BURST 10

void log_emit(struct log_site *site, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Each call site gets its own rate-limit state (thread-local: workers never share it). */
#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        static _Thread_local struct log_site log_site_;                                            \
        log_emit(&log_site_, (level), __VA_ARGS__);                                                \
    } while (0)
#define LOG_D(...) LOG(LOG_DEBUG, __VA_ARGS__)
#define LOG_I(...) LOG(LOG_INFO, __VA_ARGS__)
#define LOG_N(...) LOG(LOG_NOTICE, __VA_ARGS__)
#define LOG_W(...) LOG(LOG_WARN, __VA_ARGS__)
#define LOG_E(...) LOG(LOG_ERROR, __VA_ARGS__)

#endif
