/* Per-loop measurements and their merge (stats.h). */
#include "bench/rbench/stats.h"

#include <string.h>

void stats_init(struct rb_stats *s)
{
    memset(s, 0, sizeof(*s));
    for (int op = 0; op < RB_OP_COUNT; op++) {
        histogram_init(&s->latency[op]);
    }
    histogram_init(&s->lateness);
    histogram_init(&s->first_reply);
}

void errors_add(struct rb_errors *e, const char *text, size_t len, uint64_t n)
{
    size_t word = 0;
    while (word < len && word < RB_ERROR_NAME_MAX - 1 && text[word] != ' ' && text[word] != '\r' &&
           text[word] != '\n') {
        word++;
    }
    if (word == 0) {
        text = "(empty)";
        word = strlen(text);
    }
    for (uint32_t i = 0; i < e->kinds; i++) {
        if (strlen(e->name[i]) == word && memcmp(e->name[i], text, word) == 0) {
            e->count[i] += n;
            return;
        }
    }
    if (e->kinds >= RB_ERROR_KINDS_MAX - 1) {
        /* The table's last entry is "other": everything past the table. */
        if (e->kinds == RB_ERROR_KINDS_MAX - 1) {
            memcpy(e->name[e->kinds], "other", sizeof("other"));
            e->count[e->kinds] = 0;
            e->kinds++;
        }
        e->count[RB_ERROR_KINDS_MAX - 1] += n;
        return;
    }
    memcpy(e->name[e->kinds], text, word);
    e->name[e->kinds][word] = '\0';
    e->count[e->kinds] = n;
    e->kinds++;
}

uint64_t errors_total(const struct rb_errors *e)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < e->kinds; i++) {
        n += e->count[i];
    }
    return n;
}

uint64_t stats_ok_total(const struct rb_stats *s)
{
    uint64_t n = 0;
    for (int op = 0; op < RB_OP_COUNT; op++) {
        n += s->ok[op];
    }
    return n;
}

void stats_merge(struct rb_stats *dst, const struct rb_stats *src)
{
    for (int op = 0; op < RB_OP_COUNT; op++) {
        histogram_merge(&dst->latency[op], &src->latency[op]);
        dst->ok[op] += src->ok[op];
    }
    histogram_merge(&dst->lateness, &src->lateness);
    histogram_merge(&dst->first_reply, &src->first_reply);
    dst->sent += src->sent;
    dst->redirects += src->redirects;
    dst->retries += src->retries;
    dst->unsent += src->unsent;
    dst->conn_failures += src->conn_failures;
    if (src->last_reply_ns > dst->last_reply_ns) {
        dst->last_reply_ns = src->last_reply_ns;
    }
    for (uint32_t i = 0; i < src->errors.kinds; i++) {
        errors_add(&dst->errors, src->errors.name[i], strlen(src->errors.name[i]),
                   src->errors.count[i]);
    }
}
