# Bearer-token verification (issue #6 item 3): JWKS, JWS/JWT checks, verified-token cache.
# The broker (and anything else that verifies tokens) links $(AUTH_LIBS).
noinst_LIBRARIES += broker/auth/libauth.a
broker_auth_libauth_a_SOURCES = \
	broker/auth/auth-internal.h \
	broker/auth/b64url.c broker/auth/b64url.h \
	broker/auth/jwks.c broker/auth/jwks.h \
	broker/auth/jwt.c broker/auth/jwt.h \
	broker/auth/cache.c
broker_auth_libauth_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
AUTH_LIBS = broker/auth/libauth.a $(LIBBASTION) $(CRYPTO_LIBS)
AUTH_SOURCES = broker/auth/b64url.c broker/auth/jwks.c broker/auth/jwt.c broker/auth/cache.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_jwt tests/fuzz/replay_jwt
CRITERION_TESTS += tests/unit/test_jwt tests/fuzz/replay_jwt
tests_unit_test_jwt_SOURCES = tests/unit/test_jwt.c
tests_unit_test_jwt_CPPFLAGS = $(AM_CPPFLAGS) -DJWT_FIXTURE_DIR=\"$(abs_top_srcdir)/tests/fixtures/jwt\"
tests_unit_test_jwt_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_jwt_LDADD = $(AUTH_LIBS) $(CRITERION_LIBS)
tests_fuzz_replay_jwt_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_jwt.c
tests_fuzz_replay_jwt_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/jwt\"
tests_fuzz_replay_jwt_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS) $(CRITERION_CFLAGS)
tests_fuzz_replay_jwt_LDADD = $(AUTH_LIBS) $(CRITERION_LIBS)
endif

if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_jwt
tests_fuzz_fuzz_jwt_SOURCES = tests/fuzz/fuzz_jwt.c $(AUTH_SOURCES) lib/log.c
tests_fuzz_fuzz_jwt_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_jwt_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_jwt_LDADD = $(JANSSON_LIBS) $(CRYPTO_LIBS)
endif
