#include "io/wire/forward.h"

#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/wire/le.h"

void forward_header_encode(uint8_t out[FORWARD_HEADER_BYTES], const struct forward_header *h)
{
    RR_ASSERT(h->argc >= 1 && h->argc <= FORWARD_ARGC_MAX);
    le_put_u64(out, h->id);
    le_put_u64(out + 8, h->client_id);
    le_put_u64(out + 16, h->seq);
    le_put_u64(out + 24, h->first_unacked);
    le_put_u32(out + 32, h->group);
    out[36] = h->cls;
    le_put_u32(out + 37, h->argc);
}

size_t forward_args_bytes(uint32_t argc, const uint32_t *argl)
{
    size_t n = 0;
    for (uint32_t i = 0; i < argc; i++) {
        n += 4 + (size_t)argl[i];
    }
    return n;
}

void forward_args_encode(uint8_t *out,
                         uint32_t argc,
                         const uint8_t *const *argv,
                         const uint32_t *argl)
{
    for (uint32_t i = 0; i < argc; i++) {
        le_put_u32(out, argl[i]);
        if (argl[i] > 0) {
            memcpy(out + 4, argv[i], argl[i]);
        }
        out += 4 + argl[i];
    }
}

int forward_header_decode(const uint8_t *p, size_t len, struct forward_header *h)
{
    if (len < FORWARD_HEADER_BYTES) {
        return RR_ETRUNCATED;
    }
    h->id = le_get_u64(p);
    h->client_id = le_get_u64(p + 8);
    h->seq = le_get_u64(p + 16);
    h->first_unacked = le_get_u64(p + 24);
    h->group = le_get_u32(p + 32);
    h->cls = p[36];
    h->argc = le_get_u32(p + 37);
    /* Each argument takes at least its 4-byte length: a count the payload cannot hold is
     * refused before anyone allocates for it. */
    if (h->argc == 0 || h->argc > FORWARD_ARGC_MAX || h->argc > (len - FORWARD_HEADER_BYTES) / 4) {
        return RR_ECORRUPT;
    }
    return 0;
}

int forward_args_decode(const uint8_t *p,
                        size_t len,
                        const struct forward_header *h,
                        const uint8_t **argv,
                        size_t *argl)
{
    RR_ASSERT(len >= FORWARD_HEADER_BYTES);
    size_t off = FORWARD_HEADER_BYTES;
    for (uint32_t i = 0; i < h->argc; i++) {
        if (len - off < 4 || len - off - 4 < le_get_u32(p + off)) {
            return RR_ECORRUPT;
        }
        argl[i] = le_get_u32(p + off);
        argv[i] = p + off + 4;
        off += 4 + argl[i];
    }
    return off == len ? 0 : RR_ECORRUPT;
}

int forward_check(const uint8_t *p, size_t len)
{
    struct forward_header h;
    int rc = forward_header_decode(p, len, &h);
    if (rc != 0) {
        return rc;
    }
    size_t off = FORWARD_HEADER_BYTES;
    for (uint32_t i = 0; i < h.argc; i++) {
        if (len - off < 4 || len - off - 4 < le_get_u32(p + off)) {
            return RR_ECORRUPT;
        }
        off += 4 + (size_t)le_get_u32(p + off);
    }
    return off == len ? 0 : RR_ECORRUPT;
}

void forward_reply_header_encode(uint8_t out[FORWARD_REPLY_HEADER_BYTES],
                                 const struct forward_reply_header *h)
{
    RR_ASSERT(h->not_leader <= 1);
    le_put_u64(out, h->id);
    out[8] = h->not_leader;
    le_put_u32(out + 9, h->leader);
}

int forward_reply_decode(const uint8_t *p,
                         size_t len,
                         struct forward_reply_header *h,
                         const uint8_t **reply,
                         size_t *reply_len)
{
    if (len < FORWARD_REPLY_HEADER_BYTES) {
        return RR_ETRUNCATED;
    }
    h->id = le_get_u64(p);
    h->not_leader = p[8];
    h->leader = le_get_u32(p + 9);
    *reply = p + FORWARD_REPLY_HEADER_BYTES;
    *reply_len = len - FORWARD_REPLY_HEADER_BYTES;
    if (h->not_leader > 1 || (h->not_leader == 1 && *reply_len != 0)) {
        return RR_ECORRUPT;
    }
    return 0;
}

void forward_cancel_encode(uint8_t out[FORWARD_CANCEL_BYTES], const struct forward_cancel *c)
{
    le_put_u64(out, c->id);
    le_put_u32(out + 8, c->group);
}

int forward_cancel_decode(const uint8_t *p, size_t len, struct forward_cancel *c)
{
    if (len != FORWARD_CANCEL_BYTES) {
        return RR_ECORRUPT;
    }
    c->id = le_get_u64(p);
    c->group = le_get_u32(p + 8);
    return 0;
}

void forward_record_encode(uint8_t out[FORWARD_RECORD_BYTES], uint32_t rec_len)
{
    le_put_u32(out, rec_len);
}

int forward_record_next(
    const uint8_t *p, size_t len, size_t *off, const uint8_t **rec, size_t *rec_len)
{
    RR_ASSERT(*off <= len);
    if (*off == len) {
        return 0;
    }
    size_t left = len - *off;
    if (left < FORWARD_RECORD_BYTES || left - FORWARD_RECORD_BYTES < le_get_u32(p + *off)) {
        return RR_ECORRUPT;
    }
    *rec_len = le_get_u32(p + *off);
    *rec = p + *off + FORWARD_RECORD_BYTES;
    *off += FORWARD_RECORD_BYTES + *rec_len;
    return 1;
}

void forward_features_encode(uint8_t out[FORWARD_FEATURES_BYTES], uint64_t features)
{
    le_put_u64(out, features);
}

uint64_t forward_features_decode(const uint8_t *p, size_t len)
{
    return len < FORWARD_FEATURES_BYTES ? 0 : le_get_u64(p);
}
