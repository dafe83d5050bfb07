# vsockfw: AssemblyScript -> wasm (asc) -> C (wasm2c) -> clang -> ld.lld + nasm reset vector -> pflash image.
# `make run` builds and boots it; `make test` runs every test. Both install what is missing first.

BUILD ?= build
FLASH_SIZE ?= 2M
LOG_LEVEL ?= 2
TRACE ?= 0
SELFTEST ?= 0
MAX_CONNECTIONS ?= 64
QUEUE_SIZE_MAX ?= 128
LINEAR_MEMORY_MIB ?= 32
BUILD_ID ?= $(shell date +%y%m%d%H%M)

ASC := node_modules/.bin/asc
AS_SOURCES := $(shell find assembly -name '*.ts')
ASC_DEFINES = --use LOG_LEVEL=$(1) --use SELFTEST=$(SELFTEST) --use MAX_CONNECTIONS=$(MAX_CONNECTIONS) \
	--use QUEUE_SIZE_MAX=$(QUEUE_SIZE_MAX) --use TRACE=$(TRACE) --use BUILD_ID=$(BUILD_ID)
LINEAR_PAGES := $(shell echo $$(( $(LINEAR_MEMORY_MIB) * 16 )))

.PHONY: all setup wasm unit-wasm
all: wasm

setup:
	@tools/setup.sh

# The firmware's wasm, and the one the unit tests load (debug log level, same code).
wasm: $(BUILD)/firmware.wasm
$(BUILD)/firmware.wasm: $(AS_SOURCES) asconfig.json
	@mkdir -p $(BUILD)
	$(ASC) assembly/main.ts --config asconfig.json --target firmware $(call ASC_DEFINES,$(LOG_LEVEL)) \
		--maximumMemory $(LINEAR_PAGES) -o $@ -t $(BUILD)/firmware.wat

unit-wasm: build/unit/firmware.wasm
build/unit/firmware.wasm: $(AS_SOURCES) asconfig.json
	@mkdir -p build/unit
	$(ASC) assembly/main.ts --config asconfig.json --target unit $(call ASC_DEFINES,3) \
		--maximumMemory $(LINEAR_PAGES) -o $@
