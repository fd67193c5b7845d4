/* The worker's side of the credential hand-over (workers/credential.c): fd 4 counts only when it is a
 * memfd sealed against every change, as bastiond passes it; its value is read back exactly and never
 * logged. Each test runs in its own process (criterion), so the worker's once-only state is fresh. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "workers/worker.h"

#define VALUE "sk_test_WORKER_CREDENTIAL_31337"
#define ALL_SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

/* A memfd holding VALUE with `seals`, placed at fd 4. */
static void credential_at_fd4(int seals) {
        int fd = memfd_create("credential", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, VALUE, strlen(VALUE)), (ssize_t) strlen(VALUE));
        if (seals)
                cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
        cr_assert_eq(dup2(fd, WORKER_CREDENTIAL_FD), WORKER_CREDENTIAL_FD);
        close(fd);
}

Test(worker_credential, sealed_memfd_at_fd4_is_taken_and_read_exactly) {
        char buf[64] = "";

        credential_at_fd4(ALL_SEALS);
        cr_assert_eq(worker_credential_take(), 1);
        cr_assert_eq(worker_credential_size(), (ssize_t) strlen(VALUE));
        /* The file position is shared with every holder: reading must not depend on it. */
        cr_assert_eq(lseek(WORKER_CREDENTIAL_FD, 5, SEEK_SET), 5);
        cr_assert_eq(worker_credential_read(buf, sizeof(buf)), (int) strlen(VALUE));
        cr_assert_str_eq(buf, VALUE);
        cr_assert_eq(worker_credential_read(buf, 4), -ENOBUFS);
}

Test(worker_credential, no_fd4_means_no_credential) {
        char buf[64];

        (void) close(WORKER_CREDENTIAL_FD);
        cr_assert_eq(worker_credential_take(), 0);
        cr_assert_eq(worker_credential_size(), -1);
        cr_assert_eq(worker_credential_read(buf, sizeof(buf)), -ENOENT);
}

Test(worker_credential, memfd_missing_a_seal_is_ignored) {
        credential_at_fd4(F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);   /* still writable */
        cr_assert_eq(worker_credential_take(), 0);
        cr_assert_eq(worker_credential_size(), -1);
}

Test(worker_credential, plain_file_at_fd4_is_ignored) {
        char path[] = "/tmp/bastion-cred-XXXXXX";
        int fd = mkstemp(path);

        cr_assert_geq(fd, 0);
        unlink(path);
        cr_assert_eq(write(fd, VALUE, strlen(VALUE)), (ssize_t) strlen(VALUE));
        cr_assert_eq(dup2(fd, WORKER_CREDENTIAL_FD), WORKER_CREDENTIAL_FD);
        close(fd);
        cr_assert_eq(worker_credential_take(), 0);
        cr_assert_eq(worker_credential_size(), -1);
}
