# bridge/module.mk  Extra rules for the bridge.
#
# The NDS client (kms_nds) is linked when the tree has its implementation;
# until then bridged builds without it and refuses --kms (kmslink.c).

BRIDGE_NDS_CLIENT := $(shell grep -l '^int kms_client_fetch_legkey' \
	kms_nds/*.c 2>/dev/null)
ifneq ($(BRIDGE_NDS_CLIENT),)
$(BUILD)/obj/bridge/kmslink.o: CFLAGS_ALL += -DBRIDGE_HAVE_NDS_CLIENT
endif
# rebuild kmslink.o when the client appears or goes
$(BUILD)/obj/bridge/kmslink.o: $(BRIDGE_NDS_CLIENT)
