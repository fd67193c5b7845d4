# workers: see Makefile.am
