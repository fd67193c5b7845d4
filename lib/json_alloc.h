/* Freed small jansson blocks kept for the next message (lib/json_alloc.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Makes jansson keep freed small blocks for the next message (first thing in main(), in a process that
 * uses jansson from one thread; compatible with malloc and free in both directions). Not in a sanitizer
 * build: then false. */
bool json_alloc_install(void);
/* Blocks kept now (tests). */
size_t json_alloc_kept(void);
