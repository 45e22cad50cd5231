# Collector, llmguard-log and the event emitter (issue 4).
# The emitter is I/O, so it lives in shim/ but every tool and the unit-test
# runner link it.  The zero-loss test's writer is built here so that it
# uses exactly the emitter object the shim uses.
TOOL_EXTRA_OBJ += $(BUILD)/shim/emit.o
COLLECTOR_HELPERS := $(BUILD)/tests/collector_writer
EXTRA_ALL += $(COLLECTOR_HELPERS)

$(BUILD)/tests/collector_writer: $(BUILD)/tests/integration/collector_writer.o $(BUILD)/shim/emit.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ -lpthread

-include $(BUILD)/shim/emit.d $(BUILD)/tests/integration/collector_writer.d
