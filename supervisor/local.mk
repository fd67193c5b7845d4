# supervisor: see Makefile.am
