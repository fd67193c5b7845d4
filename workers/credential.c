/* The worker's credential: bastiond starts a worker whose server has one with a sealed memfd at fd 4
 * holding only that server's secret (bastion.conf(5) credential, bastion-worker(8)). It is checked
 * once at start and kept open for the domain's backend; its value is never logged. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "log.h"
#include "sandbox.h"
#include "workers/worker.h"

static struct {
        int fd;
        size_t size;
} credential = { .fd = -1 };

int worker_credential_take(void) {
        const int sealed = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
        struct stat st;
        int seals;

        if (fcntl(WORKER_CREDENTIAL_FD, F_GETFD) < 0)
                return 0;
        /* A worker without a credential has the sandbox's filter socket right after its channel. */
        if (getenv(SANDBOX_FILTER_FD_ENV) && atoi(getenv(SANDBOX_FILTER_FD_ENV)) == WORKER_CREDENTIAL_FD)
                return 0;
        /* Only what bastiond hands over counts: a memfd nobody can change any more. Anything else at
         * fd 4 (a shell's redirection when run by hand) is not ours to read. */
        seals = fcntl(WORKER_CREDENTIAL_FD, F_GET_SEALS);
        if (seals < 0 || (seals & sealed) != sealed || fstat(WORKER_CREDENTIAL_FD, &st) < 0 || !S_ISREG(st.st_mode) ||
            st.st_size > BASTION_SECRET_MAX_VALUE) {
                log_warning("fd %d is open but is not a sealed credential memfd; ignoring it", WORKER_CREDENTIAL_FD);
                return 0;
        }
        credential.fd = WORKER_CREDENTIAL_FD;
        credential.size = (size_t) st.st_size;
        log_info("credential: %zu bytes at fd %d", credential.size, credential.fd);
        return 1;
}

ssize_t worker_credential_size(void) {
        return credential.fd >= 0 ? (ssize_t) credential.size : -1;
}

int worker_credential_read(void *buf, size_t size) {
        size_t n = 0;

        if (credential.fd < 0)
                return -ENOENT;
        if (size < credential.size)
                return -ENOBUFS;
        /* pread: the file position is shared with every other holder of the memfd. */
        while (n < credential.size) {
                ssize_t k = pread(credential.fd, (char *) buf + n, credential.size - n, (off_t) n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                n += (size_t) k;
        }
        return (int) n;
}
