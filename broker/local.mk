# bastion-broker: the policy hub (the lead owns this file; audit/secrets append their libraries below).
pkglibexec_PROGRAMS += bastion-broker
bastion_broker_SOURCES = \
	broker/broker.h \
	broker/main.c \
	broker/client.c \
	broker/upstream.c \
	broker/mcp/server.c \
	broker/mcp/era.c \
	broker/mcp/principal.c \
	broker/mcp/tasks.h \
	broker/mcp/tasks.c \
	broker/policy/policy.c \
	broker/approval/confirm.c \
	broker/approval/approver.c \
	broker/record.c \
	broker/http/http.h \
	broker/http/front.c \
	broker/http/auth.c \
	broker/http/ratelimit.c \
	broker/http/mcp.c
bastion_broker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS) $(SODIUM_CFLAGS) $(CRYPTO_CFLAGS)
bastion_broker_LDADD = $(AUTH_LIBS) $(AUDIT_LIBS) $(SECRETS_LIBS) $(LIBBASTION) $(SYSTEMD_LIBS) $(SODIUM_LIBS) $(SANDBOX_LIBS) -lm

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_era
CRITERION_TESTS += tests/unit/test_era
tests_unit_test_era_SOURCES = tests/unit/test_era.c broker/mcp/era.c
tests_unit_test_era_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_era_LDADD = $(LIBBASTION) $(CRITERION_LIBS)
endif

# Audit log writer + verifier, and the secrets store (issue #5). The broker links $(AUDIT_LIBS)
# $(SECRETS_LIBS); bastionctl links them too.
noinst_LIBRARIES += broker/audit/libaudit.a broker/secrets/libsecrets.a
broker_audit_libaudit_a_SOURCES = \
	broker/audit/audit.h broker/audit/audit-internal.h \
	broker/audit/audit.c broker/audit/records.c broker/audit/verify.c broker/audit/journal.c
broker_audit_libaudit_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SODIUM_CFLAGS) $(SYSTEMD_CFLAGS)
broker_secrets_libsecrets_a_SOURCES = \
	broker/secrets/store.h broker/secrets/store.c broker/secrets/credentials.c
broker_secrets_libsecrets_a_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS)
AUDIT_LIBS = broker/audit/libaudit.a $(LIBBASTION) $(SODIUM_LIBS) $(SYSTEMD_LIBS)
SECRETS_LIBS = broker/secrets/libsecrets.a $(LIBBASTION) $(SODIUM_LIBS)

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_audit tests/unit/test_secrets
CRITERION_TESTS += tests/unit/test_audit tests/unit/test_secrets
tests_unit_test_audit_SOURCES = tests/unit/test_audit.c tests/unit/ctl_run.h
tests_unit_test_audit_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SODIUM_CFLAGS) $(SYSTEMD_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_audit_LDADD = $(AUDIT_LIBS) $(SECRETS_LIBS) $(CRITERION_LIBS)
tests_unit_test_secrets_SOURCES = tests/unit/test_secrets.c tests/unit/ctl_run.h
tests_unit_test_secrets_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_secrets_LDADD = $(SECRETS_LIBS) $(CRITERION_LIBS)
# Both also run the built bastionctl (tests/unit/ctl_run.h).
EXTRA_tests_unit_test_audit_DEPENDENCIES = bastionctl$(EXEEXT)
EXTRA_tests_unit_test_secrets_DEPENDENCIES = bastionctl$(EXEEXT)
endif
