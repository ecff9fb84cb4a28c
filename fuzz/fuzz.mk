# fuzz/fuzz.mk: builds and runs the libFuzzer targets (GNU make).
#
# `make fuzz` and `make fuzz-regress` in the build directory call this with
# srcdir, out and the dependencies' flags from configure; it also works by
# itself from the top source directory:
#   make -f fuzz/fuzz.mk fuzz FUZZ_SECONDS=60
#
# The library sources are compiled once more with clang and libFuzzer's
# instrumentation (whatever CC configure chose), into $(out); each target
# links what it needs from that archive.  The committed corpus in
# fuzz/corpus/<target>/ is only read: a run adds what it finds to
# $(out)/corpus/<target>/, and crashes land in $(out)/crashes/<target>/.

srcdir ?= .
out ?= fuzz-build
FUZZ_CC ?= clang
FUZZ_AR ?= ar
FUZZ_SECONDS ?= 30
# Anything else for every run, e.g. FUZZ_FLAGS=-jobs=2
FUZZ_FLAGS ?=
# One line: run-tests.sh reads the list with sed.
FUZZ_TARGETS = fuzz_sse fuzz_channel fuzz_json fuzz_config fuzz_path fuzz_argv fuzz_url

DEP_PKGS = libcurl libcjson sqlite3 uuid libconfig
DEP_CFLAGS ?= $(shell pkg-config --cflags $(DEP_PKGS))
DEP_LIBS ?= $(shell pkg-config --libs $(DEP_PKGS))
# The library's .c files; Makefile.am passes libegressd_a_SOURCES.
LIB_SOURCES ?= $(patsubst $(srcdir)/%,%,$(wildcard $(srcdir)/src/*/*.c))

FUZZ_SANITIZE = address,undefined
FUZZ_CPPFLAGS = -I$(srcdir)/include -D_GNU_SOURCE \
	-DSYSCONFDIR='"/etc"' -DLOCALSTATEDIR='"/var"' -DRUNSTATEDIR='"/run"'
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter
# Exits non-zero on the first crash, leak, sanitizer report or 10 s hang.
FUZZ_RUN_FLAGS = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
# Leaks inside libconfig itself are suppressed (see the file).
FUZZ_ENV = LSAN_OPTIONS=suppressions=$(srcdir)/fuzz/lsan.supp:print_suppressions=0

LIB_OBJS = $(patsubst %.c,$(out)/obj/%.o,$(filter-out \
	src/master/main.c src/ctl/egressctl.c,$(filter %.c,$(LIB_SOURCES))))
LIB = $(out)/libegressd-fuzz.a
BINS = $(addprefix $(out)/,$(FUZZ_TARGETS))

.PHONY: fuzz-build fuzz fuzz-regress $(addprefix fuzz-run-,$(FUZZ_TARGETS)) \
	$(addprefix fuzz-regress-,$(FUZZ_TARGETS))
.SUFFIXES:

fuzz-build: $(BINS)

$(out)/obj/%.o: $(srcdir)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SANITIZE) \
	    $(FUZZ_CPPFLAGS) $(DEP_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	rm -f $@
	$(FUZZ_AR) cr $@ $(LIB_OBJS)

$(out)/fuzz_%: $(srcdir)/fuzz/fuzz_%.c $(LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SANITIZE) \
	    $(FUZZ_CPPFLAGS) $(DEP_CFLAGS) -MMD -MP $< $(LIB) $(DEP_LIBS) \
	    -o $@

-include $(LIB_OBJS:.o=.d) $(BINS:=.d)

# Each target alone, one after the other (-jobs=1: the cores are shared).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    $(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory \
	        fuzz-run-$$t || exit 1; \
	done

# The dictionary, when the target has one.
fuzz_dict = $(if $(wildcard $(srcdir)/fuzz/$(1).dict),\
	-dict=$(srcdir)/fuzz/$(1).dict)

$(addprefix fuzz-run-,$(FUZZ_TARGETS)): fuzz-run-%: $(out)/%
	@mkdir -p $(out)/corpus/$* $(out)/crashes/$*
	@echo "== $*: $(FUZZ_SECONDS) s"
	$(FUZZ_ENV) $(out)/$* -max_total_time=$(FUZZ_SECONDS) $(FUZZ_RUN_FLAGS) \
	    $(call fuzz_dict,$*) -artifact_prefix=$(out)/crashes/$*/ \
	    $(FUZZ_FLAGS) $(out)/corpus/$* $(srcdir)/fuzz/corpus/$*

# Every committed seed and regression input, run once each (for CI).
fuzz-regress: $(addprefix fuzz-regress-,$(FUZZ_TARGETS))

fuzz_inputs = $(wildcard $(srcdir)/fuzz/corpus/$(1)/* \
	$(srcdir)/fuzz/regress/$(1)/*)

# Without file arguments libFuzzer would fuzz forever: none, nothing to do.
$(addprefix fuzz-regress-,$(FUZZ_TARGETS)): fuzz-regress-%: $(out)/%
	@echo "== $*: replaying $(words $(call fuzz_inputs,$*)) inputs"
	@$(if $(call fuzz_inputs,$*),$(FUZZ_ENV) $(out)/$* -timeout=10 \
	    $(call fuzz_inputs,$*) > $(out)/$*.regress.log 2>&1 || \
	    { cat $(out)/$*.regress.log; exit 1; },true)
