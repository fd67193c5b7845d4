/* System calls without libc, for the child of sandbox_spawn() (seccomp/spawn.c). That child shares the
 * supervisor's memory (CLONE_VM) until its exec, so it must not write errno (the supervisor thread's
 * own, in the same thread-local storage), take a libc lock, allocate, or call a libc wrapper that acts
 * on the whole process as libc sees it (glibc's setresuid() and setgroups() lock and mark the
 * supervisor's thread list, to make every thread of "its" process change uid too). raw_syscall() returns what the kernel returned: a value >= 0 or
 * -errno. Also used by seccomp/caps.c, which the child calls. */
#pragma once

#include <sys/syscall.h>

static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
        register long r10 __asm__("r10") = d;
        register long r8 __asm__("r8") = e;
        register long r9 __asm__("r9") = f;
        long ret;

        __asm__ volatile("syscall"
                         : "=a"(ret)
                         : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
        return ret;
#elif defined(__aarch64__)
        register long x8 __asm__("x8") = nr;
        register long x0 __asm__("x0") = a;
        register long x1 __asm__("x1") = b;
        register long x2 __asm__("x2") = c;
        register long x3 __asm__("x3") = d;
        register long x4 __asm__("x4") = e;
        register long x5 __asm__("x5") = f;

        __asm__ volatile("svc 0"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                         : "memory");
        return x0;
#else
#error "seccomp/rawsys.h: raw system calls are written for x86-64 and aarch64 only"
#endif
}

/* raw_syscall(SYS_x, args...): one to six arguments, each converted to long. */
#define RAW_SYSCALL_ARGS_(a, b, c, d, e, f, ...) (long) (a), (long) (b), (long) (c), (long) (d), (long) (e), (long) (f)
#define raw_syscall(nr, ...) raw_syscall6((nr), RAW_SYSCALL_ARGS_(__VA_ARGS__, 0, 0, 0, 0, 0, 0))
