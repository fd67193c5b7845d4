# Fuzz targets (included from workers/local.mk). Every build replays the corpora as criterion tests;
# configure --enable-fuzzing CC=clang also builds the libFuzzer binaries, with the code under test
# compiled into them so it carries the coverage instrumentation.
EXTRA_DIST += tests/fuzz/corpus

if HAVE_CRITERION
check_PROGRAMS += tests/fuzz/replay_jsonrpc tests/fuzz/replay_schema
CRITERION_TESTS += tests/fuzz/replay_jsonrpc tests/fuzz/replay_schema
tests_fuzz_replay_jsonrpc_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_jsonrpc.c
tests_fuzz_replay_jsonrpc_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/jsonrpc\"
tests_fuzz_replay_jsonrpc_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_fuzz_replay_jsonrpc_LDADD = $(LIBBASTION) $(CRITERION_LIBS)
tests_fuzz_replay_schema_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_schema.c
tests_fuzz_replay_schema_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/schema\"
tests_fuzz_replay_schema_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRITERION_CFLAGS)
tests_fuzz_replay_schema_LDADD = $(LIBBASTION) $(CRITERION_LIBS)
endif

if ENABLE_FUZZING
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
noinst_PROGRAMS += tests/fuzz/fuzz_jsonrpc tests/fuzz/fuzz_schema
tests_fuzz_fuzz_jsonrpc_SOURCES = tests/fuzz/fuzz_jsonrpc.c lib/jsonrpc.c lib/linebuf.c lib/log.c
tests_fuzz_fuzz_jsonrpc_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_jsonrpc_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_jsonrpc_LDADD = $(JANSSON_LIBS)
tests_fuzz_fuzz_schema_SOURCES = tests/fuzz/fuzz_schema.c lib/schema.c lib/jsonrpc.c lib/log.c
tests_fuzz_fuzz_schema_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_schema_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_schema_LDADD = $(JANSSON_LIBS)
endif

# The whole worker (skeleton + inventory on a temporary SQLite database).
if HAVE_CRITERION
check_PROGRAMS += tests/fuzz/replay_worker
CRITERION_TESTS += tests/fuzz/replay_worker
tests_fuzz_replay_worker_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_worker.c $(WORKER_SOURCES)
tests_fuzz_replay_worker_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/worker\"
tests_fuzz_replay_worker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(CRITERION_CFLAGS)
tests_fuzz_replay_worker_LDADD = $(LIBBASTION) $(SQLITE_LIBS) $(SODIUM_LIBS) $(CRITERION_LIBS)
endif

if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_worker
tests_fuzz_fuzz_worker_SOURCES = tests/fuzz/fuzz_worker.c $(WORKER_SOURCES) \
	lib/jsonrpc.c lib/linebuf.c lib/log.c lib/schema.c
tests_fuzz_fuzz_worker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_worker_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_worker_LDADD = $(JANSSON_LIBS) $(SQLITE_LIBS) $(SODIUM_LIBS)
endif
