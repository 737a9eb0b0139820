/* The payloads of the request-forwarding frames (FRAME_FORWARD, FRAME_FORWARD_REPLY,
 * FRAME_FORWARD_CANCEL: docs/wire-format.md, "Forwarded requests"): a client command sent to
 * the node that leads its group, the reply relayed back, and the cancel of a blocked read.
 * Pure encoding and decoding; what a field means to the node is io/route.c's business.
 *
 * FORWARD: a 41-byte header, then argc arguments, each a u32 length and its bytes; the
 * payload ends exactly after the last argument. All integers little-endian.
 *
 * FORWARD_BATCH and FORWARD_REPLY_BATCH carry one or more of those payloads, each a record: a
 * u32 length, then a FORWARD (FORWARD_REPLY) payload of that length; the frame's payload
 * ends exactly after the last record. One frame, one checksum, for all the forwards (replies)
 * a node has for a peer when its output is sent. A node sends them only to a peer that
 * announced FORWARD_FEATURE_BATCH in a PING (whose payload is a u64 of feature bits: nodes
 * that predate it ignore a PING's payload and never announce it). */
#ifndef RR_IO_WIRE_FORWARD_H
#define RR_IO_WIRE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#define FORWARD_HEADER_BYTES       41u
#define FORWARD_ARGC_MAX           (1u << 20)
#define FORWARD_REPLY_HEADER_BYTES 13u
#define FORWARD_CANCEL_BYTES       12u
#define FORWARD_RECORD_BYTES       4u /* a batch record's length field */
#define FORWARD_FEATURES_BYTES     8u /* a PING's payload */
#define FORWARD_FEATURE_BATCH      1u /* takes FORWARD_BATCH and FORWARD_REPLY_BATCH frames */

struct forward_header {
    uint64_t id;            /* the request's id at the forwarder, echoed in the reply */
    uint64_t client_id;     /* the client's session */
    uint64_t seq;           /* its sequence number in the session (0 for reads) */
    uint64_t first_unacked; /* the client's lowest sequence number without a reply */
    uint32_t group;
    uint8_t cls;   /* request class (io/node.h): opaque here */
    uint32_t argc; /* 1 .. FORWARD_ARGC_MAX */
};

struct forward_reply_header {
    uint64_t id;        /* the forwarder's request id */
    uint8_t not_leader; /* 1: the receiver does not lead the group; the reply is empty */
    uint32_t leader;    /* the leader the receiver knows of (0: none) */
};

struct forward_cancel {
    uint64_t id; /* the forwarder's request id */
    uint32_t group;
};

/* FORWARD: the header, then forward_args_bytes() bytes of arguments. */
void forward_header_encode(uint8_t out[FORWARD_HEADER_BYTES], const struct forward_header *h);
size_t forward_args_bytes(uint32_t argc, const uint32_t *argl);
void forward_args_encode(uint8_t *out,
                         uint32_t argc,
                         const uint8_t *const *argv,
                         const uint32_t *argl);

/* Decodes a FORWARD payload's header. Checks that argc is within 1 .. FORWARD_ARGC_MAX
 * and that the payload has room for argc length fields, so a caller may size its argument
 * arrays from h->argc without trusting the sender further. Returns 0, RR_ETRUNCATED (shorter
 * than the header) or RR_ECORRUPT. */
int forward_header_decode(const uint8_t *p, size_t len, struct forward_header *h);

/* Decodes the arguments that follow a header forward_header_decode accepted into argv/argl
 * (h->argc slots each; argv points into p). Returns 0, or RR_ECORRUPT when an argument runs
 * past the payload or bytes remain after the last. */
int forward_args_decode(const uint8_t *p,
                        size_t len,
                        const struct forward_header *h,
                        const uint8_t **argv,
                        size_t *argl);

/* Checks a whole FORWARD payload as the two decoders above would (without filling argument
 * arrays): 0, RR_ETRUNCATED or RR_ECORRUPT. */
int forward_check(const uint8_t *p, size_t len);

/* FORWARD_REPLY: the header, then the RESP reply (none when not_leader). */
void forward_reply_header_encode(uint8_t out[FORWARD_REPLY_HEADER_BYTES],
                                 const struct forward_reply_header *h);
/* Returns 0 with reply and reply_len set to the RESP bytes, RR_ETRUNCATED, or RR_ECORRUPT (a
 * not_leader other than 0 or 1, or a reply beside not_leader). */
int forward_reply_decode(const uint8_t *p,
                         size_t len,
                         struct forward_reply_header *h,
                         const uint8_t **reply,
                         size_t *reply_len);

void forward_cancel_encode(uint8_t out[FORWARD_CANCEL_BYTES], const struct forward_cancel *c);
/* Returns 0 or RR_ECORRUPT (a payload of another size). */
int forward_cancel_decode(const uint8_t *p, size_t len, struct forward_cancel *c);

/* Batches: the length field of a record of rec_len bytes (the record follows it). */
void forward_record_encode(uint8_t out[FORWARD_RECORD_BYTES], uint32_t rec_len);
/* Takes the record at *off of a batch payload p[0..len): returns 1 with *rec and *rec_len set
 * (inside p) and *off moved past it, 0 when *off == len (no more records), RR_ECORRUPT when
 * fewer than FORWARD_RECORD_BYTES remain or the record runs past the payload. What a record
 * holds is checked by its own decoder. */
int forward_record_next(
    const uint8_t *p, size_t len, size_t *off, const uint8_t **rec, size_t *rec_len);

/* A PING's payload: the sender's feature bits. A payload shorter than FORWARD_FEATURES_BYTES
 * has none; bytes after them, and bits this node does not know, are ignored (for later
 * features). */
void forward_features_encode(uint8_t out[FORWARD_FEATURES_BYTES], uint64_t features);
uint64_t forward_features_decode(const uint8_t *p, size_t len);

#endif
