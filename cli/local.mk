# cli: see Makefile.am

# bastion-stdio: the stdio shim an MCP host runs; relays to the broker's local socket.
bin_PROGRAMS += bastion-stdio
bastion_stdio_SOURCES = cli/bastion-stdio.c
bastion_stdio_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)

# bastionctl: the administrator's tool. One file per command group; the table is in cli/bastionctl.c.
sbin_PROGRAMS += bastionctl
bastionctl_SOURCES = \
	cli/bastionctl.h \
	cli/bastionctl.c \
	cli/ctl_daemon.c \
	cli/ctl_approvals.c
bastionctl_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
bastionctl_LDADD = $(LIBBASTION)

# audit and secrets commands (issue #5): they read the log files and the store directly.
bastionctl_SOURCES += cli/ctl_audit.c cli/ctl_secrets.c
bastionctl_CFLAGS += $(SODIUM_CFLAGS)
bastionctl_LDADD += $(AUDIT_LIBS) $(SECRETS_LIBS)
