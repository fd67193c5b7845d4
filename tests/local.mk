# tests: see Makefile.am

# The official MCP conformance suite through the whole stack (tests/conformance/run, part of tests/run-all).
EXTRA_DIST += tests/conformance/run tests/conformance/bastion.conf.in tests/conformance/expected-failures.txt \
	tests/conformance/package.json tests/conformance/package-lock.json
