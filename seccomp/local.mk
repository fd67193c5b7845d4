# seccomp: see Makefile.am
