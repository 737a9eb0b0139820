/* Encoding of segment headers and records; see wal.c for the format in prose. */
#include "storage/wal_format.h"

#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

uint64_t wal_segment_salt(const struct wal_segment_header *h)
{
    uint8_t buf[40];
    put64(buf, h->cluster_id);
    put32(buf + 8, h->node_id);
    put32(buf + 12, h->worker_id);
    put32(buf + 16, h->group_count);
    put32(buf + 20, h->worker_count);
    put64(buf + 24, h->seq);
    put64(buf + 32, 0x5a17ull);
    return XXH3_64bits(buf, sizeof(buf));
}

void wal_segment_header_encode(const struct wal_segment_header *h, uint8_t *buf)
{
    memset(buf, 0, WAL_SEGMENT_HEADER_BYTES);
    put64(buf, WAL_SEGMENT_MAGIC);
    put32(buf + 8, h->version);
    put32(buf + 12, WAL_SEGMENT_HEADER_BYTES);
    put64(buf + 16, h->cluster_id);
    put32(buf + 24, h->node_id);
    put32(buf + 28, h->worker_id);
    put32(buf + 32, h->group_count);
    put32(buf + 36, h->worker_count);
    put64(buf + 40, h->seq);
    put64(buf + 48, h->segment_bytes);
    put64(buf + 56, h->salt);
    put64(buf + 64, XXH3_64bits(buf, 64));
}

int wal_segment_header_decode(const uint8_t *buf, struct wal_segment_header *h)
{
    if (get64(buf) != WAL_SEGMENT_MAGIC) {
        return RR_ECORRUPT;
    }
    if (get64(buf + 64) != XXH3_64bits(buf, 64)) {
        return RR_ECORRUPT;
    }
    h->version = get32(buf + 8);
    if (h->version != WAL_FORMAT_VERSION || get32(buf + 12) != WAL_SEGMENT_HEADER_BYTES) {
        return RR_EBADVERSION;
    }
    h->cluster_id = get64(buf + 16);
    h->node_id = get32(buf + 24);
    h->worker_id = get32(buf + 28);
    h->group_count = get32(buf + 32);
    h->worker_count = get32(buf + 36);
    h->seq = get64(buf + 40);
    h->segment_bytes = get64(buf + 48);
    h->salt = get64(buf + 56);
    if (h->salt != wal_segment_salt(h)) {
        return RR_ECORRUPT;
    }
    return RR_OK;
}

/* What the flush base adds to a record's checksum: nothing for 0, so records encoded
 * before their flush is planned need one hash only. */
static uint64_t flush_base_mix(uint32_t flush_base, uint64_t salt)
{
    uint8_t b[4];
    put32(b, flush_base);
    return flush_base == 0 ? 0 : XXH3_64bits_withSeed(b, sizeof(b), salt);
}

void wal_record_encode(const struct wal_record *r, uint64_t salt, uint8_t *buf)
{
    RR_ASSERT(r->payload_len <= WAL_PAYLOAD_MAX);
    uint32_t size = wal_record_size(r->payload_len);
    put32(buf + WAL_REC_OFF_FLUSH_BASE, r->flush_base);
    put32(buf + WAL_REC_OFF_LEN, r->payload_len);
    buf[WAL_REC_OFF_MAGIC] = (uint8_t)(WAL_RECORD_MAGIC & 0xffu);
    buf[WAL_REC_OFF_MAGIC + 1] = (uint8_t)(WAL_RECORD_MAGIC >> 8);
    buf[WAL_REC_OFF_TYPE] = r->type;
    buf[WAL_REC_OFF_ENTRY_TYPE] = r->entry_type;
    put32(buf + WAL_REC_OFF_GROUP, r->group);
    put64(buf + WAL_REC_OFF_TERM, r->term);
    put64(buf + WAL_REC_OFF_INDEX, r->index);
    if (r->payload_len > 0) {
        memcpy(buf + WAL_RECORD_HEADER_BYTES, r->payload, r->payload_len);
    }
    uint32_t used = WAL_RECORD_HEADER_BYTES + r->payload_len;
    memset(buf + used, 0, size - used);
    uint64_t sum =
        XXH3_64bits_withSeed(buf + WAL_REC_HASHED_FROM, size - WAL_REC_HASHED_FROM, salt);
    put64(buf, sum ^ flush_base_mix(r->flush_base, salt));
}

void wal_record_set_flush_base(uint8_t *hdr, uint32_t flush_base, uint64_t salt)
{
    uint32_t old = get32(hdr + WAL_REC_OFF_FLUSH_BASE);
    uint64_t sum = get64(hdr) ^ flush_base_mix(old, salt) ^ flush_base_mix(flush_base, salt);
    put64(hdr, sum);
    put32(hdr + WAL_REC_OFF_FLUSH_BASE, flush_base);
}

uint32_t wal_record_peek_size(const uint8_t *hdr)
{
    return wal_record_size(get32(hdr + WAL_REC_OFF_LEN));
}

uint8_t wal_record_peek_type(const uint8_t *hdr)
{
    return hdr[WAL_REC_OFF_TYPE];
}

uint32_t wal_record_peek_group(const uint8_t *hdr)
{
    return get32(hdr + WAL_REC_OFF_GROUP);
}

bool wal_record_peek_magic(const uint8_t *hdr)
{
    return hdr[WAL_REC_OFF_MAGIC] == (WAL_RECORD_MAGIC & 0xffu) &&
           hdr[WAL_REC_OFF_MAGIC + 1] == (WAL_RECORD_MAGIC >> 8);
}

uint64_t wal_record_find_valid(
    const uint8_t *buf, uint64_t from, uint64_t len, uint64_t salt, struct wal_record *r)
{
    for (uint64_t p = from; p + WAL_RECORD_HEADER_BYTES <= len; p += WAL_RECORD_ALIGN) {
        if (wal_record_peek_magic(buf + p) && wal_record_decode(buf + p, len - p, salt, r) > 0) {
            return p;
        }
    }
    return 0;
}

int64_t wal_record_decode(const uint8_t *buf, uint64_t avail, uint64_t salt, struct wal_record *out)
{
    if (avail < WAL_RECORD_HEADER_BYTES) {
        return RR_ETRUNCATED;
    }
    uint32_t len = get32(buf + WAL_REC_OFF_LEN);
    uint8_t type = buf[WAL_REC_OFF_TYPE];
    if (!wal_record_peek_magic(buf) || len > WAL_PAYLOAD_MAX || type < WAL_REC_ENTRY ||
        type > WAL_REC_SEAL) {
        return RR_ECORRUPT;
    }
    uint32_t size = wal_record_size(len);
    if (size > avail) {
        return RR_ETRUNCATED;
    }
    uint32_t flush_base = get32(buf + WAL_REC_OFF_FLUSH_BASE);
    uint64_t sum =
        XXH3_64bits_withSeed(buf + WAL_REC_HASHED_FROM, size - WAL_REC_HASHED_FROM, salt);
    if (get64(buf) != (sum ^ flush_base_mix(flush_base, salt))) {
        return RR_ECORRUPT;
    }
    out->type = type;
    out->entry_type = buf[WAL_REC_OFF_ENTRY_TYPE];
    out->group = get32(buf + WAL_REC_OFF_GROUP);
    out->payload_len = len;
    out->term = get64(buf + WAL_REC_OFF_TERM);
    out->index = get64(buf + WAL_REC_OFF_INDEX);
    out->flush_base = flush_base;
    out->payload = buf + WAL_RECORD_HEADER_BYTES;
    return (int64_t)size;
}

const char *wal_record_type_name(uint8_t type)
{
    switch (type) {
    case WAL_REC_ENTRY:
        return "entry";
    case WAL_REC_HARD_STATE:
        return "hard_state";
    case WAL_REC_TRUNCATE:
        return "truncate";
    case WAL_REC_COMPACT:
        return "compact";
    case WAL_REC_SEAL:
        return "seal";
    default:
        return "unknown";
    }
}

bool wal_segment_name_parse(const char *name, uint64_t *seq)
{
    if (strncmp(name, "wal-", 4) != 0 || strlen(name) != 20) {
        return false;
    }
    uint64_t v = 0;
    for (const char *p = name + 4; *p != '\0'; p++) {
        uint64_t d;
        if (*p >= '0' && *p <= '9') {
            d = (uint64_t)(*p - '0');
        } else if (*p >= 'a' && *p <= 'f') {
            d = (uint64_t)(*p - 'a' + 10);
        } else {
            return false;
        }
        v = v << 4 | d;
    }
    *seq = v;
    return true;
}
