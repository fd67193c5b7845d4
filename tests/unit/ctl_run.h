/* Runs the built bastionctl (tests run from the build directory) with optional stdin, capturing
 * stdout, stderr and the exit status: the CLI tested the way an administrator uses it. */
#pragma once

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BASTIONCTL "./bastionctl"
#define CTL_OUT_MAX 65536

struct ctl_result {
        int status;
        char out[CTL_OUT_MAX];
        char err[CTL_OUT_MAX];
};

static void ctl_slurp(int fd, char *buf) {
        size_t n = 0;
        ssize_t k;

        while (n < CTL_OUT_MAX - 1 && (k = read(fd, buf + n, CTL_OUT_MAX - 1 - n)) > 0)
                n += (size_t) k;
        buf[n] = '\0';
        close(fd);
}

/* argv is NULL-terminated and starts after "bastionctl". Output is read after exit: keep it small. */
static void ctl_run(struct ctl_result *r, const char *input, const char *const *argv) {
        int in[2], out[2], err[2], st;
        const char *args[32] = { BASTIONCTL };
        size_t n = 1;
        pid_t pid;

        cr_assert_eq(access(BASTIONCTL, X_OK), 0, "%s not built (run from the build directory)", BASTIONCTL);
        while (argv[n - 1] && n < ELEMENTSOF(args) - 1) {
                args[n] = argv[n - 1];
                n++;
        }
        args[n] = NULL;
        cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(out[1], 1);
                dup2(err[1], 2);
                execv(BASTIONCTL, (char *const *) args);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        close(err[1]);
        /* The command may exit without reading its input (a refused name): that is EPIPE, not a crash. */
        signal(SIGPIPE, SIG_IGN);
        if (input && write(in[1], input, strlen(input)) < 0)
                cr_assert_eq(errno, EPIPE);
        close(in[1]);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        ctl_slurp(out[0], r->out);
        ctl_slurp(err[0], r->err);
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
