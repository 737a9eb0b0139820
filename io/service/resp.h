/* RESP2 request parser: turns a client connection's input bytes into argument vectors,
 * incrementally, with Redis's framing rules and error texts and with every size bounded.
 *
 * Input model. The connection keeps its unconsumed input in one contiguous buffer that it
 * appends to (and may move or compact). Each call to resp_parse() is given the unconsumed
 * bytes, starting with the first byte of the request in progress. The parser remembers, as
 * offsets from that first byte, how far it has got, so a request arriving in many pieces
 * costs O(bytes) overall: no byte is searched twice for a line end, and bulk payloads are
 * never looked at (they are skipped by length).
 *
 * Every call reports `consumed_bytes`: the bytes at the front of the input that are done
 * with (a complete request, plus any empty requests skipped before it). The next call must
 * be given the input starting at in + consumed_bytes, with the same bytes after it (moved
 * or extended, never changed). The state is per connection and small (no heap).
 *
 * Arguments. A complete request's arguments are written to caller-owned arrays (struct
 * resp_args), which need only live for one call: a worker can own one set, sized for the
 * limits, and share it among all its connections, as long as it uses (or copies) a request's
 * arguments before it parses the next one. Multibulk arguments point into the input and
 * stay valid until the caller consumes, moves or overwrites those bytes; inline arguments
 * (which need unquoting) point into resp_args.scratch and stay valid until the next
 * resp_parse() call with that scratch.
 *
 * Errors. A protocol error is final for the connection: the caller replies with
 * `-ERR <message>` (Redis's exact text) and closes. The parser's state is then undefined
 * until resp_parser_init(). docs/client-protocol.md lists the limits and errors. */
#ifndef RR_IO_SERVICE_RESP_H
#define RR_IO_SERVICE_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults (resp_limits_default) and hard ceilings (resp_limits_check). */
#define RESP_INLINE_MAX_DEFAULT  (64u << 10) /* Redis PROTO_INLINE_MAX_SIZE */
#define RESP_ARGS_MAX_DEFAULT    65536u      /* Redis 6: 1024*1024; a log needs far fewer */
#define RESP_BULK_MAX_DEFAULT    (16u << 20) /* Redis proto-max-bulk-len is 512 MiB */
#define RESP_REQUEST_MAX_DEFAULT (64u << 20)
#define RESP_INLINE_MAX_CEILING  (1u << 20)
#define RESP_ARGS_MAX_CEILING    (1u << 20) /* Redis 6's fixed multibulk length limit */
#define RESP_REQUEST_MAX_CEILING (1u << 30)
/* Limits for a client that has not authenticated yet (Redis's): enough for AUTH and HELLO,
 * too little to make a node buffer anything large for a stranger. */
#define RESP_UNAUTH_ARGS_MAX 10u
#define RESP_UNAUTH_BULK_MAX 16384u

struct resp_limits {
    uint32_t inline_max;  /* bytes of an inline line before its \n (a \r included); also the
                           * longest '*' or '$' header line. 1..RESP_INLINE_MAX_CEILING */
    uint32_t args_max;    /* arguments in one request. 1..RESP_ARGS_MAX_CEILING */
    uint64_t bulk_max;    /* bytes of one bulk argument. <= request_max */
    uint64_t request_max; /* bytes of one request, first byte to last CRLF.
                           * >= inline_max + 2, <= RESP_REQUEST_MAX_CEILING */
};

void resp_limits_default(struct resp_limits *l);
/* 0, or RR_EINVAL if a field is outside the ranges above. */
int resp_limits_check(const struct resp_limits *l);
/* The most unconsumed input the parser can ask to see: while resp_parse() answers
 * RESP_NEED_MORE, the bytes passed to it never exceed this (it refuses the request first).
 * A connection's input buffer of this size plus one read never needs to grow further.
 * Equal to request_max. */
uint64_t resp_input_bytes_max(const struct resp_limits *l);

enum resp_kind {
    RESP_KIND_NONE = 0, /* between requests */
    RESP_KIND_INLINE,   /* a line of space-separated, optionally quoted arguments */
    RESP_KIND_MULTIBULK /* *<count>\r\n then count times $<len>\r\n<bytes>\r\n */
};

/* Per-connection parse state: offsets from the first byte of the request in progress. */
struct resp_parser {
    struct resp_limits limits; /* checked by resp_parser_init */
    uint8_t kind;              /* enum resp_kind of the request in progress */
    bool have_bulk_len;        /* multibulk: the next bulk's header line has been read */
    uint32_t args_total;       /* multibulk: count from the '*' line; 0 until read */
    uint32_t args_done;        /* multibulk: bulks complete so far; <= args_total */
    uint64_t bulk_len;         /* multibulk: length of the next bulk, if have_bulk_len */
    size_t pos;                /* offset of the next line or bulk to parse */
    size_t scan;               /* offset where the search for the current line's end resumes;
                                * >= pos (bytes in [pos, scan) hold no line end) */
    bool unauthenticated;      /* the client must still authenticate: Redis's tighter limits
                                * (RESP_UNAUTH_ARGS_MAX, RESP_UNAUTH_BULK_MAX) apply; set by
                                * the caller before each resp_parse */
};

/* Resets p for a new connection (or after a request, which resp_parse does itself).
 * The limits must pass resp_limits_check (asserted: they are our configuration). */
void resp_parser_init(struct resp_parser *p, const struct resp_limits *limits);

/* Caller-owned output storage for one call. */
struct resp_args {
    const uint8_t **argv; /* argument pointers; capacity entries */
    size_t *argl;         /* argument lengths; capacity entries */
    uint32_t capacity;    /* >= limits.args_max (asserted) */
    uint8_t *scratch;     /* unquoted inline arguments; scratch_bytes >= limits.inline_max */
    size_t scratch_bytes;
};

enum resp_status {
    RESP_NEED_MORE = 0, /* no complete request yet: read more, call again */
    RESP_REQUEST,       /* one complete request: result.argc >= 1 arguments in resp_args */
    RESP_ERROR          /* protocol error: reply result.message, close the connection */
};

enum resp_error {
    RESP_ERR_NONE = 0,
    RESP_ERR_INLINE_TOO_BIG,       /* "Protocol error: too big inline request" */
    RESP_ERR_UNBALANCED_QUOTES,    /* "Protocol error: unbalanced quotes in request" */
    RESP_ERR_INLINE_TOO_MANY_ARGS, /* "Protocol error: too many arguments in inline request"
                                    * (ours: Redis has no inline argument limit) */
    RESP_ERR_MBULK_COUNT_TOO_BIG,  /* "Protocol error: too big mbulk count string" */
    RESP_ERR_MBULK_LENGTH,         /* "Protocol error: invalid multibulk length" */
    RESP_ERR_BULK_COUNT_TOO_BIG,   /* "Protocol error: too big bulk count string" */
    RESP_ERR_EXPECTED_DOLLAR,      /* "Protocol error: expected '$', got 'X'" */
    RESP_ERR_BULK_LENGTH,          /* "Protocol error: invalid bulk length" */
    RESP_ERR_REQUEST_TOO_BIG,      /* "Protocol error: too big request" (ours) */
    RESP_ERR_UNAUTH_MBULK_LENGTH,  /* "Protocol error: unauthenticated multibulk length" */
    RESP_ERR_UNAUTH_BULK_LENGTH,   /* "Protocol error: unauthenticated bulk length" */
    RESP_ERR_COUNT
};

/* Longest message, with its NUL. */
#define RESP_ERROR_MESSAGE_BYTES 64

struct resp_result {
    size_t consumed_bytes; /* every status: bytes at the front of the input now done with */
    uint32_t argc;         /* RESP_REQUEST: arguments in resp_args (>= 1) */
    enum resp_error error; /* RESP_ERROR: which one */
    /* RESP_ERROR: Redis's text, without "-ERR " or CRLF. message_len bytes, then a NUL.
     * For RESP_ERR_EXPECTED_DOLLAR the offending byte is quoted raw (it may be any byte
     * but \r or \n, which Redis turns into spaces), so use message_len, not strlen. */
    char message[RESP_ERROR_MESSAGE_BYTES];
    size_t message_len;
};

/* Parses the next request from in[0..len) (len may be 0), which starts with the first byte
 * of the request in progress. Empty requests ("*0\r\n", "*-1\r\n", a blank inline line)
 * are skipped and counted in consumed_bytes, as Redis skips them. */
enum resp_status resp_parse(struct resp_parser *p,
                            const uint8_t *in,
                            size_t len,
                            const struct resp_args *args,
                            struct resp_result *result);

/* Static text of e (for RESP_ERR_EXPECTED_DOLLAR the offending byte shows as '?'). */
const char *resp_error_str(enum resp_error e);

#endif
