# bastiond: the supervisor (config, spawning, restarts, sd_notify, control socket).
sbin_PROGRAMS += bastiond
bastiond_SOURCES = \
	supervisor/bastiond.h \
	supervisor/conf_load.h supervisor/conf_load.c \
	supervisor/main.c \
	supervisor/setup.c \
	supervisor/child.c \
	supervisor/broker.c \
	supervisor/worker.c \
	supervisor/reload.c \
	supervisor/status.c \
	supervisor/audit_flags.c \
	supervisor/control.c \
	supervisor/jwks.c \
	supervisor/front.c
bastiond_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS) $(LIBCONFIG_CFLAGS) $(SECCOMP_CFLAGS) $(CAP_CFLAGS)
bastiond_LDADD = $(SANDBOX_LIBS) $(SYSTEMD_LIBS) $(LIBCONFIG_LIBS)

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_conf
CRITERION_TESTS += tests/unit/test_conf
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c supervisor/conf_load.c
tests_unit_test_conf_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/supervisor $(JANSSON_CFLAGS) $(LIBCONFIG_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_conf_LDADD = $(LIBBASTION) $(LIBCONFIG_LIBS) $(CRITERION_LIBS)
endif
