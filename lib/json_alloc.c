/* jansson's memory in the worker and the broker: every call parses a request and builds an answer of a
 * few dozen small values (objects, their tables and pairs, strings), all freed again when it is
 * answered. glibc
 * keeps only 7 freed blocks of a size at hand (tcache), so freeing a message sends most of them through
 * its slower bins, and building the next one takes them back the same way: a fifth of the worker's
 * instructions per call. Here freed blocks up to 264 bytes are kept, per size, for the next message.
 *
 * Every block is an ordinary malloc() block, taken back as it was: free() may release what this
 * allocator handed out (json_dumps() results are freed so) and this allocator may release what
 * malloc() made. For single-threaded users of jansson: the worker; the broker (its audit sync thread never
 * touches jansson). A sanitizer build keeps nothing, so ASan still
 * sees every use after free. */
#include "config.h"

#include <malloc.h>
#include <stdlib.h>

#include <jansson.h>

#include "json_alloc.h"

/* glibc's in-use chunks give 24, 40, 56, ... bytes (16 k + 8): one list per such size up to 264. */
#define JSON_ALLOC_CLASSES 16
#define JSON_ALLOC_MIN 24
/* Blocks kept per size: more than one message needs, bounding what is held back (about 600 KiB). */
#define JSON_ALLOC_KEEP 256

struct kept {
        struct kept *next;
};

static struct kept *kept[JSON_ALLOC_CLASSES];
static unsigned n_kept[JSON_ALLOC_CLASSES];

static void *json_alloc(size_t n) {
        size_t c = n <= JSON_ALLOC_MIN ? 0 : (n - JSON_ALLOC_MIN + 15) / 16;
        struct kept *b;

        if (c >= JSON_ALLOC_CLASSES || !kept[c])
                return malloc(n);
        b = kept[c];
        kept[c] = b->next;
        n_kept[c]--;
        return b;
}

static void json_release(void *p) {
        size_t u, c;

        if (!p)
                return;
        /* What the block can hold, whoever asked for it and for how much. */
        u = malloc_usable_size(p);
        c = (u - JSON_ALLOC_MIN) / 16;
        if (u < JSON_ALLOC_MIN || (u - JSON_ALLOC_MIN) % 16 != 0 || c >= JSON_ALLOC_CLASSES || n_kept[c] >= JSON_ALLOC_KEEP) {
                free(p);
                return;
        }
        ((struct kept *) p)->next = kept[c];
        kept[c] = p;
        n_kept[c]++;
}

#if defined(__SANITIZE_ADDRESS__)
#define JSON_ALLOC_KEEPS false
#else
#define JSON_ALLOC_KEEPS true
#endif

bool json_alloc_install(void) {
        if (JSON_ALLOC_KEEPS)
                json_set_alloc_funcs(json_alloc, json_release);
        return JSON_ALLOC_KEEPS;
}

size_t json_alloc_kept(void) {
        size_t n = 0;

        for (size_t c = 0; c < JSON_ALLOC_CLASSES; c++)
                n += n_kept[c];
        return n;
}
