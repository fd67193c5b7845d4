/* Host and Origin checks against the authorities a listener answers to. */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "origin.h"

/* Splits "name[:port]" (name may be a bracketed IPv6 literal). The port defaults to the scheme's; an
 * empty, signed, zero or out-of-range port is refused. */
static bool split_authority(const char *a, size_t len, bool tls, size_t *ret_name_len, uint16_t *ret_port) {
        size_t name_len = len;
        const char *colon;
        unsigned long port = 0;

        if (len > 0 && a[0] == '[') {
                const char *close = memchr(a, ']', len);
                if (!close)
                        return false;
                name_len = (size_t) (close - a) + 1;
                if (name_len < len && a[name_len] != ':')
                        return false;
        } else if ((colon = memchr(a, ':', len)))
                name_len = (size_t) (colon - a);
        if (name_len == 0)
                return false;
        if (name_len == len) {
                *ret_port = tls ? 443 : 80;
                *ret_name_len = name_len;
                return true;
        }
        if (len - name_len - 1 == 0 || len - name_len - 1 > 5)
                return false;
        for (size_t i = name_len + 1; i < len; i++) {
                if (a[i] < '0' || a[i] > '9')
                        return false;
                port = port * 10 + (unsigned long) (a[i] - '0');
        }
        if (port == 0 || port > 65535)
                return false;
        *ret_name_len = name_len;
        *ret_port = (uint16_t) port;
        return true;
}

static bool authority_listed(const char *a, size_t len, bool tls, const struct front_authority *names, size_t n) {
        size_t name_len;
        uint16_t port;

        if (!split_authority(a, len, tls, &name_len, &port))
                return false;
        for (size_t i = 0; i < n; i++)
                if (strlen(names[i].host) == name_len && strncasecmp(names[i].host, a, name_len) == 0 &&
                    names[i].port == port)
                        return true;
        return false;
}

bool front_host_allowed(const char *host, bool tls, const struct front_authority *names, size_t n) {
        return host && authority_listed(host, strlen(host), tls, names, n);
}

bool front_origin_allowed(const char *origin, bool tls, const struct front_authority *names, size_t n) {
        const char *scheme = tls ? "https://" : "http://";
        size_t sl = strlen(scheme);
        const char *a;

        if (!origin)
                return true;
        /* Schemes compare case-insensitively; a serialised origin has no path, query or userinfo. */
        if (strncasecmp(origin, scheme, sl) != 0)
                return false;
        a = origin + sl;
        if (strpbrk(a, "/?#@"))
                return false;
        return authority_listed(a, strlen(a), tls, names, n);
}
