# seccomp/: the kernel sandbox (namespaces, mounts, capabilities, Landlock, seccomp, attestation).
noinst_LIBRARIES += seccomp/libsandbox.a
seccomp_libsandbox_a_SOURCES = \
	seccomp/sandbox.h seccomp/sandbox-internal.h seccomp/rawsys.h \
	seccomp/spawn.c \
	seccomp/lockdown.c \
	seccomp/caps.c \
	seccomp/landlock.c \
	seccomp/filter.c \
	seccomp/allowlists.c \
	seccomp/attest.c \
	seccomp/culprit.c
seccomp_libsandbox_a_CFLAGS = $(AM_CFLAGS) $(SECCOMP_CFLAGS) $(JANSSON_CFLAGS)
# What every program that spawns, locks down or attests links (after its own objects).
SANDBOX_LIBS = seccomp/libsandbox.a $(LIBBASTION) $(SECCOMP_LIBS)

if HAVE_CRITERION
# The escape drill: a test-only worker from the same sandbox code, and the test that runs it.
check_PROGRAMS += tests/escape/bastion-escape-worker tests/unit/test_escape
CRITERION_TESTS += tests/unit/test_escape
tests_escape_bastion_escape_worker_SOURCES = tests/escape/escape-worker.c
tests_escape_bastion_escape_worker_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
tests_escape_bastion_escape_worker_LDADD = $(SANDBOX_LIBS) $(SQLITE_LIBS)
tests_unit_test_escape_SOURCES = tests/unit/test_escape.c
tests_unit_test_escape_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS) $(CRITERION_CFLAGS) \
	-DESCAPE_WORKER_PATH=\"$(abs_top_builddir)/tests/escape/bastion-escape-worker\"
tests_unit_test_escape_LDADD = $(SANDBOX_LIBS) $(SQLITE_LIBS) $(CRITERION_LIBS)
EXTRA_tests_unit_test_escape_DEPENDENCIES = tests/escape/bastion-escape-worker

# Per-role allowlists (bad-pointer technique), spawn's fd layout and errors, attestation verdicts.
check_PROGRAMS += tests/unit/test_sandbox
CRITERION_TESTS += tests/unit/test_sandbox
tests_unit_test_sandbox_SOURCES = tests/unit/test_sandbox.c
tests_unit_test_sandbox_CFLAGS = $(AM_CFLAGS) $(SECCOMP_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_sandbox_LDADD = $(SANDBOX_LIBS) $(CRITERION_LIBS)

# The broker's and the front's lockdown, tried from inside (the attempt → outcome table).
check_PROGRAMS += tests/unit/test_broker_sandbox
CRITERION_TESTS += tests/unit/test_broker_sandbox
tests_unit_test_broker_sandbox_SOURCES = tests/unit/test_broker_sandbox.c
tests_unit_test_broker_sandbox_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) -DBUILD_DIR=\"$(abs_top_builddir)\"
tests_unit_test_broker_sandbox_LDADD = $(SANDBOX_LIBS) $(CRITERION_LIBS)
EXTRA_tests_unit_test_broker_sandbox_DEPENDENCIES = bastiond bastion-broker bastion-worker bastionctl

# The front's profile with the front's real TLS code.
check_PROGRAMS += tests/unit/test_sandbox_front
CRITERION_TESTS += tests/unit/test_sandbox_front
tests_unit_test_sandbox_front_SOURCES = tests/unit/test_sandbox_front.c
tests_unit_test_sandbox_front_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_sandbox_front_LDADD = $(FRONT_LIBS) $(SANDBOX_LIBS) $(CRITERION_LIBS)

# The real bastion-worker, spawned, attested and driven under its sandbox.
check_PROGRAMS += tests/unit/test_sandbox_worker
CRITERION_TESTS += tests/unit/test_sandbox_worker
tests_unit_test_sandbox_worker_SOURCES = tests/unit/test_sandbox_worker.c
tests_unit_test_sandbox_worker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS) \
	-DBASTION_WORKER_PATH=\"$(abs_top_builddir)/bastion-worker\"
tests_unit_test_sandbox_worker_LDADD = $(SANDBOX_LIBS) $(CRITERION_LIBS)
EXTRA_tests_unit_test_sandbox_worker_DEPENDENCIES = bastion-worker
endif

# A worker that lies to the broker (reserved error codes, forged input requests), for the attacker-side
# tests of what the broker passes on (tests/integration/hostile.test.mjs).
check_PROGRAMS += tests/hostile/bastion-hostile-worker
tests_hostile_bastion_hostile_worker_SOURCES = tests/hostile/hostile-worker.c
tests_hostile_bastion_hostile_worker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tests_hostile_bastion_hostile_worker_LDADD = $(SANDBOX_LIBS) $(LIBBASTION)
