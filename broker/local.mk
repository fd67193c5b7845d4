# broker: see Makefile.am
