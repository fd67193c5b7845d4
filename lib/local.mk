noinst_LIBRARIES += lib/libbastion.a
lib_libbastion_a_SOURCES = \
	lib/util.h \
	lib/log.c lib/log.h \
	lib/linebuf.c lib/linebuf.h \
	lib/jsonrpc.c lib/jsonrpc.h \
	lib/chan.c lib/chan.h lib/front_proto.h lib/front_wire.c \
	lib/conf.h lib/conf_json.c \
	lib/schema.c lib/schema.h \
	lib/json_alloc.c lib/json_alloc.h \
	lib/json_write.c lib/json_write.h \
	lib/bounds.h
lib_libbastion_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
# What every program links for lib/.
LIBBASTION = lib/libbastion.a $(JANSSON_LIBS)
