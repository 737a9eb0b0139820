/* State machine images: streamed loading over any split, refusal of damaged images, and
 * images taken while writes go on (sm_snap_*), which must load into exactly the state at
 * the image's point (compared with sm_digest of a twin that stopped there), across table
 * resizes, deletions, expiry, FLUSHDB, and an image stopped early then taken again; stream
 * counters at the limits of their range. */
#include <xxhash.h>

#include "tests/service/sm_helpers.h"

#define T_TIME 1700000000000LL /* a plausible leader clock (unix ms) */
#define W_KEYS 600             /* keys the random workload touches */

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state += 0x9e3779b97f4a7c15uLL;
    uint64_t z = rng_state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9uLL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebuLL;
    return z ^ (z >> 31);
}

/* One random write: strings, TTLs (so keys expire as the clock moves), streams and their
 * consumer groups (created, read, acknowledged, claimed, consumers deleted), deletes; with
 * `growth` most writes create keys (the table grows), else they delete (it shrinks). */
static void random_write(char *line, size_t cap, bool growth, bool allow_flush)
{
    unsigned k = (unsigned)(rng() % W_KEYS);
    unsigned j = (unsigned)(rng() % W_KEYS);
    unsigned op = (unsigned)(rng() % 22);
    if (!growth && op < 8) {
        op = 3; /* del */
    }
    switch (op) {
    case 0:
    case 1:
        snprintf(line, cap, "set k%u v%llu", k, (unsigned long long)(rng() % 100000));
        break;
    case 2:
        snprintf(line, cap, "set k%u big%0300u px %u", k, j, 1 + (unsigned)(rng() % 50));
        break;
    case 3:
        snprintf(line, cap, "del k%u k%u", k, j);
        break;
    case 4:
        snprintf(line, cap, "incr n%u", k % 40);
        break;
    case 5:
        snprintf(line, cap, "append k%u tail%u", k, j);
        break;
    case 6:
        snprintf(line, cap, "pexpire k%u %u", k, 1 + (unsigned)(rng() % 30));
        break;
    case 7:
        snprintf(line, cap, "persist k%u", k);
        break;
    case 8:
    case 9:
        snprintf(line, cap, "xadd s%u * f%u v%u", k % 30, j, k);
        break;
    case 10:
        snprintf(line, cap, "xtrim s%u maxlen %u", k % 30, (unsigned)(rng() % 5));
        break;
    case 11:
        snprintf(line, cap, "mset k%u a k%u b", k, j);
        break;
    case 12:
        snprintf(line, cap, "getdel k%u", k);
        break;
    case 13:
        snprintf(line, cap, "%s", allow_flush && rng() % 40 == 0 ? "flushdb" : "set z 1");
        break;
    case 16:
        snprintf(line, cap, "xgroup create s%u g%u 0 mkstream", k % 30, j % 3);
        break;
    case 17:
    case 18:
        snprintf(line, cap, "xreadgroup group g%u c%u count 3 streams s%u >", j % 3, k % 4, k % 30);
        break;
    case 19:
        snprintf(line, cap, "xautoclaim s%u g%u c%u 0 0 count 2", k % 30, j % 3, j % 4);
        break;
    case 20:
        snprintf(line, cap, "xgroup delconsumer s%u g%u c%u", k % 30, j % 3, j % 4);
        break;
    case 21:
        snprintf(line, cap, "xack s%u g%u %u-0 %u-1", k % 30, j % 3, k, j);
        break;
    default:
        snprintf(line, cap, "set k%u v%u", k, j);
        break;
    }
}

/* Applies one random write to every state machine given, from a few clients whose sessions
 * keep replies (first_unacked lags). */
static void
apply_random(struct t_sm **ts, int n, int64_t *now, uint64_t *seq, bool growth, bool allow_flush)
{
    char line[512];
    random_write(line, sizeof(line), growth, allow_flush);
    *now += (int64_t)(rng() % 3);
    uint64_t client = 1 + rng() % 5;
    seq[client]++;
    uint64_t fu = seq[client] > 3 ? seq[client] - 3 : 1;
    for (int i = 0; i < n; i++) {
        t_apply_fu(ts[i], client, seq[client], fu, *now, line);
    }
}

static void fill(struct t_sm *a, struct t_sm *b, int ops, int64_t *now, uint64_t *seq)
{
    struct t_sm *ts[2] = {a, b};
    for (int i = 0; i < ops; i++) {
        apply_random(ts, b != NULL ? 2 : 1, now, seq, true, false);
    }
}

/* Feeds an image to a loader in pieces of random sizes (1 byte to 64 KiB). */
static int load_pieces(struct sm *into, const uint8_t *p, size_t len)
{
    struct sm_loader *ld;
    assert_int_equal(sm_loader_new(&ld, NULL), 0);
    size_t off = 0;
    int rc = 0;
    while (off < len && rc == 0) {
        size_t n = rng() % 4 == 0 ? 1 + rng() % 16 : 1 + rng() % 65536;
        n = n < len - off ? n : len - off;
        rc = sm_loader_feed(ld, p + off, n);
        off += n;
    }
    if (rc == 0) {
        rc = sm_loader_finish(ld, into);
    }
    sm_loader_free(ld);
    return rc;
}

static void test_image_loads_over_any_split(void **state)
{
    (void)state;
    rng_state = 1;
    struct t_sm a, b;
    t_init(&a);
    t_init(&b);
    int64_t now = T_TIME;
    uint64_t seq[8] = {0};
    fill(&a, NULL, 3000, &now, seq);
    struct reply img;
    reply_init(&img, (size_t)1 << 30);
    assert_int_equal(sm_serialize(a.sm, &img), 0);
    for (int round = 0; round < 4; round++) {
        assert_int_equal(load_pieces(b.sm, img.buf, img.len), 0);
        assert_int_equal(sm_digest(b.sm), sm_digest(a.sm));
        assert_int_equal(sm_applied_index(b.sm), sm_applied_index(a.sm));
        assert_int_equal(sm_clock(b.sm), sm_clock(a.sm));
    }
    /* The loaded state carries on exactly like the original. */
    struct t_sm *ts[2] = {&a, &b};
    for (int i = 0; i < 500; i++) {
        apply_random(ts, 2, &now, seq, i % 3 != 0, true);
    }
    assert_int_equal(sm_digest(b.sm), sm_digest(a.sm));
    reply_free(&img);
    t_fini(&a);
    t_fini(&b);
}

/* A flipped byte anywhere, a cut anywhere, bytes after the end: refused, and the state the
 * loader would have replaced is untouched. */
static void test_image_damage_refused(void **state)
{
    (void)state;
    rng_state = 2;
    struct t_sm a, b;
    t_init(&a);
    t_init(&b);
    int64_t now = T_TIME;
    uint64_t seq[8] = {0};
    fill(&a, NULL, 400, &now, seq);
    t_apply(&b, T_TIME, "set untouched yes");
    uint64_t before = sm_digest(b.sm);
    struct reply img;
    reply_init(&img, (size_t)1 << 30);
    assert_int_equal(sm_serialize(a.sm, &img), 0);
    for (size_t i = 0; i < img.len; i += 1 + rng() % 61) {
        img.buf[i] ^= 0x20;
        if (load_pieces(b.sm, img.buf, img.len) == 0) {
            fail_msg("an image with byte %zu of %zu flipped loaded", i, img.len);
        }
        img.buf[i] ^= 0x20;
    }
    for (size_t cut = 0; cut < img.len; cut += 1 + rng() % 97) {
        if (load_pieces(b.sm, img.buf, cut) == 0) {
            fail_msg("an image cut at %zu of %zu bytes loaded", cut, img.len);
        }
    }
    uint8_t *longer = malloc(img.len + 1);
    memcpy(longer, img.buf, img.len);
    longer[img.len] = 4;
    assert_int_equal(load_pieces(b.sm, longer, img.len + 1), RR_ECORRUPT);
    free(longer);
    assert_int_equal(sm_digest(b.sm), before);
    reply_free(&img);
    t_fini(&a);
    t_fini(&b);
}

/* A key claiming 512 MiB (and a stream claiming 2^40 entries) followed by a few bytes costs
 * memory only for the bytes that came, then is refused as incomplete. */
static void test_image_lying_lengths(void **state)
{
    (void)state;
    uint8_t img[64];
    size_t n = 0;
    img[n++] = 1; /* head */
    uint64_t magic = 0x4d53525252uLL;
    memcpy(img + n, &magic, 8), n += 8;
    img[n++] = 3;
    memset(img + n, 0, 16), n += 16;
    img[n++] = 2; /* key */
    uint32_t klen = 512u << 20;
    memcpy(img + n, &klen, 4), n += 4;
    memcpy(img + n, "abcdefgh", 8), n += 8;
    struct t_sm b;
    t_init(&b);
    assert_int_equal(load_pieces(b.sm, img, n), RR_ECORRUPT);
    klen = (512u << 20) + 1;
    memcpy(img + 27, &klen, 4);
    assert_int_equal(load_pieces(b.sm, img, n), RR_ECORRUPT);
    t_fini(&b);
}

/* An image of `t`'s state. */
static void image_of(struct t_sm *t, struct reply *img)
{
    reply_init(img, 1u << 20);
    assert_int_equal(sm_serialize(t->sm, img), 0);
}

/* Sets the entries-added field of the stream whose serialized header is (version 2, last
 * ID ms-seq, entries added `was`, count) in img, and fixes the end's checksum. */
static void patch_entries_added(
    struct reply *img, uint64_t ms, uint64_t seq, uint64_t was, uint64_t count, uint64_t added)
{
    uint8_t want[33] = {2};
    uint64_t fields[4] = {ms, seq, was, count};
    memcpy(want + 1, fields, sizeof(fields));
    uint8_t *at = memmem(img->buf, img->len, want, sizeof(want));
    assert_non_null(at);
    memcpy(at + 17, &added, 8);
    uint64_t sum = XXH3_64bits(img->buf, img->len - 8);
    memcpy(img->buf + img->len - 8, &sum, 8);
}

/* A stream counts at most INT64_MAX additions (Redis's long long; the consumer groups'
 * counters and lags are signed): an image claiming more is refused, and an append at the
 * maximum keeps it there, so the state still serializes into an image that loads. Before,
 * an image with 2^64 - 1 loaded, the next XADD wrapped the count to 0, below the stream's
 * length, and the state's own image was refused (found by fuzz_sm_snapshot). */
static void test_image_entries_added_limit(void **state)
{
    (void)state;
    struct t_sm a, b;
    t_init(&a);
    t_init(&b);
    assert_string_equal(t_apply(&a, T_TIME, "XADD s 5-1 f v"), "$3\r\n5-1\r\n");
    struct reply img;
    image_of(&a, &img);
    patch_entries_added(&img, 5, 1, 1, 1, UINT64_MAX);
    assert_int_equal(sm_load(b.sm, img.buf, img.len), RR_ECORRUPT);
    assert_int_equal(load_pieces(b.sm, img.buf, img.len), RR_ECORRUPT);
    patch_entries_added(&img, 5, 1, UINT64_MAX, 1, (uint64_t)INT64_MAX + 1);
    assert_int_equal(sm_load(b.sm, img.buf, img.len), RR_ECORRUPT);
    patch_entries_added(&img, 5, 1, (uint64_t)INT64_MAX + 1, 1, (uint64_t)INT64_MAX);
    assert_int_equal(sm_load(b.sm, img.buf, img.len), 0);
    reply_free(&img);
    b.index = sm_applied_index(b.sm);
    assert_string_equal(t_apply(&b, T_TIME, "XADD s 6-1 f v"), "$3\r\n6-1\r\n");
    assert_string_equal(t_read(&b, T_TIME, "XLEN s"), ":2\r\n");
    image_of(&b, &img);
    struct t_sm c;
    t_init(&c);
    assert_int_equal(sm_load(c.sm, img.buf, img.len), 0);
    assert_int_equal(sm_digest(c.sm), sm_digest(b.sm));
    reply_free(&img);
    t_fini(&a);
    t_fini(&b);
    t_fini(&c);
}

/* XGROUP CREATE ... ENTRIESREAD 9223372036854775807 is accepted (as by Redis); the group's
 * next read added one to it: a signed overflow, undefined (UndefinedBehaviorSanitizer stops
 * on it; wrapped, it is INT64_MIN, which the state's image would carry and every load
 * refuse). The counter is estimated again instead, and the state's image loads. */
static void test_group_entries_read_at_its_maximum(void **state)
{
    (void)state;
    struct t_sm a, b;
    t_init(&a);
    t_init(&b);
    t_apply(&a, T_TIME, "XADD s 1-1 f v");
    t_apply(&a, T_TIME, "XADD s 2-1 f v");
    assert_string_equal(t_apply(&a, T_TIME, "XGROUP CREATE s g 0 ENTRIESREAD 9223372036854775807"),
                        "+OK\r\n");
    t_apply(&a, T_TIME, "XREADGROUP GROUP g c COUNT 1 STREAMS s >");
    t_apply(&a, T_TIME, "XREADGROUP GROUP g c STREAMS s >");
    struct reply img;
    image_of(&a, &img);
    assert_int_equal(sm_load(b.sm, img.buf, img.len), 0);
    assert_int_equal(sm_digest(b.sm), sm_digest(a.sm));
    reply_free(&img);
    t_fini(&a);
    t_fini(&b);
}

/* A consumer's seen time and a pending entry's delivery time come from the image: a time
 * far in the past (here near INT64_MIN) made XINFO CONSUMERS, XPENDING and XAUTOCLAIM's
 * idle times (now - then) overflow (found by fuzz_sm_snapshot under UBSan). Idle times are
 * computed without overflow, at most INT64_MAX. */
static void test_image_times_far_in_the_past(void **state)
{
    (void)state;
    struct t_sm a, b;
    t_init(&a);
    t_init(&b);
    const int64_t seen = T_TIME + 12345;
    t_apply(&a, T_TIME, "XADD s 1-1 f v");
    t_apply(&a, T_TIME, "XGROUP CREATE s g 0");
    t_apply(&a, seen, "XREADGROUP GROUP g c STREAMS s >");
    t_apply(&a, T_TIME + 20000, "SET other x");
    struct reply img;
    image_of(&a, &img);
    const int64_t past = INT64_MIN + 1700000000000LL;
    int patched = 0;
    for (size_t off = 26; off + 8 <= img.len - 8; off++) {
        if (memcmp(img.buf + off, &seen, 8) == 0) {
            memcpy(img.buf + off, &past, 8);
            patched++;
        }
    }
    assert_int_equal(patched, 2); /* the consumer's seen time, the entry's delivery time */
    uint64_t sum = XXH3_64bits(img.buf, img.len - 8);
    memcpy(img.buf + img.len - 8, &sum, 8);
    assert_int_equal(sm_load(b.sm, img.buf, img.len), 0);
    reply_free(&img);
    b.index = sm_applied_index(b.sm);
    const int64_t now = T_TIME + 30000;
    assert_non_null(
        strstr(t_read(&b, now, "XINFO CONSUMERS s g"), "$4\r\nidle\r\n:9223372036854775807\r\n"));
    assert_non_null(strstr(t_read(&b, now, "XPENDING s g - + 10"), ":9223372036854775807\r\n"));
    assert_non_null(strstr(t_apply(&b, now, "XAUTOCLAIM s g d 1000 0-0"), "1-1"));
    t_fini(&a);
    t_fini(&b);
}

/* Takes an image of `a` while writes go on; b is a twin that stops at the image's point.
 * Every step hands out a random small budget; between steps 0-3 writes are applied. */
static void image_while_writing(struct t_sm *a,
                                struct t_sm *b,
                                int64_t *now,
                                uint64_t *seq,
                                struct reply *img,
                                bool abort_midway)
{
    struct sm_snap *s;
    assert_int_equal(sm_snap_begin(a->sm, &s), 0);
    struct sm_snap *other;
    assert_int_equal(sm_snap_begin(a->sm, &other), RR_EBUSY);
    assert_int_equal(sm_snap_index(s), sm_applied_index(a->sm));
    int rc;
    int steps = 0;
    struct t_sm *only_a[1] = {a};
    while ((rc = sm_snap_step(s, img, 1 + rng() % 3000)) == 0) {
        steps++;
        int writes = (int)(rng() % 4);
        for (int i = 0; i < writes; i++) {
            /* Phases of growth and of deletion: the table doubles and halves meanwhile. */
            apply_random(only_a, 1, now, seq, (steps / 40) % 2 == 0, true);
        }
        if (abort_midway && steps == 5) {
            sm_snap_free(s);
            return;
        }
    }
    assert_int_equal(rc, 1);
    (void)b;
    sm_snap_free(s);
}

static void test_image_while_writing_is_the_point_state(void **state)
{
    (void)state;
    for (uint64_t seed = 10; seed < 16; seed++) {
        rng_state = seed;
        struct t_sm a, b, c;
        t_init(&a);
        t_init(&b);
        t_init(&c);
        int64_t now = T_TIME;
        uint64_t seq[8] = {0};
        fill(&a, &b, 1500 + (int)(seed % 3) * 700, &now, seq);
        uint64_t point = sm_digest(b.sm);
        struct reply img;
        reply_init(&img, (size_t)1 << 30);
        image_while_writing(&a, &b, &now, seq, &img, false);
        assert_int_equal(load_pieces(c.sm, img.buf, img.len), 0);
        if (sm_digest(c.sm) != point) {
            fail_msg("seed %llu: the image taken while writing differs from the state at its "
                     "point",
                     (unsigned long long)seed);
        }
        assert_int_equal(sm_applied_index(c.sm), sm_applied_index(b.sm));
        assert_int_equal(sm_clock(c.sm), sm_clock(b.sm));
        /* And the writes themselves were not disturbed: b replays them and agrees with a. */
        assert_int_not_equal(sm_digest(a.sm), point);
        reply_free(&img);
        t_fini(&a);
        t_fini(&b);
        t_fini(&c);
    }
}

/* An image stopped early, then a second one (after more writes): the second still holds
 * every key, including those the first never reached. */
static void test_image_stopped_then_taken_again(void **state)
{
    (void)state;
    rng_state = 77;
    struct t_sm a, b, c;
    t_init(&a);
    t_init(&b);
    t_init(&c);
    int64_t now = T_TIME;
    uint64_t seq[8] = {0};
    fill(&a, &b, 2000, &now, seq);
    struct reply img;
    reply_init(&img, (size_t)1 << 30);
    image_while_writing(&a, &b, &now, seq, &img, true);
    reply_reset(&img);
    /* Bring the twin to a's state by replaying: simplest is a fresh image of a, whole. */
    struct reply whole;
    reply_init(&whole, (size_t)1 << 30);
    assert_int_equal(sm_serialize(a.sm, &whole), 0);
    assert_int_equal(sm_load(b.sm, whole.buf, whole.len), 0);
    uint64_t point = sm_digest(b.sm);
    /* The twin was loaded from the whole image: check that one against a first. */
    assert_int_equal(point, sm_digest(a.sm));
    image_while_writing(&a, &b, &now, seq, &img, false);
    assert_int_equal(load_pieces(c.sm, img.buf, img.len), 0);
    assert_int_equal(sm_digest(c.sm), point);
    reply_free(&whole);
    reply_free(&img);
    t_fini(&a);
    t_fini(&b);
    t_fini(&c);
}

/* Writes during an image and the same writes without one leave equal states: the hooks
 * only read. */
static void test_image_does_not_change_writes(void **state)
{
    (void)state;
    rng_state = 5;
    struct t_sm a, b;
    t_init(&a);
    t_init(&b);
    int64_t now = T_TIME;
    uint64_t seq[8] = {0};
    fill(&a, &b, 1000, &now, seq);
    struct sm_snap *s;
    assert_int_equal(sm_snap_begin(a.sm, &s), 0);
    struct reply img;
    reply_init(&img, (size_t)1 << 30);
    struct t_sm *ts[2] = {&a, &b};
    int rc;
    while ((rc = sm_snap_step(s, &img, 500)) == 0) {
        apply_random(ts, 2, &now, seq, true, true);
        assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    }
    assert_int_equal(rc, 1);
    sm_snap_free(s);
    for (int i = 0; i < 300; i++) {
        apply_random(ts, 2, &now, seq, i % 2 == 0, true);
    }
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    reply_free(&img);
    t_fini(&a);
    t_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_loads_over_any_split),
        cmocka_unit_test(test_image_damage_refused),
        cmocka_unit_test(test_image_lying_lengths),
        cmocka_unit_test(test_image_while_writing_is_the_point_state),
        cmocka_unit_test(test_image_stopped_then_taken_again),
        cmocka_unit_test(test_image_does_not_change_writes),
        cmocka_unit_test(test_image_entries_added_limit),
        cmocka_unit_test(test_group_entries_read_at_its_maximum),
        cmocka_unit_test(test_image_times_far_in_the_past),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
