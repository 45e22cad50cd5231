# The shim (issue 3): libllmguard.so = the hooks in shim/ + the engine
# objects (already -fPIC) + the event emitter, exporting only the hooked
# libc names (shim/exports.map).  llmguard-run is an ordinary tool (the
# generic tools rule builds it); it gets the install libdir compiled in as
# its last place to look for the library.  Integration helpers prefixed
# shim_ are built into $(BUILD)/tests/.
SHIM_PLATFORM := linux
SHIM_SRC := $(filter-out shim/interpose_%.c shim/emit.c,$(sort $(wildcard shim/*.c))) \
            shim/interpose_$(SHIM_PLATFORM).c
SHIM_OBJ := $(SHIM_SRC:%.c=$(BUILD)/%.o) $(BUILD)/shim/emit.o
SHIM_LIB := $(BUILD)/libllmguard.so
SHIM_HELPERS := $(BUILD)/tests/shim_matrix $(BUILD)/tests/shim_fdreuse \
                $(BUILD)/tests/shim_stress $(BUILD)/tests/shim_static
EXTRA_ALL += $(SHIM_LIB) $(SHIM_HELPERS)

$(SHIM_LIB): $(SHIM_OBJ) $(CORE_OBJ) shim/exports.map
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -shared -Wl,-z,defs \
	  -Wl,--version-script=shim/exports.map -o $@ $(SHIM_OBJ) $(CORE_OBJ) \
	  $(LG_LDLIBS) -ldl

$(BUILD)/tools/llmguard-run.o: LG_CFLAGS += -DLG_LIBDIR='"$(libdir)"'

$(BUILD)/tests/shim_%: tests/integration/shim_%.c tests/integration/shim_common.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LG_CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

# A statically linked program, for llmguard-run's "cannot guard" warning.
$(BUILD)/tests/shim_static: tests/integration/shim_hello.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -static -o $@ $< 2>/dev/null || \
	  { echo "note: no static libc; $@ is a script stand-in" >&2; \
	    printf '#!/bin/sh\necho static-unavailable\n' > $@; chmod +x $@; }

-include $(SHIM_OBJ:.o=.d)
