#include "core/base/errors.h"

const char *rr_strerror(int code)
{
    switch (code) {
#define RR_ERROR_CASE(name, value, message)                                                        \
    case (value):                                                                                  \
        return (message);
        RR_ERROR_TABLE(RR_ERROR_CASE)
#undef RR_ERROR_CASE
    default:
        break;
    }
    /* Negated errno values are described by the caller (strerror is not pure). */
    return code < 0 && code > RR_ERRNO_BASE ? "system error (negated errno)" : "unknown error";
}
