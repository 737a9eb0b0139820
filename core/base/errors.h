/* Project error codes: 0 is success, negative values are errors. Codes below
 * RR_ERRNO_BASE are passed-through negated errno values (e.g. an io_uring cqe->res). */
#ifndef RR_BASE_ERRORS_H
#define RR_BASE_ERRORS_H

#define RR_ERRNO_BASE (-1000)

/* X(name, value, message) */
#define RR_ERROR_TABLE(X)                                                                          \
    X(RR_OK, 0, "success")                                                                         \
    X(RR_ENOMEM, -1001, "out of memory")                                                           \
    X(RR_EINVAL, -1002, "invalid argument")                                                        \
    X(RR_ECORRUPT, -1003, "corrupt data")                                                          \
    X(RR_ETRUNCATED, -1004, "truncated input")                                                     \
    X(RR_ETOOBIG, -1005, "value exceeds a configured limit")                                       \
    X(RR_EBADTYPE, -1006, "unknown type")                                                          \
    X(RR_EBADVERSION, -1007, "unsupported format version")                                         \
    X(RR_ENOTLEADER, -1008, "not the leader")                                                      \
    X(RR_EBUSY, -1009, "busy, try again")                                                          \
    X(RR_ENOTFOUND, -1010, "not found")                                                            \
    X(RR_ECOMPACTED, -1011, "entries already compacted")                                           \
    X(RR_EUNAVAILABLE, -1012, "entries not available")                                             \
    X(RR_EMISMATCH, -1013, "identity or shape mismatch")                                           \
    X(RR_ESHUTDOWN, -1014, "shutting down")                                                        \
    X(RR_ETRANSFER, -1015, "leadership transfer in progress")                                      \
    X(RR_ECONFIG, -1016, "configuration change not allowed now")                                   \
    X(RR_EIO, -1017, "I/O error")                                                                  \
    X(RR_ENOSPACE, -1018, "no space left")

enum rr_error {
#define RR_ERROR_ENUM(name, value, message) name = (value),
    RR_ERROR_TABLE(RR_ERROR_ENUM)
#undef RR_ERROR_ENUM
};

/* Static string describing code (project code or negated errno). Never NULL. */
const char *rr_strerror(int code);

#endif
