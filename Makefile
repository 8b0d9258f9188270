# dev8-agent build. `make help` lists the targets.
#
# Variants: the default build puts objects in build/default and binaries in
# bin/; `make SANITIZE=address,undefined <target>` builds everything with
# those sanitizers into build/san/ (binaries in build/san/bin) and runs the
# tests against that build.

SHELL := /bin/bash
CC ?= cc
PKG_CONFIG ?= pkg-config
DEPS := libuv libcurl libcjson yaml-0.1 openssl cmocka

SANITIZE ?=
RELEASE ?=
FUZZ_SECONDS ?= 30
N ?= 10000
CONVERGE_N ?= 1000
BENCH_REALISTIC_N ?= 200
# Test binaries run at once by make test/unit/integration (hack/run-tests.sh;
# the latency- and memory-bound tests always run alone).
TEST_JOBS ?= 2

WARN := -std=c11 -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
        -Wvla -Wwrite-strings -fno-common -Wshadow -Wformat=2 -Wno-format-nonliteral
CPPFLAGS_BASE := -D_GNU_SOURCE -Ipkg -MMD -MP

ifneq ($(SANITIZE),)
VARIANT := san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDSAN := -fsanitize=$(SANITIZE)
BINDIR := build/san/bin
else ifneq ($(RELEASE),)
VARIANT := release
OPT := -O2 -DNDEBUG
LDSAN := -s
BINDIR := bin
else
VARIANT := default
OPT := -O2 -g
LDSAN :=
BINDIR := bin
endif

# O=DIR puts objects and binaries under DIR (parallel builds of one tree).
O ?=
ifneq ($(O),)
BUILD := $(O)
BINDIR := $(O)/bin
else
BUILD := build/$(VARIANT)
endif
GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

DEPS_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEPS) 2>/dev/null)
DEPS_LIBS = $(shell $(PKG_CONFIG) --libs libuv libcurl libcjson yaml-0.1 openssl 2>/dev/null) -lhttp_parser -lm
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

CFLAGS ?=
CFLAGS += $(WARN) $(OPT) $(DEPS_CFLAGS) -DD8_VERSION='"$(GIT_REV)"'
CPPFLAGS += $(CPPFLAGS_BASE)
LDFLAGS += $(LDSAN)

PKG_SRCS := $(sort $(wildcard pkg/*/*.c))
PKG_OBJS := $(PKG_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libdev8.a

CMDS := $(notdir $(patsubst %/,%,$(dir $(wildcard cmd/*/main.c))))
CMD_BINS := $(CMDS:%=$(BINDIR)/%)

UNIT_SRCS := $(sort $(wildcard test/unit/*/test_*.c))
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
INTEG_SRCS := $(sort $(wildcard test/integration/test_*.c))
INTEG_HELPERS := $(sort $(filter-out $(INTEG_SRCS),$(wildcard test/integration/*.c)))
INTEG_HELPER_OBJS := $(INTEG_HELPERS:%.c=$(BUILD)/%.o)
INTEG_BINS := $(INTEG_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS := $(sort $(wildcard test/fuzz/fuzz_*.c))
BENCH_SRCS := $(sort $(wildcard test/bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:%.c=$(BUILD)/%)

# Keep test objects between runs (they are intermediate files to make).
# The prerequisites of a special target are expanded when make reads the
# line, so every variable named here must be defined above it.
.SECONDARY: $(UNIT_BINS:%=%.o) $(INTEG_BINS:%=%.o) $(BENCH_BINS:%=%.o) $(INTEG_HELPER_OBJS)

.PHONY: all test test-live test-contract unit integration run bench fuzz lint format clean help deps release image

## all: build bin/dev8-agent, bin/azsim and bin/dev8ctl (the default)
all: deps $(CMD_BINS)

deps:
	@for p in $(DEPS); do $(PKG_CONFIG) --exists $$p || { echo "missing $$p: running hack/install-deps.sh"; hack/install-deps.sh; break; }; done
	@test -f /usr/include/http_parser.h || hack/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Tests share helpers under test/helpers ("helpers/azure_opts.h").
$(BUILD)/test/%.o: CPPFLAGS += -Itest

# Objects that print the version are rebuilt when the git revision changes
# (the -D flag alone is invisible to make).
VERSION_STAMP := $(BUILD)/.version-$(subst /,_,$(GIT_REV))
$(VERSION_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/.version-*
	@touch $@
$(addprefix $(BUILD)/,pkg/webhook/webhook.o pkg/agent/agent.o pkg/api/api.o \
	pkg/azure/request.o cmd/azsim/main.o cmd/dev8-agent/main.o \
	pkg/ctl/ctl_main.o pkg/ctl/ctl_http.o pkg/ctl/ctl_cmd_info.o): $(VERSION_STAMP)

$(LIB): $(PKG_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/%: $(BUILD)/cmd/%/main.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ $(DEPS_LIBS) -o $@

$(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ $(DEPS_LIBS) $(CMOCKA_LIBS) -o $@

$(BUILD)/test/integration/%: $(BUILD)/test/integration/%.o $(INTEG_HELPER_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ $(DEPS_LIBS) $(CMOCKA_LIBS) -o $@

$(BUILD)/test/bench/%: $(BUILD)/test/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ $(DEPS_LIBS) -o $@

# The API-facing integration tests that the contract pass (hack/test-prism.sh)
# runs again through the Prism validating proxy.
CONTRACT_BINS := $(addprefix $(BUILD)/test/integration/,test_api test_watch test_reconcile)

## test: build, then run every unit and integration test (cmocka summaries), then the contract pass
# The contract pass runs first so that the suite's "N passed, N failed" is
# the last line; both run, and either failing fails the target.
ifeq ($(SANITIZE),)
CONTRACT_PASS = D8_BIN_DIR=$(BINDIR) hack/test-prism.sh $(CONTRACT_BINS)
else
CONTRACT_PASS = echo "test-contract: skipped under SANITIZE (the plain make test checks the contract)"
endif
test: all $(UNIT_BINS) $(INTEG_BINS)
	@$(CONTRACT_PASS); contract=$$?; \
	D8_TEST_JOBS=$(TEST_JOBS) D8_BIN_DIR=$(BINDIR) hack/run-tests.sh $(UNIT_BINS) $(INTEG_BINS) \
	  pkg/client/typescript/scripts/test.sh; suite=$$?; \
	if [ $$contract -ne 0 ]; then echo "make test: the contract pass failed (see above)"; fi; \
	exit $$(( contract || suite ))

## test-live: opt-in smoke test against the subscription of DEV8_LIVE_CONFIG (skipped without it)
test-live: all
	@D8_BIN_DIR=$(BINDIR) hack/test-live.sh

## test-contract: the API tests through Prism against pkg/api/openapi.yaml; fails on any violation
test-contract: all $(CONTRACT_BINS)
	@D8_BIN_DIR=$(BINDIR) hack/test-prism.sh $(CONTRACT_BINS)

## unit: run the unit tests only
unit: all $(UNIT_BINS)
	@D8_TEST_JOBS=$(TEST_JOBS) hack/run-tests.sh $(UNIT_BINS)

## integration: run the integration tests only (real binaries over HTTP)
integration: all $(INTEG_BINS)
	@D8_TEST_JOBS=$(TEST_JOBS) D8_BIN_DIR=$(BINDIR) hack/run-tests.sh $(INTEG_BINS)

## run: build, start azsim and dev8-agent on loopback, print what to curl
run: all
	@hack/run-local.sh $(BINDIR)

## bench: HTTP vs nginx, RSS per environment, Azure client vs wrk, convergence on azsim (CONVERGE_N; realistic profile: BENCH_REALISTIC_N)
bench: all $(BENCH_BINS)
	@hack/bench-http.sh $(BINDIR) $(N)
	@hack/bench-azure.sh $(BINDIR) $(BUILD)/test/bench/bench_azure
	@hack/bench-converge.sh $(BINDIR) $(CONVERGE_N)
	@BENCH_PROFILE=realistic hack/bench-converge.sh $(BINDIR) $(BENCH_REALISTIC_N)

## fuzz: build the libFuzzer targets with clang, run each FUZZ_SECONDS (default 30)
fuzz: deps
	@hack/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_SRCS)

## lint: clang-format drift, cppcheck, yamllint, manifests, Redocly lint of the API contract; fails on any finding
lint:
	@hack/lint.sh

## format: clang-format -i over pkg/ cmd/ test/ with the repository's .clang-format
format:
	@hack/format.sh

## release: optimised, stripped binaries in bin/ (--version shows the git revision)
release:
	$(MAKE) RELEASE=1 all

## image: container image IMAGE (default dev8-agent:<git revision>) with docker or podman
IMAGE ?= dev8-agent:$(GIT_REV)
image:
	@engine=$$(command -v docker || command -v podman || true); \
	if [ -z "$$engine" ]; then \
	  echo "make image: no container engine (docker or podman) on this machine; nothing built."; \
	  echo "  The Dockerfile needs only the repository: run 'docker build .' where an engine exists."; \
	  exit 1; \
	fi; \
	if ! "$$engine" info >/dev/null 2>&1; then \
	  echo "make image: $$engine is installed but its daemon does not answer; nothing built."; \
	  echo "  Start it (or point DOCKER_HOST at one) and run make image again."; \
	  exit 1; \
	fi; \
	echo "$$engine build -t $(IMAGE) --build-arg GIT_REV=$(GIT_REV) ."; \
	"$$engine" build -t "$(IMAGE)" --build-arg GIT_REV="$(GIT_REV)" .

## clean: remove build/ and bin/
clean:
	rm -rf build bin

## help: this list
help:
	@grep -hE '^## ' Makefile | sed 's/^## /  make /'
	@echo "  make SANITIZE=address,undefined test   (tests under ASan+UBSan)"

# Header dependencies (-MMD) of every object this Makefile compiles. The fuzz
# targets are not here: hack/fuzz.sh compiles them from scratch each run.
-include $(PKG_OBJS:.o=.d) $(CMDS:%=$(BUILD)/cmd/%/main.d) $(UNIT_SRCS:%.c=$(BUILD)/%.d) \
	$(INTEG_SRCS:%.c=$(BUILD)/%.d) $(INTEG_HELPER_OBJS:.o=.d) $(BENCH_SRCS:%.c=$(BUILD)/%.d)
