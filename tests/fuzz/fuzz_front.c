/* libFuzzer target: a message as the broker receives it from the front (lib/front_wire.c). The first
 * byte picks the type; what front_parse accepts must be in bounds, NUL-terminated, and rebuild to the
 * very same bytes with front_out. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "front_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct front_msg m;
        struct chan_raw raw = {};
        struct front_out o;

        if (size < 1)
                return 0;
        raw.type = FRONT_REQUEST + (data[0] % 2);
        raw.len = size - 1;
        raw.data = malloc(raw.len + 1);
        if (!raw.data)
                return 0;
        memcpy(raw.data, data + 1, raw.len);
        raw.data[raw.len] = '\0';
        if (front_parse(&raw, &m) < 0)
                return 0;
        front_out_init(&o, &m.w);
        for (unsigned i = 0; i < m.n; i++) {
                if (strlen(m.str[i].s) != m.str[i].len)
                        __builtin_trap();
                front_out_str(&o, m.str[i].s, m.str[i].len);
        }
        if (front_out_finish(&o) < 0 || o.len != m.raw.len || memcmp(o.buf, m.raw.data, o.len) != 0)
                __builtin_trap();
        front_out_done(&o);
        front_msg_done(&m);
        return 0;
}
