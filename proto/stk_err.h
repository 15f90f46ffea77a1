/* stk_err.h: the error convention every stoker library follows.
 *
 * Library functions return 0 on success and -1 on failure; on failure they fill the
 * caller's StkErr with one line naming the failing call or input and what is wrong.
 * Only main() prints and exits. A NULL StkErr is allowed and means "don't tell me". */
#ifndef STK_ERR_H
#define STK_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STK_ERR_LEN 512

typedef struct StkErr {
    char msg[STK_ERR_LEN]; /* NUL-terminated, truncated to fit */
} StkErr;

/* Formats the message into err (if not NULL) and returns -1, so that library code can
 * write `return stk_errf(err, "open %s: %s", path, strerror(errno));`. */
int stk_errf(StkErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (context added on the way up); returns -1. */
int stk_err_wrap(StkErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
