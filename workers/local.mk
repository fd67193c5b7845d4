# bastion-worker: the MCP server skeleton and one directory per domain.
WORKER_SOURCES = \
	workers/worker.h \
	workers/credential.c \
	workers/mcp_server.c \
	workers/inventory/inventory.h \
	workers/inventory/inventory.c \
	workers/inventory/store.c

pkglibexec_PROGRAMS += bastion-worker
bastion_worker_SOURCES = $(WORKER_SOURCES) workers/main.c
bastion_worker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(SODIUM_CFLAGS)
# Not $(SANDBOX_LIBS): libseccomp and libsodium come from configure's WORKER_*_LIBS (static by default).
bastion_worker_LDADD = seccomp/libsandbox.a $(LIBBASTION) $(WORKER_SECCOMP_LIBS) $(SQLITE_LIBS) $(WORKER_SODIUM_LIBS)

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_framing tests/unit/test_schema tests/unit/test_inventory
CRITERION_TESTS += tests/unit/test_framing tests/unit/test_schema tests/unit/test_inventory
WORKER_TEST_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(SODIUM_CFLAGS) $(CRITERION_CFLAGS)
WORKER_TEST_LDADD = $(LIBBASTION) $(SQLITE_LIBS) $(SODIUM_LIBS) $(CRITERION_LIBS)
tests_unit_test_framing_SOURCES = tests/unit/test_framing.c tests/unit/worker_test.h $(WORKER_SOURCES)
# test_framing also runs the real binary over a socketpair.
tests_unit_test_framing_CFLAGS = $(WORKER_TEST_CFLAGS) -DBASTION_WORKER_PATH=\"$(abs_top_builddir)/bastion-worker\"
tests_unit_test_framing_LDADD = $(WORKER_TEST_LDADD)
EXTRA_tests_unit_test_framing_DEPENDENCIES = bastion-worker
tests_unit_test_inventory_SOURCES = tests/unit/test_inventory.c tests/unit/worker_test.h $(WORKER_SOURCES)
tests_unit_test_inventory_CFLAGS = $(WORKER_TEST_CFLAGS)
tests_unit_test_inventory_LDADD = $(WORKER_TEST_LDADD)
tests_unit_test_schema_SOURCES = tests/unit/test_schema.c
tests_unit_test_schema_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_schema_LDADD = $(LIBBASTION) $(CRITERION_LIBS)
endif

# The fuzz targets of lib/jsonrpc, lib/linebuf and lib/schema live with their corpora in tests/fuzz/.
include tests/fuzz/local.mk

# The record-keeping domains (orders, logistics, returns, payments) and what they share. Appended to
# WORKER_SOURCES, so bastion-worker and every worker test link them.
WORKER_SOURCES += \
	workers/records.h \
	workers/records.c \
	workers/demo.c \
	workers/orders/orders.c \
	workers/logistics/logistics.c \
	workers/returns/returns.c \
	workers/payments/payments.c \
	workers/conformance/conformance.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_domains
CRITERION_TESTS += tests/unit/test_domains
tests_unit_test_domains_SOURCES = tests/unit/test_domains.c tests/unit/worker_test.h $(WORKER_SOURCES)
tests_unit_test_domains_CFLAGS = $(WORKER_TEST_CFLAGS)
tests_unit_test_domains_LDADD = $(WORKER_TEST_LDADD)
check_PROGRAMS += tests/unit/test_worker_credential
CRITERION_TESTS += tests/unit/test_worker_credential
tests_unit_test_worker_credential_SOURCES = tests/unit/test_worker_credential.c workers/credential.c
tests_unit_test_worker_credential_CFLAGS = $(WORKER_TEST_CFLAGS)
tests_unit_test_worker_credential_LDADD = $(WORKER_TEST_LDADD)

# The skeleton's prompts, completion, logging, subscriptions and requests to the client (conformance domain).
check_PROGRAMS += tests/unit/test_conformance
CRITERION_TESTS += tests/unit/test_conformance
tests_unit_test_conformance_SOURCES = tests/unit/test_conformance.c $(WORKER_SOURCES)
tests_unit_test_conformance_CFLAGS = $(WORKER_TEST_CFLAGS)
tests_unit_test_conformance_LDADD = $(WORKER_TEST_LDADD)
endif
