# llmguard — plain Makefile.  User CFLAGS/LDFLAGS are left alone; project
# flags live in LG_CFLAGS.  Objects go under $(BUILD) so that the sanitizer
# build (make asan) can sit beside the normal one.

PREFIX     ?= /usr/local
bindir     ?= $(PREFIX)/bin
libdir     ?= $(PREFIX)/lib
mandir     ?= $(PREFIX)/share/man
# systemd looks in /usr/local/lib/systemd/{user,system} as well as /usr/lib.
unitdir    ?= $(libdir)/systemd
sysconfdir ?= /etc
DESTDIR    ?=

CC      ?= cc
CFLAGS  ?= -O2 -g
BUILD   ?= build
WERROR  ?=
SAN     ?=

PKGS      := libcjson libpcre2-8 libbsd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

LG_WARN   := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes \
             -Wstrict-prototypes -Wno-unused-parameter
LG_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC $(LG_WARN) $(WERROR) $(SAN) \
             -Icore -Ishim -Itools/common $(PKG_CFLAGS)
LG_LDLIBS := $(PKG_LIBS) -lpthread

# ==== Sources ====
# Every core/*.c is part of the engine; every tools/<prog>.c with a main()
# becomes a program; tools/common/*.c is linked into every program;
# tests/unit/test_*.c are Criterion suites linked into one runner.
CORE_SRC   := $(sort $(wildcard core/*.c))
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
CORE_LIB   := $(BUILD)/libllmguard-core.a
COMMON_SRC := $(sort $(wildcard tools/common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC   := $(sort $(wildcard tools/llmguard-*.c))
TOOLS      := $(TOOL_SRC:tools/%.c=$(BUILD)/%)
UNIT_SRC   := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(BUILD)/tests/unit-tests
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/*_fuzz.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/%_fuzz.c=%)
REPLAY     := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%-replay)
MAN_SRC    := $(sort $(wildcard docs/man/*.[1-8]))

.PHONY: all check unit asan fuzz fuzz-replay bench install uninstall clean \
        deps test-deps demo eval dist integration
all: $(CORE_LIB) $(TOOLS) extra-all

# Modules added by other parts of the project (shim, collector) hook in here.
EXTRA_ALL :=
EXTRA_CHECK :=
-include mk/*.mk
extra-all: $(EXTRA_ALL)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LG_CFLAGS) -MMD -MP -c $< -o $@

$(CORE_LIB): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/llmguard-%: $(BUILD)/tools/llmguard-%.o $(COMMON_OBJ) $(CORE_LIB) $(TOOL_EXTRA_OBJ)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $< $(COMMON_OBJ) $(TOOL_EXTRA_OBJ) $(CORE_LIB) $(LG_LDLIBS)

# ==== Tests ====
$(UNIT_BIN): $(UNIT_OBJ) $(CORE_LIB) $(TOOL_EXTRA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(TOOL_EXTRA_OBJ) $(CORE_LIB) $(LG_LDLIBS) -lcriterion

unit: $(UNIT_BIN)
	$(UNIT_BIN) --jobs 2

# The fuzz targets also build without libFuzzer: tests/fuzz/replay_main.c
# feeds every file of the seed corpus to LLVMFuzzerTestOneInput.
$(BUILD)/fuzz/%-replay: $(BUILD)/tests/fuzz/%_fuzz.o $(BUILD)/tests/fuzz/replay_main.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(LG_LDLIBS)

fuzz-replay: $(REPLAY)
	@set -e; for n in $(FUZZ_NAMES); do \
	  $(BUILD)/fuzz/$$n-replay tests/fuzz/corpus/$$n; done

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) BUILD=build/asan SAN="$(ASAN_FLAGS)" CFLAGS="-O1 -g" \
	  $(if $(WERROR),WERROR=$(WERROR)) build/asan/tests/unit-tests fuzz-replay
	ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  build/asan/tests/unit-tests --jobs 2

# Real libFuzzer builds (clang); run e.g. build/libfuzzer/http -max_total_time=60.
FUZZ_CC := clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined
fuzz: $(FUZZ_NAMES:%=build/libfuzzer/%)
build/libfuzzer/%: tests/fuzz/%_fuzz.c $(CORE_SRC) $(wildcard core/packs/*.json)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -std=c11 -D_GNU_SOURCE -Icore $(PKG_CFLAGS) \
	  -o $@ $< $(CORE_SRC) $(LG_LDLIBS)

integration: all
	@bash tests/integration/run.sh $(BUILD)

# `make check` is the README's test command and what CI runs.
check: deps test-deps all unit fuzz-replay asan integration $(EXTRA_CHECK)

bench:
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench/bench_core
	@bash scripts/bench.sh $(BUILD)

eval: all
	@bash scripts/eval.sh $(BUILD)

demo:
	@bash scripts/deps.sh demo
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh $(BUILD)

# Install what is missing (Debian; root or sudo).  No-op when all present.
deps:
	@bash scripts/deps.sh build
test-deps:
	@bash scripts/deps.sh test

# ==== Install ====
install: all
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir)/llmguard \
	  $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5
	for t in $(TOOLS); do install -m 755 $$t $(DESTDIR)$(bindir)/; done
	$(if $(SHIM_LIB),install -m 755 $(SHIM_LIB) $(DESTDIR)$(libdir)/llmguard/)
	for m in $(MAN_SRC); do \
	  s=$${m##*.}; install -d $(DESTDIR)$(mandir)/man$$s; \
	  install -m 644 $$m $(DESTDIR)$(mandir)/man$$s/; done
	for k in user system; do \
	  install -d $(DESTDIR)$(unitdir)/$$k; \
	  for u in etc/systemd/$$k/*; do \
	    sed 's|/usr/local/bin/|$(bindir)/|' $$u > $(DESTDIR)$(unitdir)/$$k/$${u##*/}; \
	    chmod 644 $(DESTDIR)$(unitdir)/$$k/$${u##*/}; done; done

uninstall:
	for t in $(TOOLS); do rm -f $(DESTDIR)$(bindir)/$${t##*/}; done
	rm -rf $(DESTDIR)$(libdir)/llmguard
	for m in $(MAN_SRC); do \
	  s=$${m##*.}; rm -f $(DESTDIR)$(mandir)/man$$s/$${m##*/}; done
	for k in user system; do for u in etc/systemd/$$k/*; do \
	  rm -f $(DESTDIR)$(unitdir)/$$k/$${u##*/}; done; done

VERSION := $(shell sed -n 's/^\#define LG_VERSION "\(.*\)"/\1/p' core/version.h)
dist:
	git archive --prefix=llmguard-$(VERSION)/ -o llmguard-$(VERSION).tar.gz HEAD

clean:
	rm -rf build

-include $(CORE_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(COMMON_OBJ:.o=.d)

# ==== Benchmarks ====
$(BUILD)/bench/%: tests/bench/%.c $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LG_CFLAGS) $(LDFLAGS) -o $@ $< $(CORE_LIB) $(LG_LDLIBS)

# The built-in packs are pulled in by .incbin, which -MMD cannot see.
$(BUILD)/core/packs.o: $(wildcard core/packs/*.json)
