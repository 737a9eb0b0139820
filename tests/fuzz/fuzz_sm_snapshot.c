/* libFuzzer target: the state machine's image restore (sm_load and the streaming
 * sm_loader, io/service/sm_snapshot.c; image versions 4 and 3, streams with consumer groups)
 * and what a restored state machine
 * then does.
 *
 * Input: 1 control byte, then the image bytes.
 *   byte 0  bit 0: fix the checksum: the last 8 bytes become the XXH3 of the bytes before
 *           them (the fuzzer cannot forge xxh3; a loader trusts nothing before it matches);
 *           bit 4: small session limit, sessions_max = 1 + (bits 1..3);
 *           bits 5..7: the largest piece the streaming loader is fed at once,
 *           1 << (2 * bits), from 1 byte to 16 KiB (piece lengths drawn from the input's hash)
 *
 * A fresh state machine holding a few keys and a session loads the bytes. Properties:
 *   - sm_load returns 0, RR_ECORRUPT, RR_EBADVERSION or RR_ENOMEM, and on error leaves the
 *     state exactly as it was (its digest is unchanged);
 *   - the same bytes fed to an sm_loader in pieces split anywhere give the same verdict,
 *     and on success the same state (equal digests) as sm_load; a refused image leaves the
 *     state machine it was to replace as it was;
 *   - a loaded state serializes, and loading that gives the same state (equal digests) and
 *     the same number of bytes when serialized again; the applied index is the snapshot's;
 *   - the loaded state keeps working: SCAN visits every key, reads (TYPE, GET, STRLEN,
 *     XLEN, XRANGE, TTL, XINFO STREAM FULL, XINFO GROUPS, XPENDING) and writes (XADD, XTRIM,
 *     APPEND, XREADGROUP, XAUTOCLAIM, XACK, XGROUP DELCONSUMER, a retried session write) on
 *     its keys run without crashing, and the state still serializes and loads afterwards. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/errors.h"
#include "io/service/reply.h"
#include "io/service/sm.h"
#include "tests/fuzz/fuzz.h"

#define REPLY_LIMIT (64u << 20)
#define KEYS_MAX    6u
#define KEY_BYTES   64u
#define SCAN_CALLS  10000u

struct keys {
    uint32_t count;
    uint64_t visited;
    uint8_t key[KEYS_MAX][KEY_BYTES];
    uint32_t len[KEYS_MAX];
};

static void scan_cb(void *ctx, const uint8_t *key, size_t len)
{
    struct keys *k = ctx;
    k->visited++;
    if (k->count < KEYS_MAX && len <= KEY_BYTES) {
        memcpy(k->key[k->count], key, len);
        k->len[k->count++] = (uint32_t)len;
    }
}

/* Applies a command line of up to 8 words, with `key` standing in for the word "K". */
static void apply(struct sm *sm,
                  raft_index *index,
                  uint64_t client,
                  uint64_t seq,
                  const char *const *words,
                  uint32_t argc,
                  const uint8_t *key,
                  uint32_t key_len)
{
    const uint8_t *argv[8];
    uint32_t argl[8];
    for (uint32_t i = 0; i < argc; i++) {
        bool is_key = strcmp(words[i], "K") == 0;
        argv[i] = is_key ? key : (const uint8_t *)words[i];
        argl[i] = is_key ? key_len : (uint32_t)strlen(words[i]);
    }
    struct sm_entry_header h = {.client_id = client,
                                .seq = seq,
                                .first_unacked = seq,
                                .time_ms = 1700000000000 + (int64_t)*index};
    uint8_t entry[512];
    size_t n = sm_entry_encode(&h, argc, argv, argl, entry, sizeof(entry));
    FUZZ_CHECK(n > 0, "entry does not fit");
    struct reply r;
    reply_init(&r, REPLY_LIMIT);
    *index += 1;
    int rc = sm_apply(sm, *index, entry, n, &r);
    FUZZ_CHECK(rc == 0, "sm_apply: %s", rr_strerror(rc));
    reply_free(&r);
}

static void
read_cmd(struct sm *sm, const char *const *words, uint32_t argc, const struct keys *k, uint32_t i)
{
    const uint8_t *argv[8];
    uint32_t argl[8];
    for (uint32_t w = 0; w < argc; w++) {
        bool is_key = strcmp(words[w], "K") == 0;
        argv[w] = is_key ? k->key[i] : (const uint8_t *)words[w];
        argl[w] = is_key ? k->len[i] : (uint32_t)strlen(words[w]);
    }
    struct reply r;
    reply_init(&r, REPLY_LIMIT);
    sm_read(sm, 0, argc, argv, argl, &r);
    FUZZ_CHECK(r.len > 0 || r.overflow, "a read without a reply");
    reply_free(&r);
}

static void serialize(struct sm *sm, struct reply *out)
{
    reply_init(out, REPLY_LIMIT);
    int rc = sm_serialize(sm, out);
    FUZZ_CHECK(rc == 0, "a loaded state does not serialize: %s", rr_strerror(rc));
}

/* Serializes sm and loads the bytes into a new state machine: the same state. */
static void check_round_trip(struct sm *sm, const struct sm_limits *lim)
{
    struct reply s1;
    serialize(sm, &s1);
    struct sm *copy;
    FUZZ_CHECK(sm_create(&copy, lim, NULL) == 0, "out of memory");
    int rc = sm_load(copy, s1.buf, s1.len);
    FUZZ_CHECK(rc == 0, "a serialized state does not load: %s", rr_strerror(rc));
    FUZZ_CHECK(sm_digest(copy) == sm_digest(sm), "serialize and load changed the state");
    FUZZ_CHECK(sm_applied_index(copy) == sm_applied_index(sm), "applied index changed");
    struct reply s2;
    serialize(copy, &s2);
    FUZZ_CHECK(s2.len == s1.len, "serialized again: %zu bytes, was %zu", s2.len, s1.len);
    reply_free(&s1);
    reply_free(&s2);
    sm_destroy(copy);
}

/* Scans every key, then reads and writes a few of them. */
static void exercise(struct sm *sm, const struct sm_limits *lim)
{
    struct keys k;
    memset(&k, 0, sizeof(k));
    uint64_t cursor = 0;
    uint32_t calls = 0;
    do {
        sm_scan(sm, 0, &cursor, 16, NULL, 0, NULL, scan_cb, &k);
        FUZZ_CHECK(++calls < SCAN_CALLS, "SCAN does not finish");
    } while (cursor != 0);
    FUZZ_CHECK(k.visited >= sm_key_count(sm, 0), "SCAN visited %llu of %llu keys",
               (unsigned long long)k.visited, (unsigned long long)sm_key_count(sm, 0));
    static const char *const reads[][8] = {{"TYPE", "K"},
                                           {"GET", "K"},
                                           {"STRLEN", "K"},
                                           {"XLEN", "K"},
                                           {"XRANGE", "K", "-", "+"},
                                           {"TTL", "K"},
                                           {"XINFO", "STREAM", "K", "FULL"},
                                           {"XINFO", "GROUPS", "K"},
                                           {"XINFO", "CONSUMERS", "K", "g"},
                                           {"XPENDING", "K", "g", "IDLE", "0", "-", "+", "10"}};
    static const uint32_t read_argc[] = {2, 2, 2, 2, 4, 2, 4, 3, 4, 8};
    raft_index index = sm_applied_index(sm);
    for (uint32_t i = 0; i < k.count; i++) {
        for (uint32_t r = 0; r < sizeof(read_argc) / sizeof(read_argc[0]); r++) {
            read_cmd(sm, reads[r], read_argc[r], &k, i);
        }
        static const char *const xadd[] = {"XADD", "K", "*", "f", "v"};
        static const char *const xtrim[] = {"XTRIM", "K", "MAXLEN", "1"};
        static const char *const append[] = {"APPEND", "K", "x"};
        static const char *const xreadgroup[] = {"XREADGROUP", "GROUP", "g", "c",
                                                 "STREAMS",    "K",     ">"};
        static const char *const xautoclaim[] = {"XAUTOCLAIM", "K", "g", "d", "0", "0-0"};
        static const char *const xack[] = {"XACK", "K", "g", "0-1", "1-1", "1-2"};
        static const char *const delconsumer[] = {"XGROUP", "DELCONSUMER", "K", "g", "alice"};
        apply(sm, &index, 0, 0, xadd, 5, k.key[i], k.len[i]);
        apply(sm, &index, 0, 0, xreadgroup, 7, k.key[i], k.len[i]);
        apply(sm, &index, 0, 0, xautoclaim, 6, k.key[i], k.len[i]);
        apply(sm, &index, 0, 0, xtrim, 4, k.key[i], k.len[i]);
        apply(sm, &index, 0, 0, xack, 6, k.key[i], k.len[i]);
        apply(sm, &index, 0, 0, delconsumer, 5, k.key[i], k.len[i]);
        apply(sm, &index, 0, 0, append, 3, k.key[i], k.len[i]);
    }
    /* A write of a session client the snapshot may hold, applied twice: the retry must be
     * answered from the session. */
    static const char *const set[] = {"SET", "K", "v"};
    const uint8_t key[] = "session-key";
    apply(sm, &index, 1, 5, set, 3, key, sizeof(key) - 1);
    apply(sm, &index, 1, 5, set, 3, key, sizeof(key) - 1);
    check_round_trip(sm, lim);
}

/* Feeds the image to a streaming loader in pieces and installs it into a state machine like
 * `sm` before the load; returns the verdict and, on success, the loaded state's digest. */
static int load_in_pieces(const uint8_t *snap,
                          size_t len,
                          uint8_t flags,
                          const struct sm_limits *lim,
                          uint64_t before,
                          uint64_t *digest)
{
    size_t piece_max = (size_t)1 << (2u * (flags >> 5));
    uint64_t x = XXH3_64bits(snap, len) | 1u;
    struct sm_loader *ld;
    FUZZ_CHECK(sm_loader_new(&ld, lim) == 0, "out of memory");
    int rc = 0;
    size_t off = 0;
    while (off < len && rc == 0) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = 1 + (size_t)(x % piece_max);
        n = n < len - off ? n : len - off;
        rc = sm_loader_feed(ld, snap + off, n);
        FUZZ_CHECK(rc == 0 || rc == RR_ECORRUPT || rc == RR_EBADVERSION || rc == RR_ENOMEM,
                   "sm_loader_feed returned %d", rc);
        off += n;
    }
    FUZZ_CHECK(rc != 0 || !sm_loader_done(ld) || off == len, "done before the end");
    struct sm *target;
    FUZZ_CHECK(sm_create(&target, lim, NULL) == 0, "out of memory");
    static const char *const set[] = {"SET", "K", "before"};
    static const char *const xadd[] = {"XADD", "K", "1-1", "f", "v"};
    raft_index index = 0;
    apply(target, &index, 9, 1, set, 3, (const uint8_t *)"a", 1);
    apply(target, &index, 9, 2, xadd, 5, (const uint8_t *)"s", 1);
    FUZZ_CHECK(sm_digest(target) == before, "the same writes gave another state");
    if (rc == 0) {
        rc = sm_loader_finish(ld, target);
        FUZZ_CHECK(rc == 0 || rc == RR_ECORRUPT || rc == RR_EBADVERSION || rc == RR_ENOMEM,
                   "sm_loader_finish returned %d", rc);
    }
    if (rc != 0) {
        FUZZ_CHECK(sm_digest(target) == before, "a refused image changed the state");
    }
    *digest = sm_digest(target);
    sm_loader_free(ld);
    sm_destroy(target);
    return rc;
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
    struct fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    uint8_t *snap = fuzz_dup(in.p, in.left);
    size_t len = in.left;
    if ((flags & 1u) && len >= 8) {
        uint64_t sum = XXH3_64bits(snap, len - 8);
        memcpy(snap + len - 8, &sum, sizeof(sum));
    }
    struct sm_limits lim;
    sm_limits_default(&lim);
    if (flags & 16u) {
        lim.sessions_max = 1u + ((flags >> 1) & 7u);
    }
    struct sm *sm;
    FUZZ_CHECK(sm_create(&sm, &lim, NULL) == 0, "out of memory");
    /* Something to lose: a failed load must leave it as it was. */
    static const char *const set[] = {"SET", "K", "before"};
    static const char *const xadd[] = {"XADD", "K", "1-1", "f", "v"};
    const uint8_t k1[] = "a";
    const uint8_t k2[] = "s";
    raft_index index = 0;
    apply(sm, &index, 9, 1, set, 3, k1, 1);
    apply(sm, &index, 9, 2, xadd, 5, k2, 1);
    uint64_t before = sm_digest(sm);

    int rc = sm_load(sm, len > 0 ? snap : NULL, len);
    FUZZ_CHECK(rc == 0 || rc == RR_ECORRUPT || rc == RR_EBADVERSION || rc == RR_ENOMEM,
               "sm_load returned %d", rc);
    uint64_t pieces_digest = 0;
    int pieces_rc = load_in_pieces(snap, len, flags, &lim, before, &pieces_digest);
    FUZZ_CHECK((rc == 0) == (pieces_rc == 0), "sm_load: %s, in pieces: %s", rr_strerror(rc),
               rr_strerror(pieces_rc));
    FUZZ_CHECK(rc != 0 || pieces_digest == sm_digest(sm), "loaded in pieces: another state");
    if (rc != 0) {
        FUZZ_CHECK(sm_digest(sm) == before, "a refused snapshot changed the state");
        FUZZ_CHECK(sm_applied_index(sm) == index, "a refused snapshot changed the applied index");
    } else {
        uint64_t applied;
        memcpy(&applied, snap + 10, sizeof(applied)); /* after tag, magic and version */
        FUZZ_CHECK(sm_applied_index(sm) == applied, "applied index %llu, snapshot says %llu",
                   (unsigned long long)sm_applied_index(sm), (unsigned long long)applied);
        check_round_trip(sm, &lim);
        exercise(sm, &lim);
    }
    sm_destroy(sm);
    free(snap);
    return 0;
}
