/* Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/gen-*): small,
 * valid inputs made with the project's own encoders (reply writer for RESP requests,
 * frame and handshake encoders, the node set's encoders, the core's codec, the WAL itself and its
 * record encoder, snapshot_save, sm_serialize), each wrapped in the control bytes its target reads
 * (see the top comment of each tests/fuzz/fuzz_*.c). Run by `make fuzz-corpus`:
 *
 *     gen_corpus DIR      (DIR is tests/fuzz/corpus)
 *
 * Earlier gen-* files are replaced; every other file (regress-*: inputs that once crashed a
 * target) is left alone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/errors.h"
#include "core/codec.h"
#include "io/service/reply.h"
#include "io/service/sm.h"
#include "io/wire/frame.h"
#include "io/wire/nodeset.h"
#include "storage/snapshot.h"
#include "storage/wal.h"
#include "storage/wal_format.h"

static const char *root;
static uint32_t written;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "gen_corpus: %s\n", what);
        exit(1);
    }
}

/* ---- output ------------------------------------------------------------------------------- */

/* A growable byte string (a seed being assembled). */
struct buf {
    uint8_t *b;
    size_t len;
    size_t cap;
};

static void put(struct buf *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap < 256 ? 256 : s->cap;
        while (cap < s->len + n) {
            cap *= 2;
        }
        s->b = realloc(s->b, cap);
        check(s->b != NULL, "out of memory");
        s->cap = cap;
    }
    if (n > 0) {
        memcpy(s->b + s->len, p, n);
    }
    s->len += n;
}

static void put_u8(struct buf *s, uint8_t v)
{
    put(s, &v, 1);
}

static void put_u16(struct buf *s, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(s, b, 2);
}

static void put_str(struct buf *s, const char *str)
{
    put(s, str, strlen(str));
}

static void clear_dir(const char *target)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        die(path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        die(path);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "gen-", 4) == 0 && unlinkat(dirfd(d), e->d_name, 0) != 0) {
            die(e->d_name);
        }
    }
    closedir(d);
}

static void emit(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/gen-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        die(path);
    }
    written++;
}

static void emit_buf(const char *target, const char *name, struct buf *s)
{
    emit(target, name, s->b, s->len);
    free(s->b);
    *s = (struct buf){0};
}

/* ---- RESP --------------------------------------------------------------------------------- */

/* A request as clients send it: an array of bulk strings (the reply writer's encoding). */
static void request(struct reply *r, const char *const *words, uint32_t argc)
{
    reply_array(r, argc);
    for (uint32_t i = 0; i < argc; i++) {
        reply_bulk(r, words[i], strlen(words[i]));
    }
}

static void resp_seed(const char *name, const uint8_t ctl[4], const void *p, size_t n)
{
    struct buf s = {0};
    put(&s, ctl, 4);
    put(&s, p, n);
    emit_buf("resp", name, &s);
}

static void gen_resp(void)
{
    clear_dir("resp");
    static const uint8_t defaults[4] = {0, 0, 0, 0};
    static const uint8_t bytewise[4] = {2, 0, 0, 0};
    static const uint8_t chunks[4] = {0x20, 7, 3, 9};
    static const uint8_t small[4] = {0x1d, 15, 3, 4}; /* inline 16, 4 args, request 50 */
    struct reply r;
    reply_init(&r, 1u << 20);
    static const char *const set[] = {"SET", "key", "value"};
    static const char *const get[] = {"GET", "key"};
    static const char *const xadd[] = {"XADD", "log", "*", "event", "started"};
    static const char *const empty[] = {"SET", "", ""};
    request(&r, set, 3);
    resp_seed("multibulk-set", defaults, r.buf, r.len);
    resp_seed("multibulk-set-bytewise", bytewise, r.buf, r.len);
    request(&r, get, 2);
    request(&r, xadd, 5);
    request(&r, empty, 3);
    resp_seed("pipeline", chunks, r.buf, r.len);
    resp_seed("pipeline-small-limits", small, r.buf, r.len);
    reply_reset(&r);
    static const char inline_cmds[] = "PING\r\nSET \"a b\" 'c d' \"\\x41\\n\\t\\\\\" e\n"
                                      "ECHO 'it\\'s'\r\n\r\n   \r\nGET k\r\n";
    resp_seed("inline", defaults, inline_cmds, sizeof(inline_cmds) - 1);
    resp_seed("inline-chunks", chunks, inline_cmds, sizeof(inline_cmds) - 1);
    static const char skipped[] = "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n";
    resp_seed("empty-requests", defaults, skipped, sizeof(skipped) - 1);
    static const char partial[] = "*2\r\n$3\r\nGET\r\n$10\r\nabc";
    resp_seed("partial", chunks, partial, sizeof(partial) - 1);
    static const char *const bad[] = {
        "*2\r\n$3\r\nGET\r\nX1\r\nk\r\n", /* expected '$' */
        "*1\r\n$-5\r\n",                  /* invalid bulk length */
        "*abc\r\n",                       /* invalid multibulk length */
        "SET \"unbalanced\r\n",           /* unbalanced quotes */
        "*99999999\r\n",                  /* over args_max */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "error-%zu", i);
        resp_seed(name, defaults, bad[i], strlen(bad[i]));
    }
    static const char too_long[] = "GET aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                                   "*1\r\n$40\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    resp_seed("over-small-limits", small, too_long, sizeof(too_long) - 1);
    reply_free(&r);
}

/* ---- frames and handshakes ---------------------------------------------------------------- */

static void frame(struct buf *s, enum frame_type type, const uint8_t *payload, uint32_t len)
{
    uint8_t *f = malloc(FRAME_HEADER_BYTES + len);
    check(f != NULL, "out of memory");
    size_t n = frame_encode(f, type, payload, len);
    put(s, f, n);
    free(f);
}

static struct handshake sample_handshake(void)
{
    static const uint8_t secret[] = "fuzz-cluster-secret"; /* the target's secret */
    struct handshake hs = {.version = HANDSHAKE_VERSION,
                           .cluster_id = 0x1234,
                           .node = 2,
                           .worker = 1,
                           .group_count = 64,
                           .worker_count = 2,
                           .receiver_node = 3,
                           .nonce = 0xfeedf00d};
    handshake_sign(&hs, secret, sizeof(secret) - 1);
    return hs;
}

static void gen_frame(void)
{
    clear_dir("frame");
    uint8_t hs_buf[HANDSHAKE_BYTES];
    struct handshake hs = sample_handshake();
    handshake_encode(hs_buf, &hs);
    uint8_t ack_ok[HANDSHAKE_ACK_BYTES];
    struct handshake_ack ack = {.accepted = true, .refusal = HANDSHAKE_OK};
    handshake_ack_encode(ack_ok, &ack);
    uint8_t ack_no[HANDSHAKE_ACK_BYTES];
    ack = (struct handshake_ack){.accepted = false, .refusal = HANDSHAKE_REFUSE_GROUPS};
    snprintf(ack.reason, sizeof(ack.reason), "group count mismatch: peer 64, ours 128");
    handshake_ack_encode(ack_no, &ack);

    struct buf s = {0};
    put_u8(&s, 0);
    put_u8(&s, 95);
    frame(&s, FRAME_HANDSHAKE, hs_buf, sizeof(hs_buf));
    emit_buf("frame", "handshake", &s);

    put_u8(&s, 0);
    put_u8(&s, 12);
    frame(&s, FRAME_HANDSHAKE_ACK, ack_ok, sizeof(ack_ok));
    frame(&s, FRAME_HANDSHAKE_ACK, ack_no, sizeof(ack_no));
    emit_buf("frame", "acks", &s);

    /* A connection's first frames: handshake, then a Raft batch, a forward, a ping. */
    struct rr_bytes batch;
    rr_bytes_init(&batch);
    struct codec_batch_writer w;
    check(codec_batch_begin(&w, &batch, 2, 3) == 0, "batch");
    struct codec_heartbeat hb[2] = {{.group = 1, .term = 4, .commit = 9, .read_ctx = 0},
                                    {.group = 5, .term = 4, .commit = 2, .read_ctx = 7}};
    check(codec_batch_add_heartbeats(&w, false, hb, 2) == 0, "heartbeats");
    codec_batch_end(&w);
    static const uint8_t forward[] = {1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0,   0,   0,
                                      3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0,   0,   0,
                                      5, 0, 0, 0, 2, 1, 0, 0, 0, 3, 0, 0, 0, 'G', 'E', 'T'};
    put_u8(&s, 0);
    put_u8(&s, 40);
    frame(&s, FRAME_HANDSHAKE, hs_buf, sizeof(hs_buf));
    frame(&s, FRAME_RAFT, batch.base, (uint32_t)batch.len);
    frame(&s, FRAME_FORWARD, forward, sizeof(forward));
    frame(&s, FRAME_PING, NULL, 0);
    emit_buf("frame", "stream", &s);
    rr_bytes_free(&batch);

    /* Checksums fixed by the target; payload_max small (1 + byte 1 = 60). */
    put_u8(&s, 1 | 6);
    put_u8(&s, 59);
    frame(&s, FRAME_HANDSHAKE, hs_buf, sizeof(hs_buf));
    frame(&s, FRAME_HANDSHAKE_ACK, ack_ok, sizeof(ack_ok));
    emit_buf("frame", "small-payload-max", &s);

    /* The raw handshake and ack payloads (the target also decodes the stream itself). */
    put_u8(&s, 0);
    put_u8(&s, 0);
    put(&s, hs_buf, sizeof(hs_buf));
    emit_buf("frame", "raw-handshake", &s);
    put_u8(&s, 0);
    put_u8(&s, 0);
    put(&s, ack_no, sizeof(ack_no));
    emit_buf("frame", "raw-ack", &s);
    /* A Redis client on the peer port. */
    put_u8(&s, 0);
    put_u8(&s, 0);
    put_str(&s, "*1\r\n$4\r\nPING\r\n");
    emit_buf("frame", "not-a-peer", &s);
}

/* ---- node sets ---------------------------------------------------------------------------- */

/* FRAME_NODESET payloads, node-set entries and DIR/NODES lines (fuzz_nodeset reads every
 * input all three ways, without control bytes). */
static void gen_nodeset(void)
{
    clear_dir("nodeset");
    uint8_t b[NODESET_BYTES_MAX];
    struct node_set s = {.index = 42, .count = 3};
    for (uint32_t i = 0; i < 3; i++) {
        s.nodes[i] = (struct node_address){
            .id = i + 1, .port = (uint16_t)(7001 + i), .peer_port = (uint16_t)(17001 + i)};
        snprintf(s.nodes[i].host, sizeof(s.nodes[i].host), "127.0.0.1");
    }
    size_t n = nodeset_encode(&s, b, sizeof(b));
    check(n > 0, "node set of 3");
    emit("nodeset", "set-3", b, n);
    struct node_set empty = {0};
    n = nodeset_encode(&empty, b, sizeof(b));
    emit("nodeset", "set-empty", b, n);
    /* The most a payload holds: RAFT_MEMBERS_MAX nodes, the largest id and ports, names,
     * IPv6 addresses and a host of 63 bytes. */
    static const char *const hosts[] = {"db1.example.com", "::1", "fe80::1%eth0", "10.0.0.7"};
    struct node_set big = {.index = UINT64_MAX - 1, .count = RAFT_MEMBERS_MAX};
    for (uint32_t i = 0; i < RAFT_MEMBERS_MAX; i++) {
        struct node_address *a = &big.nodes[i];
        a->id = RAFT_NODE_ID_MAX - i * 7;
        a->port = (uint16_t)(65535 - i);
        a->peer_port = (uint16_t)(1 + i);
        snprintf(a->host, sizeof(a->host), "%s", hosts[i % 4]);
    }
    memset(big.nodes[0].host, 'h', NODE_HOST_MAX - 1);
    n = nodeset_encode(&big, b, sizeof(b));
    check(n > 0, "node set of RAFT_MEMBERS_MAX");
    emit("nodeset", "set-max", b, n);
    n = nodeset_entry_encode(NODESET_ADD, &s.nodes[1], b, sizeof(b));
    emit("nodeset", "entry-add", b, n);
    n = nodeset_entry_encode(NODESET_REMOVE, &big.nodes[2], b, sizeof(b));
    emit("nodeset", "entry-remove", b, n);
    struct node_address unknown = {.id = 9};
    n = nodeset_entry_encode(NODESET_REMOVE, &unknown, b, sizeof(b));
    emit("nodeset", "entry-remove-no-address", b, n);
    char line[128];
    n = nodeset_line_encode(&big.nodes[1], line, sizeof(line));
    check(n > 0, "DIR/NODES line");
    emit("nodeset", "line", line, n);
}

/* ---- the core's codec --------------------------------------------------------------------- */

static struct raft_msg msg(uint8_t type)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.group = 7;
    m.from = 1;
    m.to = 2;
    m.term = 5;
    return m;
}

static struct raft_config config3(void)
{
    struct raft_config c;
    memset(&c, 0, sizeof(c));
    c.member_count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        c.members[i] = (struct raft_member){.id = i + 1, .role = RAFT_VOTER};
    }
    return c;
}

static void codec_seed(const char *name, const struct raft_msg *m)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    check(codec_msg_encode(&b, m) == 0, name);
    emit("codec", name, b.base, b.len);
    rr_bytes_free(&b);
}

static void gen_codec(void)
{
    clear_dir("codec");
    struct raft_msg m = msg(RAFT_MSG_VOTE);
    m.vote = (struct raft_msg_vote){.last_log_index = 9, .last_log_term = 4, .transfer = true};
    codec_seed("vote", &m);
    m = msg(RAFT_MSG_PRE_VOTE_RESP);
    m.vote_resp.granted = true;
    codec_seed("pre-vote-resp", &m);

    struct rr_bytes cfg;
    rr_bytes_init(&cfg);
    struct raft_config c = config3();
    check(codec_config_encode(&cfg, &c) == 0, "config");
    emit("codec", "config", cfg.base, cfg.len);
    struct raft_config joint = c;
    joint.old_member_count = 2;
    joint.old_members[0] = (struct raft_member){.id = 1, .role = RAFT_VOTER};
    joint.old_members[1] = (struct raft_member){.id = 4, .role = RAFT_LEARNER};
    struct rr_bytes jcfg;
    rr_bytes_init(&jcfg);
    check(codec_config_encode(&jcfg, &joint) == 0, "joint config");
    emit("codec", "config-joint", jcfg.base, jcfg.len);

    static const char payload[] = "SET key value";
    struct raft_entry entries[3] = {
        {.term = 4, .index = 11, .type = RAFT_ENTRY_NORMAL, .data = {(const uint8_t *)"", 0}},
        {.term = 5,
         .index = 12,
         .type = RAFT_ENTRY_NORMAL,
         .data = {(const uint8_t *)payload, sizeof(payload) - 1}},
        {.term = 5, .index = 13, .type = RAFT_ENTRY_CONFIG, .data = {cfg.base, (uint32_t)cfg.len}}};
    m = msg(RAFT_MSG_APPEND);
    m.append = (struct raft_msg_append){
        .prev_index = 10, .prev_term = 3, .commit = 9, .entry_count = 3, .entries = entries};
    codec_seed("append", &m);
    struct raft_msg append = m;
    m = msg(RAFT_MSG_APPEND_RESP);
    m.append_resp = (struct raft_msg_append_resp){
        .rejected = true, .index = 10, .hint_index = 6, .hint_term = 2};
    codec_seed("append-resp", &m);
    struct raft_msg append_resp = m;
    m = msg(RAFT_MSG_HEARTBEAT);
    m.heartbeat = (struct raft_msg_heartbeat){.commit = 9, .read_ctx = 3, .quiesce = true};
    codec_seed("heartbeat-quiesce", &m);
    m = msg(RAFT_MSG_SNAPSHOT);
    static const uint8_t chunk[] = "snapshot bytes";
    m.snapshot = (struct raft_msg_snapshot){.last_index = 20,
                                            .last_term = 4,
                                            .config = &joint,
                                            .offset = 0,
                                            .total_bytes = sizeof(chunk) - 1,
                                            .done = true,
                                            .chunk = {chunk, sizeof(chunk) - 1}};
    codec_seed("snapshot", &m);
    m = msg(RAFT_MSG_SNAPSHOT_RESP);
    m.snapshot_resp = (struct raft_msg_snapshot_resp){.index = 20, .next_offset = 14, .done = true};
    codec_seed("snapshot-resp", &m);
    m = msg(RAFT_MSG_TIMEOUT_NOW);
    codec_seed("timeout-now", &m);

    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer w;
    check(codec_batch_begin(&w, &b, 1, 2) == 0, "batch");
    struct codec_heartbeat hb[3] = {{.group = 1, .term = 5, .commit = 8, .read_ctx = 0},
                                    {.group = 2, .term = 5, .commit = 9, .read_ctx = 4},
                                    {.group = 9, .term = 6, .commit = 1, .read_ctx = 0}};
    check(codec_batch_add_msg(&w, &append) == 0, "batch append");
    check(codec_batch_add_heartbeats(&w, false, hb, 3) == 0, "batch heartbeats");
    check(codec_batch_add_heartbeats(&w, true, hb, 2) == 0, "batch heartbeat responses");
    check(codec_batch_add_msg(&w, &append_resp) == 0, "batch append resp");
    codec_batch_end(&w);
    emit("codec", "batch", b.base, b.len);
    rr_bytes_free(&b);
    check(codec_batch_begin(&w, &b, 3, 1) == 0, "empty batch");
    codec_batch_end(&w);
    emit("codec", "batch-empty", b.base, b.len);
    rr_bytes_free(&b);
    rr_bytes_free(&cfg);
    rr_bytes_free(&jcfg);
}

/* ---- the WAL ------------------------------------------------------------------------------ */

/* The identity fuzz_wal gives its WAL (byte 0 = 0x30: G = 4, one worker). */
#define WAL_FLAGS   0x30u
#define WAL_GROUPS  4u
#define WAL_SEG     (64u << 10)
#define WAL_CLUSTER 0xc1u

static struct wal_config wal_cfg(const char *dir)
{
    struct wal_config c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.cluster_id = WAL_CLUSTER;
    c.node_id = 1;
    c.worker_id = 0;
    c.worker_count = 1;
    c.group_count = WAL_GROUPS;
    c.segment_bytes = WAL_SEG;
    c.cache_bytes = 2u * WAL_FLUSH_BYTES_MAX;
    c.user_data_tag = 0x5a;
    c.strategy.kind = WAL_STRATEGY_ADAPTIVE;
    return c;
}

static uint64_t wal_salt(uint64_t seq)
{
    struct wal_segment_header h = {.version = WAL_FORMAT_VERSION,
                                   .cluster_id = WAL_CLUSTER,
                                   .node_id = 1,
                                   .worker_id = 0,
                                   .group_count = WAL_GROUPS,
                                   .worker_count = 1,
                                   .seq = seq,
                                   .segment_bytes = WAL_SEG};
    return wal_segment_salt(&h);
}

/* One segment of a fuzz_wal input: flags, body length, body (records from offset 4096). */
static void wal_segment(struct buf *s, uint8_t flags, const uint8_t *body, size_t len)
{
    check(len <= UINT16_MAX, "segment body too long for a seed");
    put_u8(s, flags);
    put_u16(s, (uint16_t)len);
    put(s, body, len);
}

/* Records encoded with the WAL's own encoder into a segment body. */
struct records {
    uint8_t b[16384];
    size_t len;
    uint64_t salt;
};

static void rec(struct records *r,
                uint8_t type,
                raft_group g,
                raft_term term,
                raft_index index,
                const char *payload,
                uint32_t flush_base)
{
    struct wal_record w = {.type = type,
                           .entry_type = 1,
                           .group = g,
                           .term = term,
                           .index = index,
                           .flush_base = flush_base,
                           .payload_len = payload != NULL ? (uint32_t)strlen(payload) : 0,
                           .payload = (const uint8_t *)payload};
    uint32_t vote = 2;
    if (type == WAL_REC_HARD_STATE) {
        w.payload_len = sizeof(vote);
        w.payload = (const uint8_t *)&vote;
    }
    check(r->len + wal_record_size(w.payload_len) <= sizeof(r->b), "records overflow");
    wal_record_encode(&w, r->salt, r->b + r->len);
    r->len += wal_record_size(w.payload_len);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void persisted_cb(void *arg, int status)
{
    int *done = arg;
    *done += status == 0 ? 1 : 1000;
}

static void drive(struct io_uring *ring, struct wal *wal, int *done, int want)
{
    while (*done < want) {
        wal_submit(wal);
        check(io_uring_submit_and_wait(ring, 1) >= 0, "io_uring");
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(ring, &cqe) == 0) {
            struct io_uring_cqe copy = *cqe;
            io_uring_cqe_seen(ring, cqe);
            wal_handle_cqe(wal, &copy);
        }
    }
    check(*done == want, "a WAL unit failed");
}

/* A WAL written by the WAL itself: entries in several groups, hard states, a truncation and
 * a compaction, in a few flushes (so records carry flush bases). */
static void gen_wal_real(void)
{
    char dir[] = "/tmp/ringraft-gen-corpus-XXXXXX";
    check(mkdtemp(dir) != NULL, "mkdtemp");
    struct io_uring ring;
    check(io_uring_queue_init(64, &ring, 0) == 0, "io_uring_queue_init");
    struct wal_config c = wal_cfg(dir);
    struct wal *wal;
    char err[256];
    check(wal_open(&c, &ring, &wal, err, sizeof(err)) == 0, err);
    int done = 0;
    int want = 0;
    char payload[32];
    for (raft_index i = 1; i <= 6; i++) {
        for (raft_group g = 0; g < WAL_GROUPS; g++) {
            snprintf(payload, sizeof(payload), "g%u i%llu", g, (unsigned long long)i);
            struct wal_entry e = {.term = 1 + i / 3,
                                  .index = i,
                                  .type = 1,
                                  .len = (uint32_t)strlen(payload),
                                  .data = payload};
            struct wal_hard_state hs = {.term = 1 + i / 3, .vote = 1, .commit = i - 1};
            check(wal_append(wal, g, g == 0 ? &hs : NULL, &e, 1, persisted_cb, &done) == 0,
                  "append");
            want++;
        }
        if (i % 2 == 0) {
            drive(&ring, wal, &done, want); /* one flush per two rounds */
        }
    }
    check(wal_truncate(wal, 1, 5, persisted_cb, &done) == 0, "truncate");
    check(wal_compact(wal, 2, 3, 2, persisted_cb, &done) == 0, "compact");
    want += 2;
    drive(&ring, wal, &done, want);
    while (wal_busy(wal)) { /* the spare's preparation */
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            struct io_uring_cqe copy = *cqe;
            io_uring_cqe_seen(&ring, cqe);
            wal_handle_cqe(wal, &copy);
        }
    }
    wal_close(wal);
    io_uring_queue_exit(&ring);

    /* Every segment file, its records only (from offset 4096 to the last valid one). */
    struct buf s = {0};
    put_u8(&s, WAL_FLAGS);
    uint8_t *seg = malloc(WAL_SEG);
    check(seg != NULL, "out of memory");
    for (uint64_t seq = 1;; seq++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/wal-%016llx", dir, (unsigned long long)seq);
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            break;
        }
        check(pread(fd, seg, WAL_SEG, 0) == (ssize_t)WAL_SEG, "segment read");
        close(fd);
        uint64_t off = WAL_SEGMENT_HEADER_BYTES;
        struct wal_record r;
        int64_t n;
        while ((n = wal_record_decode(seg + off, WAL_SEG - off, wal_salt(seq), &r)) > 0) {
            off += (uint64_t)n;
        }
        wal_segment(&s, 0, seg + WAL_SEGMENT_HEADER_BYTES, off - WAL_SEGMENT_HEADER_BYTES);
    }
    free(seg);
    emit_buf("wal", "written-by-wal", &s);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void gen_wal(void)
{
    clear_dir("wal");
    gen_wal_real();
    struct buf s = {0};

    /* Two segments: entries, a seal, more entries, a hard state and a compaction. */
    struct records a = {.salt = wal_salt(1)};
    rec(&a, WAL_REC_ENTRY, 0, 1, 1, "one", 0);
    rec(&a, WAL_REC_ENTRY, 0, 1, 2, "two", 0);
    rec(&a, WAL_REC_ENTRY, 1, 1, 1, "other group", 0);
    rec(&a, WAL_REC_SEAL, 0, 0, 0, NULL, 0);
    struct records b = {.salt = wal_salt(2)};
    rec(&b, WAL_REC_ENTRY, 0, 2, 3, "three", 0);
    rec(&b, WAL_REC_HARD_STATE, 0, 2, 3, NULL, 0);
    rec(&b, WAL_REC_ENTRY, 1, 2, 2, "rewritten", WAL_SEGMENT_HEADER_BYTES + 48);
    rec(&b, WAL_REC_COMPACT, 0, 1, 2, NULL, 0);
    rec(&b, WAL_REC_TRUNCATE, 1, 0, 2, NULL, 0);
    put_u8(&s, WAL_FLAGS);
    wal_segment(&s, 0, a.b, a.len);
    wal_segment(&s, 0, b.b, b.len);
    emit("wal", "two-segments", s.b, s.len);
    /* The same with checksums fixed by the target (mutations of it keep replaying). */
    s.len = 0;
    put_u8(&s, WAL_FLAGS);
    wal_segment(&s, 16, a.b, a.len);
    wal_segment(&s, 16, b.b, b.len);
    emit("wal", "two-segments-fixed", s.b, s.len);
    /* ... followed by a spare whose preparation was interrupted (no header), and by a
     * prepared spare (a header, no records). */
    s.len = 0;
    put_u8(&s, WAL_FLAGS);
    wal_segment(&s, 16, a.b, a.len);
    wal_segment(&s, 16, b.b, b.len);
    wal_segment(&s, 0, NULL, 0);
    emit("wal", "spare", s.b, s.len);
    s.len = 0;
    put_u8(&s, WAL_FLAGS);
    wal_segment(&s, 16, a.b, a.len);
    wal_segment(&s, 16, b.b, b.len);
    wal_segment(&s, 2 | 8, NULL, 0);
    emit("wal", "unfinished-spare", s.b, s.len);

    /* A torn last flush: a damaged record, then a valid one of the same flush (zeroed by
     * recovery) or of a later flush (corruption: refused). */
    for (int later = 0; later < 2; later++) {
        struct records t = {.salt = wal_salt(1)};
        rec(&t, WAL_REC_ENTRY, 0, 1, 1, "one", 0);
        rec(&t, WAL_REC_ENTRY, 0, 1, 2, "two", WAL_SEGMENT_HEADER_BYTES + 48);
        size_t torn = t.len;
        rec(&t, WAL_REC_ENTRY, 0, 1, 3, "three", 0);
        rec(&t, WAL_REC_ENTRY, 0, 1, 4, "four",
            later ? (uint32_t)(WAL_SEGMENT_HEADER_BYTES + t.len) : 0);
        t.b[torn + 41] ^= 0x55; /* a payload byte of "three" */
        s.len = 0;
        put_u8(&s, WAL_FLAGS);
        wal_segment(&s, 0, t.b, t.len);
        emit("wal", later ? "corrupt-before-later-flush" : "torn-tail", s.b, s.len);
    }

    /* Refusals: a gap in the sequence numbers, another node's segment, version 1, a short
     * file, a stray name; and an empty directory. */
    static const uint8_t seg_flags[] = {4, 3, 32, 8};
    static const char *const names[] = {"gap", "other-node", "version-1", "short-file"};
    for (size_t i = 0; i < sizeof(seg_flags); i++) {
        s.len = 0;
        put_u8(&s, WAL_FLAGS);
        wal_segment(&s, 16, a.b, a.len);
        wal_segment(&s, (uint8_t)(16 | seg_flags[i]), b.b, b.len);
        emit("wal", names[i], s.b, s.len);
    }
    struct records odd = {.salt = wal_salt(1)};
    rec(&odd, WAL_REC_ENTRY, 1, 1, 1, "group 1 lives on worker 1", 0);
    rec(&odd, WAL_REC_ENTRY, 3, 1, 1, "so does group 3", 0);
    s.len = 0;
    put_u8(&s, WAL_FLAGS | 2u | 1u); /* a stray name; two workers, this one worker 1 */
    wal_segment(&s, 16, odd.b, odd.len);
    emit("wal", "stray-two-workers", s.b, s.len);
    s.len = 0;
    put_u8(&s, WAL_FLAGS);
    emit_buf("wal", "empty", &s);
}

/* ---- snapshots and state machines --------------------------------------------------------- */

static void sm_do(struct sm *sm, raft_index *index, uint64_t client, const char *line)
{
    const uint8_t *argv[16];
    uint32_t argl[16];
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", line);
    uint32_t argc = 0;
    for (char *w = strtok(copy, " "); w != NULL && argc < 16; w = strtok(NULL, " ")) {
        argv[argc] = (const uint8_t *)w;
        argl[argc++] = (uint32_t)strlen(w);
    }
    *index += 1;
    struct sm_entry_header h = {.client_id = client,
                                .seq = *index,
                                .first_unacked = *index > 2 ? *index - 2 : 1,
                                .time_ms = 1700000000000 + (int64_t)*index * 1000};
    uint8_t entry[1024];
    size_t n = sm_entry_encode(&h, argc, argv, argl, entry, sizeof(entry));
    check(n > 0, "entry");
    struct reply r;
    reply_init(&r, 1u << 20);
    check(sm_apply(sm, *index, entry, n, &r) == 0, line);
    reply_free(&r);
}

/* A state machine with strings (one with a TTL), streams, sessions and consumer groups. */
static struct sm *sample_sm(uint32_t variant)
{
    struct sm *sm;
    check(sm_create(&sm, NULL, NULL) == 0, "sm_create");
    raft_index i = 0;
    if (variant == 0) {
        return sm;
    }
    sm_do(sm, &i, 11, "SET greeting hello");
    sm_do(sm, &i, 11, "SET counter 41");
    sm_do(sm, &i, 12, "INCR counter");
    sm_do(sm, &i, 12, "SET temp x PX 500000");
    if (variant >= 2) {
        sm_do(sm, &i, 13, "XADD log * event started");
        sm_do(sm, &i, 13, "XADD log * event running step 2");
        sm_do(sm, &i, 14, "XADD other 5-1 a b");
        sm_do(sm, &i, 14, "XADD other 5-2 a c");
        sm_do(sm, &i, 0, "XDEL other 5-1");
    }
    if (variant >= 3) {
        for (uint64_t c = 20; c < 26; c++) {
            sm_do(sm, &i, c, "APPEND greeting !");
        }
    }
    if (variant >= 4) {
        /* Two groups on one stream (one read to the end, one with a set-back ID and a read
         * counter), consumers with and without pending entries, an acknowledged and a
         * claimed entry, a NOACK read, and a deleted entry still pending. */
        sm_do(sm, &i, 30, "XADD jobs 1-1 task a");
        sm_do(sm, &i, 30, "XADD jobs 1-2 task b");
        sm_do(sm, &i, 30, "XADD jobs 2-1 task c");
        sm_do(sm, &i, 30, "XGROUP CREATE jobs g 0");
        sm_do(sm, &i, 30, "XGROUP CREATE jobs h $ ENTRIESREAD 3");
        sm_do(sm, &i, 31, "XREADGROUP GROUP g alice COUNT 2 STREAMS jobs >");
        sm_do(sm, &i, 32, "XREADGROUP GROUP g bob STREAMS jobs >");
        sm_do(sm, &i, 31, "XACK jobs g 1-1");
        sm_do(sm, &i, 32, "XCLAIM jobs g carol 0 1-2");
        sm_do(sm, &i, 30, "XGROUP CREATECONSUMER jobs h dave");
        sm_do(sm, &i, 30, "XGROUP SETID jobs h 1-1");
        sm_do(sm, &i, 33, "XREADGROUP GROUP h erin NOACK STREAMS jobs >");
        sm_do(sm, &i, 0, "XDEL jobs 2-1");
    }
    return sm;
}

static void gen_sm_snapshot(void)
{
    clear_dir("sm_snapshot");
    static const char *const names[] = {"empty", "strings", "streams", "sessions", "groups"};
    for (uint32_t v = 0; v < 5; v++) {
        struct sm *sm = sample_sm(v);
        struct reply out;
        reply_init(&out, 1u << 20);
        check(sm_serialize(sm, &out) == 0, "sm_serialize");
        struct buf s = {0};
        put_u8(&s, v == 3 ? 16 | 2 : 0); /* sessions: sessions_max 2 */
        put(&s, out.buf, out.len);
        emit_buf("sm_snapshot", names[v], &s);
        put_u8(&s, 1); /* checksum fixed by the target */
        put(&s, out.buf, out.len);
        char name[32];
        snprintf(name, sizeof(name), "%s-fixed", names[v]);
        emit_buf("sm_snapshot", name, &s);
        reply_free(&out);
        sm_destroy(sm);
    }
}

/* A snapshot file as snapshot_save writes it. */
static void snapshot_file(struct buf *out, raft_group g, raft_index index, uint32_t variant)
{
    char dir[] = "/tmp/ringraft-gen-corpus-XXXXXX";
    check(mkdtemp(dir) != NULL, "mkdtemp");
    struct rr_bytes cfg;
    rr_bytes_init(&cfg);
    struct raft_config c = config3();
    check(codec_config_encode(&cfg, &c) == 0, "config");
    struct sm *sm = sample_sm(variant);
    struct reply data;
    reply_init(&data, 1u << 20);
    check(sm_serialize(sm, &data) == 0, "sm_serialize");
    struct snapshot s = {.group = g,
                         .index = index,
                         .term = 3,
                         .config = cfg.base,
                         .config_len = (uint32_t)cfg.len,
                         .data = data.buf,
                         .data_len = data.len};
    char err[256];
    check(snapshot_save(dir, &s, err, sizeof(err)) == 0, err);
    char path[512];
    snprintf(path, sizeof(path), "%s/snap-%08x-%016llx", dir, g, (unsigned long long)index);
    FILE *f = fopen(path, "rb");
    check(f != NULL, "snapshot file");
    uint8_t bytes[8192];
    size_t n = fread(bytes, 1, sizeof(bytes), f);
    fclose(f);
    check(n < sizeof(bytes), "snapshot too large for a seed");
    put(out, bytes, n);
    reply_free(&data);
    rr_bytes_free(&cfg);
    sm_destroy(sm);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* One file of a fuzz_snapshot input. */
static void snapshot_entry(struct buf *s, uint8_t flags, uint8_t index, const struct buf *file)
{
    put_u8(s, flags);
    put_u8(s, index);
    put_u16(s, (uint16_t)file->len);
    put(s, file->b, file->len);
}

static void gen_snapshot(void)
{
    clear_dir("snapshot");
    struct buf old = {0};
    struct buf cur = {0};
    struct buf other = {0};
    snapshot_file(&old, 1, 7, 1);
    snapshot_file(&cur, 1, 9, 2);
    snapshot_file(&other, 2, 12, 0);
    struct buf s = {0};
    put_u8(&s, 1);
    snapshot_entry(&s, 0, 9, &cur);
    emit("snapshot", "one", s.b, s.len);
    /* Newest valid wins; another group's and a temporary file are ignored. */
    s.len = 0;
    put_u8(&s, 1);
    snapshot_entry(&s, 0, 7, &old);
    snapshot_entry(&s, 0, 9, &cur);
    snapshot_entry(&s, 2, 12, &other);
    snapshot_entry(&s, 1, 15, &cur);
    emit("snapshot", "several", s.b, s.len);
    /* The newest damaged (skipped), then with its end record and checksums fixed by the
     * target. */
    struct buf bad = {0};
    put(&bad, cur.b, cur.len);
    bad.b[bad.len - 1] ^= 1;
    s.len = 0;
    put_u8(&s, 1);
    snapshot_entry(&s, 0, 7, &old);
    snapshot_entry(&s, 0, 9, &bad);
    emit("snapshot", "newest-damaged", s.b, s.len);
    s.len = 0;
    put_u8(&s, 1);
    snapshot_entry(&s, 0, 7, &old);
    snapshot_entry(&s, 16 | 4, 9, &bad);
    emit("snapshot", "newest-fixed", s.b, s.len);
    /* Checksums fixed but not the end record: every record verifies, the end's file offset
     * does not match (skipped). */
    s.len = 0;
    put_u8(&s, 1);
    snapshot_entry(&s, 0, 7, &old);
    snapshot_entry(&s, 4, 9, &bad);
    emit("snapshot", "end-offset-wrong", s.b, s.len);
    /* A version-1 file above a valid one: refused, not skipped. */
    static const uint8_t v1[12] = {'R', 'R', 'R', 'S', 'A', 'P', '0', '1', 1, 0, 0, 0};
    memcpy(bad.b, v1, sizeof(v1));
    s.len = 0;
    put_u8(&s, 1);
    snapshot_entry(&s, 0, 7, &old);
    snapshot_entry(&s, 0, 9, &bad);
    emit("snapshot", "version-1", s.b, s.len);
    /* An uppercase alias and a plausible header made by the target. */
    s.len = 0;
    put_u8(&s, 1);
    snapshot_entry(&s, 3, 10, &cur);
    snapshot_entry(&s, 0, 7, &old);
    snapshot_entry(&s, 8 | 16 | 4 | 0x20, 11, &cur);
    emit("snapshot", "alias-and-made-header", s.b, s.len);
    free(s.b);
    free(bad.b);
    free(old.b);
    free(cur.b);
    free(other.b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR   (DIR: tests/fuzz/corpus)\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        die(root);
    }
    gen_resp();
    gen_frame();
    gen_codec();
    gen_nodeset();
    gen_wal();
    gen_snapshot();
    gen_sm_snapshot();
    printf("gen_corpus: %u seed files in %s\n", written, root);
    return 0;
}
