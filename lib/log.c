/* stderr logger: "<prio>ident: message". Under systemd stderr is the journal stream. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *log_ident = "bastion";
static int log_max_level = LOG_INFO;

void log_open(const char *ident) {
        const char *e = getenv("BASTION_LOG_LEVEL");

        log_ident = ident;
        if (e && *e >= '0' && *e <= '7' && e[1] == '\0')
                log_max_level = *e - '0';
        else if (e && strcmp(e, "debug") == 0)
                log_max_level = LOG_DEBUG;
}

void log_set_max_level(int level) { log_max_level = level; }
int log_get_max_level(void) { return log_max_level; }

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        /* %m in fmt refers to `error`, not to whatever errno happens to be now. */
        errno = error;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        /* One message is one line: a newline from a peer-supplied string must not forge a second. */
        for (char *p = buf; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        if (log_max_level >= LOG_DEBUG)
                fprintf(stderr, "<%d>%s: %s (%s:%d)\n", level, log_ident, buf, file, line);
        else
                fprintf(stderr, "<%d>%s: %s\n", level, log_ident, buf);
        errno = saved;
        return -error;
}
