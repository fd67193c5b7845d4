/* Compact JSON text without jansson's dump machinery (lib/json_write.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The compact JSON text of an object or array, byte for byte json_dumpb(v, buf, cap, JSON_COMPACT): the
 * length it needs, written into buf when it fits (when not, nothing past cap is touched and what buf
 * holds is unspecified), 0 when v cannot be written (not an object or an array, invalid UTF-8 in a
 * string, nesting past 2048). */
size_t json_write_compact(const json_t *v, char *buf, size_t cap);
/* The same, or with ensure_ascii as json_dumpb(JSON_COMPACT | JSON_ENSURE_ASCII). */
size_t json_write(const json_t *v, char *buf, size_t cap, bool ensure_ascii);
