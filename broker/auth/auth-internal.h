/* Helpers shared by the files of broker/auth only. */
#pragma once

#include <stddef.h>

/* Formats the reason into err (if any) and returns r, so refusals read `return auth_fail(…);`. */
int auth_fail(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Copies an attacker- or operator-supplied string into buf for a message: printable ASCII only,
 * cut to fit, so an error text never carries control characters or unbounded input. */
#define AUTH_PRINTABLE_MAX 48
const char *auth_printable(const char *s, char buf[static AUTH_PRINTABLE_MAX]);
