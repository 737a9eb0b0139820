/* libFuzzer target: the core's wire codec (core/codec.c), every decoder on every input.
 *
 * Input: the bytes of a message, a batch or a configuration payload (no control bytes: each
 * of the three decoders gets the whole input, an exact-size copy so reads past the end are
 * caught). Properties checked:
 *   - a message that decodes satisfies the documented rules (type 1..11, valid nodes,
 *     entries within limits, consecutive indexes from prev_index + 1, terms >= prev_term,
 *     non-decreasing and <= the message's term, entry data and snapshot chunks inside the
 *     input) and re-encodes to exactly its bytes (the encoding is canonical);
 *   - a configuration that decodes is valid (raft_config_valid) and re-encodes to exactly
 *     its bytes;
 *   - a batch: every message it yields before the end or an error is addressed between the
 *     header's nodes and is accepted by the encoder; when the whole batch decodes, writing
 *     the yielded messages back (message records, heartbeat sets regrouped as they came)
 *     gives exactly the input bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "core/codec.h"
#include "tests/fuzz/fuzz.h"

static struct codec_scratch scratch;

static bool inside(const uint8_t *p, size_t n, const uint8_t *in, size_t len)
{
    return n == 0 || (p >= in && p <= in + len && n <= (size_t)(in + len - p));
}

static bool node_ok(raft_node n)
{
    return n >= 1 && n <= RAFT_NODE_ID_MAX;
}

static void check_append(const struct raft_msg *m, const uint8_t *in, size_t len)
{
    const struct raft_msg_append *a = &m->append;
    FUZZ_CHECK(a->entry_count <= RAFT_APPEND_ENTRIES_MAX, "%u entries", a->entry_count);
    raft_term prev = a->prev_term;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *e = &a->entries[i];
        FUZZ_CHECK(e->index == a->prev_index + 1 + i, "entry %u has index %llu", i,
                   (unsigned long long)e->index);
        FUZZ_CHECK(e->term >= 1 && e->term >= prev && e->term <= m->term,
                   "entry %u: term %llu after %llu, message term %llu", i,
                   (unsigned long long)e->term, (unsigned long long)prev,
                   (unsigned long long)m->term);
        FUZZ_CHECK(e->type == RAFT_ENTRY_NORMAL || e->type == RAFT_ENTRY_CONFIG,
                   "entry %u of type %u", i, e->type);
        FUZZ_CHECK(e->data.len <= RAFT_ENTRY_BYTES_MAX &&
                       inside(e->data.base, e->data.len, in, len),
                   "entry %u data outside the input", i);
        if (e->type == RAFT_ENTRY_CONFIG) {
            struct raft_config c;
            FUZZ_CHECK(codec_config_decode(e->data.base, e->data.len, &c) == 0,
                       "a CONFIG entry whose data is no configuration");
        }
        prev = e->term;
        bytes += e->data.len;
    }
    FUZZ_CHECK(bytes <= RAFT_APPEND_BYTES_MAX, "%llu bytes of entries", (unsigned long long)bytes);
}

static void check_msg(const struct raft_msg *m, const uint8_t *in, size_t len)
{
    FUZZ_CHECK(m->type >= RAFT_MSG_VOTE && m->type <= RAFT_MSG_TIMEOUT_NOW, "type %u", m->type);
    FUZZ_CHECK(node_ok(m->from) && node_ok(m->to), "nodes %u -> %u", m->from, m->to);
    if (m->type == RAFT_MSG_APPEND) {
        check_append(m, in, len);
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_msg_snapshot *s = &m->snapshot;
        FUZZ_CHECK(s->last_index >= 1 && s->last_term >= 1 && s->last_term <= m->term,
                   "snapshot last index %llu term %llu", (unsigned long long)s->last_index,
                   (unsigned long long)s->last_term);
        FUZZ_CHECK(s->config == &scratch.config, "snapshot configuration outside the scratch");
        FUZZ_CHECK(raft_config_valid(s->config), "snapshot with an invalid configuration");
        FUZZ_CHECK(s->chunk.len <= RAFT_SNAPSHOT_CHUNK_BYTES &&
                       s->total_bytes <= RAFT_SNAPSHOT_BYTES_MAX && s->offset <= s->total_bytes &&
                       s->chunk.len <= s->total_bytes - s->offset,
                   "chunk of %u bytes at %llu of %llu", s->chunk.len, (unsigned long long)s->offset,
                   (unsigned long long)s->total_bytes);
        FUZZ_CHECK(!s->done || s->offset + s->chunk.len == s->total_bytes, "done before the end");
        FUZZ_CHECK(inside(s->chunk.base, s->chunk.len, in, len), "chunk outside the input");
    } else if (m->type == RAFT_MSG_SNAPSHOT_RESP) {
        FUZZ_CHECK(!(m->snapshot_resp.rejected && m->snapshot_resp.done), "rejected and done");
    }
}

/* Encodes m; the encoder must accept whatever the decoder accepted. */
static void encode(struct rr_bytes *b, const struct raft_msg *m)
{
    size_t bytes = 0;
    FUZZ_CHECK(codec_msg_encoded_bytes(m, &bytes) == 0, "encoded size of a decoded message");
    int rc = codec_msg_encode(b, m);
    FUZZ_CHECK(rc == 0, "encoding a decoded message: %s", rr_strerror(rc));
    FUZZ_CHECK(b->len == bytes, "encoded %zu bytes, predicted %zu", b->len, bytes);
}

static void fuzz_msg(const uint8_t *in, size_t len)
{
    struct raft_msg m;
    if (codec_msg_decode(in, len, &m, &scratch) != 0) {
        return;
    }
    check_msg(&m, in, len);
    struct rr_bytes b;
    rr_bytes_init(&b);
    encode(&b, &m);
    FUZZ_CHECK(b.len == len && memcmp(b.base, in, len) == 0, "message does not re-encode");
    rr_bytes_free(&b);
}

static void fuzz_config(const uint8_t *in, size_t len)
{
    struct raft_config c;
    if (codec_config_decode(in, len, &c) != 0) {
        return;
    }
    FUZZ_CHECK(raft_config_valid(&c), "decoded an invalid configuration");
    struct rr_bytes b;
    rr_bytes_init(&b);
    FUZZ_CHECK(codec_config_encode(&b, &c) == 0, "configuration not re-encodable");
    FUZZ_CHECK(b.len == len && memcmp(b.base, in, len) == 0, "configuration does not re-encode");
    rr_bytes_free(&b);
}

/* The heartbeat set being read back, to be written as one set again. */
struct hb_set {
    bool open;
    bool resp;
    uint32_t count;
    uint32_t want;
    struct codec_heartbeat *items;
};

static void hb_add(struct hb_set *s, const struct raft_msg *m)
{
    s->items[s->count++] = (struct codec_heartbeat){.group = m->group,
                                                    .term = m->term,
                                                    .commit = s->resp ? 0 : m->heartbeat.commit,
                                                    .read_ctx = s->resp ? m->heartbeat_resp.read_ctx
                                                                        : m->heartbeat.read_ctx};
}

static void fuzz_batch(const uint8_t *in, size_t len)
{
    struct codec_batch_reader r;
    if (codec_batch_open(&r, in, len) != 0) {
        return;
    }
    struct rr_bytes out;
    rr_bytes_init(&out);
    struct codec_batch_writer w;
    FUZZ_CHECK(codec_batch_begin(&w, &out, r.from, r.to) == 0, "batch header not re-encodable");
    struct hb_set set = {0};
    int rc;
    for (;;) { /* bounded: every message is read from at least one byte of the input */
        uint32_t hb_left = r.hb_left;
        size_t pos = r.pos;
        struct raft_msg m;
        rc = codec_batch_next(&r, &m, &scratch);
        if (rc != 1) {
            break;
        }
        FUZZ_CHECK(m.from == r.from && m.to == r.to, "message %u -> %u in a batch %u -> %u", m.from,
                   m.to, r.from, r.to);
        if (hb_left == 0 && (in[pos] == 2 || in[pos] == 3)) {
            /* The first item of a set: the record's kind byte says which. */
            set.open = true;
            set.resp = in[pos] == 3;
            set.count = 0;
            set.want = r.hb_left + 1;
            set.items = malloc(set.want * sizeof(*set.items));
            FUZZ_CHECK(set.items != NULL, "out of memory");
        }
        if (set.open) {
            FUZZ_CHECK(m.type == (set.resp ? RAFT_MSG_HEARTBEAT_RESP : RAFT_MSG_HEARTBEAT) &&
                           (set.resp || !m.heartbeat.quiesce),
                       "a heartbeat set yielded a message of type %u", m.type);
            hb_add(&set, &m);
            if (set.count == set.want) {
                FUZZ_CHECK(codec_batch_add_heartbeats(&w, set.resp, set.items, set.count) == 0,
                           "heartbeat set not re-encodable");
                free(set.items);
                set = (struct hb_set){0};
            }
            continue;
        }
        check_msg(&m, in, len);
        struct rr_bytes b;
        rr_bytes_init(&b);
        encode(&b, &m);
        rr_bytes_free(&b);
        FUZZ_CHECK(codec_batch_add_msg(&w, &m) == 0, "message not re-encodable in a batch");
    }
    free(set.items);
    FUZZ_CHECK(rc <= 0, "codec_batch_next returned %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(!set.open, "batch ended inside a heartbeat set");
        codec_batch_end(&w);
        FUZZ_CHECK(out.len == len && memcmp(out.base, in, len) == 0,
                   "batch does not re-encode to its bytes");
    }
    rr_bytes_free(&out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = fuzz_dup(data, size);
    const uint8_t *p = size > 0 ? in : NULL;
    fuzz_msg(p, size);
    fuzz_config(p, size);
    fuzz_batch(p, size);
    free(in);
    return 0;
}
