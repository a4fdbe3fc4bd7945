# Revirt: thin wrapper around Meson/Ninja and the test scripts. See README.md.
BUILD ?= build

.PHONY: all deps build check test bench demo shell clean

all: build

deps:
	@tests/tools/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Fast subset: normal build, unit + guest suites, style and rule checks.
check: build
	QUICK=1 tests/tools/run-all.sh

# Everything, including the ASan/UBSan build, fuzzing and the nested lab.
test: deps
	tests/tools/run-all.sh

# exitloop on this host; boot and virtio I/O (revirter against QEMU) in the nested lab.
bench: build
	GUEST_DIR=$(BUILD)/tests/guests $(BUILD)/bench/exitloop
	bench/launch.sh $(BUILD)
	bench/boot.sh $(BUILD)
	bench/io.sh $(BUILD)

demo: build
	tests/tools/demo.sh $(BUILD)

shell: build
	tests/tools/demo.sh $(BUILD) shell

clean:
	rm -rf $(BUILD) build-san
