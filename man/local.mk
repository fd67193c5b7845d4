# Man pages: scdoc sources in git, generated roff shipped in the tarball.
# Add a page by appending man/NAME.SECTION to BASTION_MANS (one line each, to keep merges easy).
BASTION_MANS =
BASTION_MANS += man/bastion.conf.5
BASTION_MANS += man/bastiond.8
BASTION_MANS += man/bastion-stdio.1
BASTION_MANS += man/bastion-audit.5
BASTION_MANS += man/bastion-worker.8
BASTION_MANS += man/bastionctl.8
BASTION_MANS += man/bastion-front.8

dist_man_MANS = $(BASTION_MANS)
EXTRA_DIST += $(BASTION_MANS:=.scd)
MAINTAINERCLEANFILES = $(BASTION_MANS)

SUFFIXES = .scd
man/%: $(srcdir)/man/%.scd
	$(AM_V_GEN)$(MKDIR_P) man && $(SCDOC) < $< > $@.tmp && mv $@.tmp $@
