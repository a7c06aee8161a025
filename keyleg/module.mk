# keyleg/module.mk  Extra rules for keyleg and its tests.
#
# Only keyleg/srtp_glue.c sees libsrtp2's private headers (crypto kernel,
# stream internals).  The keyleg tests learn where the private libsrtp2
# build lives so that they can check it is the one linked in.

$(BUILD)/obj/keyleg/srtp_glue.o: CFLAGS_ALL += \
	-I$(SRTP_PREFIX)/include/srtp2-private
$(BUILD)/obj/tests/keyleg/%.o: CFLAGS_ALL += \
	-DKEYLEG_SRTP_PREFIX='"$(SRTP_PREFIX)"'
