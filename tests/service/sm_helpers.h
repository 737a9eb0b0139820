/* Helpers for the state machine tests: build log entries from a command line and compare
 * the RESP reply bytes. Header-only (every tests/service/test_*.c is its own binary); all
 * functions are static inline. */
#ifndef RR_TESTS_SERVICE_SM_HELPERS_H
#define RR_TESTS_SERVICE_SM_HELPERS_H

/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "io/service/cgroup_cmd.h"
#include "io/service/cmd.h"
#include "io/service/reply.h"
#include "io/service/sm.h"

#define T_ARGS_MAX  64
#define T_LINE_MAX  4096
#define T_REPLY_MAX (1u << 20)
#define T_ENTRY_MAX 8192

/* A command split into arguments: words separated by spaces; "..." quotes a word (may be
 * empty, no escapes). */
struct t_cmd {
    char buf[T_LINE_MAX];
    uint32_t argc;
    const uint8_t *argv[T_ARGS_MAX];
    uint32_t argl[T_ARGS_MAX];
};

static inline void t_split(struct t_cmd *c, const char *line)
{
    size_t n = strlen(line);
    assert_true(n < T_LINE_MAX);
    memcpy(c->buf, line, n + 1);
    c->argc = 0;
    char *p = c->buf;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        assert_true(c->argc < T_ARGS_MAX);
        char *start;
        char *end;
        if (*p == '"') {
            start = ++p;
            while (*p != '"' && *p != '\0') {
                p++;
            }
            end = p;
            if (*p == '"') {
                p++;
            }
        } else {
            start = p;
            while (*p != ' ' && *p != '\0') {
                p++;
            }
            end = p;
        }
        c->argv[c->argc] = (const uint8_t *)start;
        c->argl[c->argc] = (uint32_t)(end - start);
        c->argc++;
    }
}

/* A state machine under test plus the reply of the last call. */
struct t_sm {
    struct sm *sm;
    struct reply r;
    raft_index index;
    char out[T_REPLY_MAX + 1];
};

static inline void t_init_limits(struct t_sm *t, const struct sm_limits *l)
{
    assert_int_equal(sm_create(&t->sm, l, NULL), 0);
    reply_init(&t->r, T_REPLY_MAX);
    t->index = 0;
}

static inline void t_init(struct t_sm *t)
{
    t_init_limits(t, NULL);
}

static inline void t_fini(struct t_sm *t)
{
    sm_destroy(t->sm);
    reply_free(&t->r);
}

static inline const char *t_take(struct t_sm *t)
{
    assert_false(t->r.overflow);
    memcpy(t->out, t->r.buf, t->r.len);
    t->out[t->r.len] = '\0';
    reply_reset(&t->r);
    return t->out;
}

/* Encodes and applies a write from (client, seq, first_unacked) at time_ms; returns the
 * reply. */
static inline const char *t_apply_fu(struct t_sm *t,
                                     uint64_t client,
                                     uint64_t seq,
                                     uint64_t first_unacked,
                                     int64_t time_ms,
                                     const char *line)
{
    struct t_cmd c;
    t_split(&c, line);
    struct sm_entry_header h = {
        .client_id = client, .seq = seq, .first_unacked = first_unacked, .time_ms = time_ms};
    static uint8_t entry[T_ENTRY_MAX];
    size_t n = sm_entry_encode(&h, c.argc, c.argv, c.argl, entry, sizeof(entry));
    assert_int_equal(n, sm_entry_size(c.argc, c.argl));
    assert_int_equal(sm_apply(t->sm, ++t->index, entry, n, &t->r), 0);
    return t_take(t);
}

/* The same from a client that waits for each reply: first_unacked = seq. */
static inline const char *
t_apply_as(struct t_sm *t, uint64_t client, uint64_t seq, int64_t time_ms, const char *line)
{
    return t_apply_fu(t, client, seq, seq, time_ms, line);
}

static inline const char *t_apply(struct t_sm *t, int64_t time_ms, const char *line)
{
    return t_apply_as(t, 0, 0, time_ms, line);
}

static inline const char *t_read(struct t_sm *t, int64_t now_ms, const char *line)
{
    struct t_cmd c;
    t_split(&c, line);
    sm_read(t->sm, now_ms, c.argc, c.argv, c.argl, &t->r);
    return t_take(t);
}

/* Applies or reads depending on the command's class (XGROUP HELP and XINFO HELP are
 * answered as the node answers them). */
static inline const char *t_do(struct t_sm *t, int64_t time_ms, const char *line)
{
    struct t_cmd c;
    t_split(&c, line);
    struct reply ignored;
    reply_init(&ignored, 1u << 16);
    const struct cmd_spec *spec = cmd_resolve(c.argc, c.argv, c.argl, &ignored);
    reply_free(&ignored);
    if (spec != NULL && spec->cls == CMD_READ) {
        return t_read(t, time_ms, line);
    }
    if (spec != NULL && (spec->id == CMD_ID_XGROUP_HELP || spec->id == CMD_ID_XINFO_HELP)) {
        cg_cmd_help(spec->id, &t->r);
        return t_take(t);
    }
    return t_apply(t, time_ms, line);
}

/* A (command, expected reply) pair, checked in order. */
struct t_case {
    const char *cmd;
    const char *reply;
};

static inline void t_print_escaped(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\r') {
            fputs("\\r", stderr);
        } else if (*p == '\n') {
            fputs("\\n", stderr);
        } else {
            fputc(*p, stderr);
        }
    }
    fputc('\n', stderr);
}

static inline void
t_run_cases(struct t_sm *t, int64_t time_ms, const struct t_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = t_do(t, time_ms, cases[i].cmd);
        if (strcmp(got, cases[i].reply) != 0) {
            fprintf(stderr, "command: %s\n  expected: ", cases[i].cmd);
            t_print_escaped(cases[i].reply);
            fprintf(stderr, "  got:      ");
            t_print_escaped(got);
        }
        assert_string_equal(got, cases[i].reply);
    }
}

#define T_RUN(t, time_ms, cases)                                                                   \
    t_run_cases((t), (time_ms), (cases), sizeof(cases) / sizeof((cases)[0]))

#endif
