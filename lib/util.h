/* Small helpers shared by every program: cleanup attributes and errno idioms (systemd style). */
#pragma once

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <jansson.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) { free(*(void **) p); }
static inline void closep(int *fd) { if (*fd >= 0) { int e = errno; close(*fd); errno = e; } }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_json_ _cleanup_(json_decrefp) /* json_decrefp comes with jansson */

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

/* Negative errno from a libc call that returns -1 and sets errno. */
#define RET_NERRNO(expr) ({ long _r = (long) (expr); _r < 0 ? -errno : (int) _r; })

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int e = errno;
                close(fd);
                errno = e;
        }
        return -1;
}

static inline int streq(const char *a, const char *b) { return a && b && __builtin_strcmp(a, b) == 0; }

/* Accuracy for an sd-event timer of `usec`: an eighth of it, at most a second. sd-event then picks
 * a wake-up on a coarse boundary inside that window, so re-arming a per-request deadline does not
 * reprogram the timerfd on every request. */
static inline uint64_t timer_accuracy_usec(uint64_t usec) {
        uint64_t a = usec / 8;

        return a > 1000000 ? 1000000 : a > 0 ? a : 1;
}

/* free() that zeroes the whole block first. A process that passes key material through jansson
 * (bastiond and bastion-front: the TLS key) installs it with json_set_alloc_funcs(malloc, free_wiped),
 * so that none of jansson's copies (strings, dump buffers) outlives its use in freed memory. */
static inline void free_wiped(void *p) {
        if (p) {
                explicit_bzero(p, malloc_usable_size(p));
                free(p);
        }
}

/* realloc() that leaves no copy behind, for buffers that carry secrets (bearer tokens): the first
 * `used` bytes move to a new block of new_size, the old block (old_size bytes) is zeroed and freed.
 * NULL (and p untouched) when out of memory. */
static inline void *realloc_wiped(void *p, size_t used, size_t old_size, size_t new_size) {
        void *n = malloc(new_size);

        if (!n)
                return NULL;
        if (p) {
                memcpy(n, p, used);
                explicit_bzero(p, old_size);
                free(p);
        }
        return n;
}
