# Keymix  top-level Makefile
#
# Conventions (see docs/building.md):
#   <mod>/*.c        -> build/lib/lib<mod>.a   (all but *_main.c)
#   <mod>/X_main.c   -> build/bin/X
#   tests/<mod>/*.c  -> build/tests/test_<mod> (cmocka, links every module)
#   tests/fuzz/T.c   -> build/fuzz/T (corpus replay, no clang needed)
#   tests/integration/*.sh|*.py  run by tests/run.sh with KEYMIX_BUILD set
#   <mod>/module.mk  optional extra rules for one module
# Variants live in their own build trees: build/ (normal), build/asan/.

BUILD       ?= build
TOP         := $(CURDIR)
SRTP_PREFIX ?= $(TOP)/build/third/srtp
SRTP_LIB    := $(SRTP_PREFIX)/lib/libsrtp2.a

CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wvla
ifeq ($(CI),true)
WARN    += -Werror
endif
CPPFLAGS_ALL := -D_GNU_SOURCE -I$(TOP) -I$(SRTP_PREFIX)/include
CFLAGS_ALL   := -std=gnu11 $(OPT) $(WARN) $(SAN) -fno-strict-aliasing \
		-MMD -MP $(CPPFLAGS_ALL) $(EXTRA_CFLAGS)
LDFLAGS_ALL  := $(SAN) -Wl,--as-needed $(EXTRA_LDFLAGS)
SYS_LIBS     := -levent_openssl -levent_pthreads -levent -lssl -lcrypto \
		-lopus -lspandsp -lspeexdsp -ljansson -lsqlite3 -luring -lpthread -lm

# Link order does not matter inside the group.
MODULES := keyleg mixer kms_nds ue bridge bench tools
MODULE_LIBS :=
BINS :=

objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

define module_rules
$(1)_SRCS  := $$(filter-out %_main.c,$$(wildcard $(1)/*.c))
$(1)_MAINS := $$(wildcard $(1)/*_main.c)
ifneq ($$($(1)_SRCS),)
MODULE_LIBS += $(BUILD)/lib/lib$(1).a
$(BUILD)/lib/lib$(1).a: $$(call objs,$$($(1)_SRCS))
endif
BINS += $$(patsubst $(1)/%_main.c,$(BUILD)/bin/%,$$($(1)_MAINS))
$$(foreach f,$$($(1)_MAINS),$$(eval $$(call main_rule,$$(f),$(1))))
endef

define main_rule
$(BUILD)/bin/$(patsubst $(2)/%_main.c,%,$(1)): $(call objs,$(1)) \
		$$(MODULE_LIBS) $(SRTP_LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $$(filter %.o,$$^) \
		-Wl,--start-group $$(MODULE_LIBS) $(SRTP_LIB) -Wl,--end-group \
		$$(SYS_LIBS)
endef

$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

# Unit tests: one cmocka binary per folder under tests/.
TEST_DIRS  := $(filter-out fuzz integration mock fixtures,\
	$(notdir $(patsubst %/,%,$(dir $(wildcard tests/*/*.c)))))
TEST_BINS  := $(patsubst %,$(BUILD)/tests/test_%,$(sort $(TEST_DIRS)))
MOCK_OBJS  := $(call objs,$(wildcard tests/mock/*.c))

define test_rule
$(BUILD)/tests/test_$(1): $(call objs,$(wildcard tests/$(1)/*.c)) \
		$(MOCK_OBJS) $$(MODULE_LIBS) $(SRTP_LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $$(filter %.o,$$^) \
		-Wl,--start-group $$(MODULE_LIBS) $(SRTP_LIB) -Wl,--end-group \
		-lcmocka $$(SYS_LIBS)
endef
$(foreach d,$(sort $(TEST_DIRS)),$(eval $(call test_rule,$(d))))

# Fuzz targets: replayed over their corpus by a standalone driver.
FUZZ_SRCS   := $(filter-out tests/fuzz/driver.c,$(wildcard tests/fuzz/*.c))
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/driver.o \
		$(MODULE_LIBS) $(SRTP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) \
		-Wl,--start-group $(MODULE_LIBS) $(SRTP_LIB) -Wl,--end-group \
		$(SYS_LIBS)

-include $(wildcard */module.mk)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

.PHONY: all deps build check test asan asan-build tsan demo bench \
	bench-quick fuzz fuzz-build certs clean distclean valgrind
.DEFAULT_GOAL := all
# keep intermediate objects (fuzz targets are built through a chain)
.SECONDARY:

all: $(SRTP_LIB) $(BINS) $(TEST_BINS) $(FUZZ_REPLAY)

# Our patches to libsrtp2 (scripts/patches/): a changed one rebuilds it.
SRTP_PATCHES := $(wildcard scripts/patches/libsrtp2-*.patch)
$(SRTP_LIB): $(SRTP_PATCHES)
	@if [ -f $@ ]; then \
		SRTP_PREFIX=$(SRTP_PREFIX) bash scripts/deps.sh srtp; \
	else \
		echo "libsrtp2 (OpenSSL build) missing: run 'make deps'" >&2; \
		exit 1; \
	fi

deps:
	bash scripts/deps.sh

# check: run every test against an already built tree.
check: all
	KEYMIX_BUILD=$(TOP)/$(BUILD) bash tests/run.sh

NPROC := $(shell nproc 2>/dev/null || echo 2)

test: deps
	$(MAKE) -j$(NPROC) check

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
ASAN_VARS = BUILD=build/asan OPT="-O1 -g" SAN="$(ASAN_FLAGS)"
# Sanitizer reports raised inside third-party libraries only (see the file)
SAN_ENV := ASAN_OPTIONS=suppressions=$(TOP)/tests/asan.supp \
	UBSAN_OPTIONS=print_stacktrace=1
asan: deps
	$(SAN_ENV) $(MAKE) -j$(NPROC) $(ASAN_VARS) check

asan-build: deps
	$(MAKE) -j$(NPROC) $(ASAN_VARS) all

TSAN_FLAGS := -fsanitize=thread
# ThreadSanitizer over the multi-threaded programs: the bridge (workers,
# KMS thread), the NDS link and the conference end to end.
TSAN_TESTS ?= test_bridge|test_nds|test_keyleg|bridge_api|bridge_media|\
	e2e_conference|rel_faults
tsan: deps
	$(MAKE) -j$(NPROC) BUILD=build/tsan OPT="-O1 -g" SAN="$(TSAN_FLAGS)" \
		KEYMIX_FILTER='$(TSAN_TESTS)' check

# The G.711 integration tests with every process under valgrind memcheck
# (tests/valgrind.sh); not part of CI.
valgrind: deps
	$(MAKE) -j$(NPROC) all
	KEYMIX_BUILD=$(TOP)/$(BUILD) bash tests/valgrind.sh

demo: deps
	$(MAKE) all
	KEYMIX_BUILD=$(TOP)/$(BUILD) bash scripts/demo.sh

bench: deps
	$(MAKE) all
	KEYMIX_BUILD=$(TOP)/$(BUILD) bash bench/run.sh full

bench-quick: deps
	$(MAKE) all
	KEYMIX_BUILD=$(TOP)/$(BUILD) bash bench/run.sh quick

# libFuzzer: a separate clang tree; every tests/fuzz/T.c runs SECONDS
# seconds over a scratch copy of its corpus (new finds stay in build/).
SECONDS ?= 60
LIBFUZZER_VARS = BUILD=build/libfuzzer CC=clang OPT="-O1 -g" \
	SAN="-fsanitize=fuzzer-no-link,address,undefined"
LIBFUZZER_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/libfuzzer-bin/%,\
	$(FUZZ_SRCS))
$(BUILD)/libfuzzer-bin/%: $(BUILD)/obj/tests/fuzz/%.o $(MODULE_LIBS) \
		$(SRTP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $(filter %.o,$^) \
		-Wl,--start-group $(MODULE_LIBS) $(SRTP_LIB) -Wl,--end-group \
		$(SYS_LIBS)
fuzz-build: $(LIBFUZZER_BINS)

fuzz: deps
	$(MAKE) -j$(NPROC) $(LIBFUZZER_VARS) fuzz-build
	$(SAN_ENV) bash tests/fuzz/run.sh build/libfuzzer/libfuzzer-bin \
		$(SECONDS)

certs:
	bash scripts/certs.sh $(BUILD)/certs

clean:
	rm -rf build/obj build/lib build/bin build/tests build/fuzz \
		build/asan build/tsan build/libfuzzer

distclean:
	rm -rf build demo-out

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
