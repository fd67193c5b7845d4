# bastion-front (issue #6): TLS + strict HTTP/1.1 + SSE termination. The parser and writers are a
# library so the unit tests and the fuzz target link exactly what the front runs.
noinst_LIBRARIES += front/libfront.a
front_libfront_a_SOURCES = front/http.h front/http.c front/http_write.c \
	front/origin.h front/origin.c front/tls.h front/tls.c
front_libfront_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
# configure checks libcrypto only; libssl comes from the same libssl-dev package.
FRONT_LIBS = front/libfront.a $(LIBBASTION) $(SSL_LIBS) $(CRYPTO_LIBS)

# The process: everything above plus its event loop, its channels and its sandbox.
pkglibexec_PROGRAMS += bastion-front
bastion_front_SOURCES = front/front.h front/main.c front/conn.c front/request.c front/relay.c
bastion_front_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS) $(CRYPTO_CFLAGS)
bastion_front_LDADD = $(FRONT_LIBS) $(SANDBOX_LIBS) $(SYSTEMD_LIBS)

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_http tests/unit/test_tls tests/fuzz/replay_http tests/unit/test_conf_http \
	tests/unit/test_front_wire tests/fuzz/replay_front
CRITERION_TESTS += tests/unit/test_http tests/unit/test_tls tests/fuzz/replay_http tests/unit/test_conf_http \
	tests/unit/test_front_wire tests/fuzz/replay_front
# The broker <-> front framing (lib/front_wire.c), both ends of it.
tests_unit_test_front_wire_SOURCES = tests/unit/test_front_wire.c
tests_unit_test_front_wire_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_front_wire_LDADD = $(LIBBASTION) $(CRITERION_LIBS)
tests_fuzz_replay_front_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_front.c
tests_fuzz_replay_front_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/front\"
tests_fuzz_replay_front_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_fuzz_replay_front_LDADD = $(LIBBASTION) $(CRITERION_LIBS)
# The http group of bastion.conf, loaded by the supervisor's own loader.
tests_unit_test_conf_http_SOURCES = tests/unit/test_conf_http.c supervisor/conf_load.c
tests_unit_test_conf_http_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/supervisor $(JANSSON_CFLAGS) $(LIBCONFIG_CFLAGS) \
	$(CRITERION_CFLAGS)
tests_unit_test_conf_http_LDADD = $(LIBBASTION) $(LIBCONFIG_LIBS) $(CRITERION_LIBS)
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c
tests_unit_test_tls_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_tls_LDADD = $(FRONT_LIBS) $(CRITERION_LIBS)
tests_unit_test_http_SOURCES = tests/unit/test_http.c
tests_unit_test_http_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_http_LDADD = $(FRONT_LIBS) $(CRITERION_LIBS)
tests_fuzz_replay_http_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_http.c
tests_fuzz_replay_http_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/http\"
tests_fuzz_replay_http_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_fuzz_replay_http_LDADD = $(FRONT_LIBS) $(CRITERION_LIBS)
endif

if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_http tests/fuzz/fuzz_front
tests_fuzz_fuzz_front_SOURCES = tests/fuzz/fuzz_front.c lib/front_wire.c lib/chan.c lib/log.c
tests_fuzz_fuzz_front_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_front_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_front_LDADD = $(JANSSON_LIBS)
tests_fuzz_fuzz_http_SOURCES = tests/fuzz/fuzz_http.c front/http.c front/http_write.c front/origin.c \
	lib/linebuf.c
tests_fuzz_fuzz_http_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_http_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_http_LDADD = $(JANSSON_LIBS)
endif
