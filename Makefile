# kscope: the two set-up commands are `make demo` and `make check` (see README).
# Both install missing Debian packages first (as root), then build with CMake into build/.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
KSCOPE := $(BUILD_DIR)/kscope

.PHONY: all build deps deps-check deps-bench configure demo check check-sanitize fuzz fuzz-smoke soak format format-check unit-test runtime-test bench fault-patterns studies clean

all: build

deps:
	@scripts/deps.sh build

deps-check:
	@scripts/deps.sh check

deps-bench:
	@scripts/deps.sh bench

$(BUILD_DIR)/CMakeCache.txt:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) > $(BUILD_DIR).configure.log 2>&1 || \
		{ cat $(BUILD_DIR).configure.log; exit 1; }

configure: $(BUILD_DIR)/CMakeCache.txt

build: deps configure
	@cmake --build $(BUILD_DIR) -j$(JOBS) -- --no-print-directory

# The main job on the built-in workload: a summary and per-segment plots of its page faults.
demo: build
	@$(KSCOPE) faults --by-segment -- $(BUILD_DIR)/progs/faultprog demo

check: deps-check format-check build
	@cd $(BUILD_DIR) && { ctest --output-on-failure -j1 --timeout 300 || \
		{ $(CURDIR)/scripts/test-failures.sh .; exit 1; }; }

# The C++ tree (not bpf/, which is kernel C style) must be clang-formatted: `make format` fixes it.
CXX_SOURCES = $(shell git ls-files '*.cpp' '*.h' 2>/dev/null | grep -v '^bpf/')
format-check:
	@clang-format --dry-run --Werror $(CXX_SOURCES) || \
		{ echo "kscope: C++ sources are not clang-formatted; run 'make format'" >&2; exit 1; }

format:
	@clang-format -i $(CXX_SOURCES)

# The unit tests, and the runtime tests when root, built with AddressSanitizer + UBSan into
# build-sanitize/: any report (leaks included) fails the test that made it (docs/RELIABILITY.md).
SANITIZE_DIR ?= build-sanitize
SANITIZE_RUNTIME ?= all
check-sanitize: deps-check
	@scripts/check-sanitize.sh $(SANITIZE_DIR) $(JOBS) $(SANITIZE_RUNTIME)

# libFuzzer targets for every parser of untrusted input (tests/fuzz/), built with clang into
# the sanitizer build's directory (one compile serves both), each run for FUZZ_SECONDS from its
# seed corpus; any crash fails.
FUZZ_DIR ?= $(SANITIZE_DIR)
FUZZ_SECONDS ?= 60
fuzz: deps-check
	@scripts/fuzz.sh $(FUZZ_DIR) $(JOBS) $(FUZZ_SECONDS)

fuzz-smoke: deps-check
	@scripts/fuzz.sh $(FUZZ_DIR) $(JOBS) 15

# kscope top (live screen in tmux) and kscope faults -p on a churning workload for SOAK_SECONDS:
# RSS, fds and BPF map memory must stay flat after the warm-up (root; docs/RELIABILITY.md).
SOAK_SECONDS ?= 600
soak: build
	@scripts/soak.sh $(BUILD_DIR) $(SOAK_SECONDS)

unit-test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -LE runtime

runtime-test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L runtime

bench: deps-bench build
	@bench/run.sh

# Re-traces the real programs of docs/fault-patterns.md and rewrites its figures (root).
fault-patterns: build
	@scripts/deps.sh fault-patterns
	@scripts/fault-patterns.sh

# The two kscope monitor case studies at full size, into docs/studies/ (thrashing needs root; it
# sets up a memory cgroup and zram swap and restores both).
studies: build
	@$(KSCOPE) study locality --out docs/studies > /dev/null
	@$(KSCOPE) study thrashing --out docs/studies > /dev/null
	@$(KSCOPE) study thrashing --swap file --out docs/studies/swap-file > /dev/null
	@rm -f docs/studies/.*.out docs/studies/.*.log docs/studies/swap-file/.*.out docs/studies/swap-file/.*.log
	@echo "studies: written to docs/studies/" >&2

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log $(SANITIZE_DIR) $(FUZZ_DIR)
