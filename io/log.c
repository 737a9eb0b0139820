#include "io/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "io/kernel.h"

static enum log_level log_min = LOG_INFO;
static int log_fd = 2;
static _Thread_local int log_worker = -1;

void log_setup(enum log_level min, int fd)
{
    log_min = min;
    log_fd = fd;
}

void log_set_worker(int worker)
{
    log_worker = worker;
}

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

int log_level_parse(const char *s)
{
    if (strcmp(s, "verbose") == 0) {
        return LOG_INFO;
    }
    for (int i = 0; i <= LOG_ERROR; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level l)
{
    return level_names[l];
}

void log_emit(struct log_site *site, enum log_level level, const char *fmt, ...)
{
    if (level < log_min) {
        return;
    }
    int64_t now_ms = node_wall_ms();
    if (now_ms - site->window_start_ms >= 1000) {
        site->window_start_ms = now_ms;
        site->in_window = 0;
    }
    if (++site->in_window > LOG_BURST) {
        site->suppressed++;
        return;
    }
    char line[1024];
    struct tm tm;
    time_t now_s = (time_t)(now_ms / 1000);
    gmtime_r(&now_s, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-7s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(now_ms % 1000), level_names[level]);
    if (log_worker >= 0) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[w%d] ", log_worker);
    } else {
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[main] ");
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 40) {
        len = sizeof(line) - 40;
    }
    if (site->suppressed > 0) {
        len += (size_t)snprintf(line + len, sizeof(line) - len, " (%u similar suppressed)",
                                site->suppressed);
        site->suppressed = 0;
    }
    line[len++] = '\n';
    /* One write per line; a failed log write has nowhere to be reported. */
    kernel_log_write(log_fd, line, len);
}
