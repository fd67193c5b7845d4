# bench: see Makefile.am

# bench/audit: records/s and added latency of the audit writer per durability setting (issue #5).
noinst_PROGRAMS += bench/audit
bench_audit_SOURCES = bench/audit.c
bench_audit_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SODIUM_CFLAGS)
bench_audit_LDADD = $(AUDIT_LIBS)

# bench/spawn: worker spawn-to-attested time (median, p95) and idle RSS per process kind (issue #3).
noinst_PROGRAMS += bench/spawn
bench_spawn_SOURCES = bench/spawn.c
bench_spawn_CFLAGS = $(AM_CFLAGS) -DBENCH_BUILDDIR=\"$(abs_top_builddir)\"
bench_spawn_LDADD = $(SANDBOX_LIBS)

# bench/calls: get_stock round trips through the broker versus the worker on its stdio (issue #2).
noinst_PROGRAMS += bench/calls
bench_calls_SOURCES = bench/calls.c
bench_calls_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) -DBENCH_BUILDDIR=\"$(abs_top_builddir)\"

# bench/http: HTTPS + JWT through the whole chain versus the official SDK's Streamable HTTP server (issue #6).
# Run with node (tests/node_modules provides the SDK): node bench/http.mjs BUILDDIR [SECONDS]
EXTRA_DIST += bench/http.mjs
