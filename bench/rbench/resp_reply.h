/* A streaming parser of RESP2 replies, for a client reading a server's output: it consumes
 * whatever bytes arrived and reports each complete top-level reply, keeping only a bounded
 * prefix of strings (bulk payloads are skipped by length, never buffered whole). So a
 * connection's input buffer has a fixed size whatever the replies are, and a server's bad
 * bytes are an error the caller counts, never a crash or an unbounded allocation.
 *
 * Accepted: `+text`, `-text`, `:int`, `$len` + payload (len -1: nil), `*count` (count -1:
 * nil) with nesting up to RESP_REPLY_DEPTH_MAX. A line ends at "\n" (a "\r" before it is
 * dropped); the two bytes after a bulk payload must be "\r\n". Refused (RESP_REPLY_BAD): any
 * other type byte, a number that is not one (or past the limits below), a header line
 * longer than RESP_REPLY_NUM_MAX, deeper nesting. After RESP_REPLY_BAD the parser must be
 * reset (the connection's stream has no trustworthy framing any more). */
#ifndef RB_RESP_REPLY_H
#define RB_RESP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESP_REPLY_DEPTH_MAX 8           /* XREAD replies nest 4 deep */
#define RESP_REPLY_KEEP      256         /* bytes kept of a line or bulk payload */
#define RESP_REPLY_NUM_MAX   24          /* bytes of a ':' '$' '*' line, type byte excluded */
#define RESP_REPLY_BULK_MAX  (1ll << 40) /* largest bulk length accepted */
#define RESP_REPLY_COUNT_MAX (1ll << 32) /* largest array count accepted */

enum {
    RESP_REPLY_BAD = -1, /* protocol error; *used says where */
    RESP_REPLY_MORE = 0, /* every byte consumed, no reply complete */
    RESP_REPLY_DONE = 1, /* one top-level reply complete, *used bytes consumed */
};

struct resp_reply_parser {
    uint8_t depth;                        /* arrays open; <= RESP_REPLY_DEPTH_MAX */
    uint8_t type;                         /* type byte of the element in progress; 0: none */
    uint8_t top;                          /* type byte of the top-level reply in progress */
    bool top_nil;                         /* the top-level reply is $-1 or *-1 */
    bool in_bulk;                         /* skipping a bulk payload */
    bool in_cr;                           /* the last line byte seen was '\r' */
    uint32_t line_len;                    /* bytes of the current line seen (kept or not) */
    uint64_t bulk_left;                   /* in_bulk: payload bytes left, plus the CRLF */
    uint64_t bulk_len;                    /* in_bulk: the payload's length */
    int64_t left[RESP_REPLY_DEPTH_MAX];   /* elements still to come in each open array */
    uint32_t index[RESP_REPLY_DEPTH_MAX]; /* index of the next element in each open array */
    uint32_t keep_len;                    /* bytes in keep; <= RESP_REPLY_KEEP */
    char keep[RESP_REPLY_KEEP];           /* start of the current line or bulk payload */
    uint32_t top_text_len;                /* bytes in top_text */
    char top_text[RESP_REPLY_KEEP];       /* top-level + or - line (its start) */
};

/* What the visitor sees of each scalar: at depth d (0: top level) its position is
 * p->index[0..d) (p->index[d-1] is its index in the innermost array). */
struct resp_scalar {
    char type;        /* '+', '-', ':', '$' */
    bool nil;         /* $-1 */
    int64_t integer;  /* ':' */
    const char *data; /* '+', '-', '$': the first len bytes */
    size_t len;       /* <= RESP_REPLY_KEEP */
    bool truncated;   /* the string was longer than len */
};

typedef void (*resp_reply_visit_fn)(void *arg,
                                    const struct resp_reply_parser *p,
                                    const struct resp_scalar *s);

/* One complete top-level reply. */
struct resp_reply {
    char type;        /* '+', '-', ':', '$', '*' */
    bool nil;         /* $-1 or *-1 */
    const char *text; /* '+', '-': the line's first text_len bytes (in the parser) */
    size_t text_len;
};

void resp_reply_init(struct resp_reply_parser *p);

/* Consumes in[0, len) up to the end of the first complete top-level reply: RESP_REPLY_DONE
 * with *used bytes consumed and *out filled (its text valid until the next call), or
 * RESP_REPLY_MORE with every byte consumed, or RESP_REPLY_BAD. visit (may be NULL) is called
 * for every scalar, nested ones included. */
int resp_reply_feed(struct resp_reply_parser *p,
                    const uint8_t *in,
                    size_t len,
                    size_t *used,
                    struct resp_reply *out,
                    resp_reply_visit_fn visit,
                    void *arg);

#endif
