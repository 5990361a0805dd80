# inboxmq: `make run` starts a dev broker, `make test` runs every test.
GO       ?= go
BIN      := bin/inboxmq
FUZZTIME ?= 30s
# Root installs directly; anyone else goes through sudo.
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Every fuzz target as package:Name; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := \
	./bridge:FuzzParse ./bridge:FuzzAppendEnvelope ./bridge:FuzzMsgIDLiteral \
	./acl:FuzzCovers ./acl:FuzzCanRead ./acl:FuzzParseRule \
	./auth:FuzzVerify ./inbox/pebble:FuzzDecode ./inbox/redis:FuzzDecode ./broker:FuzzParseConfig ./events:FuzzParseNotice \
	./broker:FuzzRawMQTT ./inbox:FuzzDecodeSession

.PHONY: help run build test bench fuzz lint check deps clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/inboxmq
	$(GO) build -o $(BIN) ./cmd/inboxmq

run: build ## run a dev broker on the embedded store (inboxmq.dev.yaml, DEV secrets)
	@echo "inboxmq dev broker: mqtt://127.0.0.1:1883  ws://127.0.0.1:8083/mqtt  http://127.0.0.1:8080/healthz"
	@echo "web client (dev login on): http://127.0.0.1:8080/"
	@echo "DEV ONLY: inboxmq.dev.yaml holds a public secret and public passwords."
	@echo
	@echo "Try it in another terminal (mosquitto-clients: apt-get install mosquitto-clients):"
	@echo "  # a token for user 10021, and listen to its inbox with a persistent session"
	@echo "  T=\$$($(BIN) token --config inboxmq.dev.yaml --uid 10021 --nickname Bob)"
	@echo "  mosquitto_sub -h 127.0.0.1 -u 10021 -P \"\$$T\" -i 10021 -c -q 1 -t inbox/10021 -v"
	@echo "  # user 10001 sends 10021 a message"
	@echo "  mosquitto_pub -h 127.0.0.1 -u 10001 -P \"\$$($(BIN) token --config inboxmq.dev.yaml --uid 10001 --nickname 张三)\" \\"
	@echo "    -q 1 -t im/sendmsg -m '{\"uid\":10021,\"msg\":\"你好\"}'"
	@echo "  # the admin sends a notice to everyone (subscribers of 'broadcast')"
	@echo "  mosquitto_pub -h 127.0.0.1 -u admin -P dev-admin-password -q 1 -t im/systemadmin -m '{\"content\":\"hello all\"}'"
	@echo
	$(BIN) --config inboxmq.dev.yaml

deps: ## install what the tests need when missing (mosquitto-clients, redis-server)
	@command -v mosquitto_pub >/dev/null 2>&1 || { \
		echo "installing mosquitto-clients"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto-clients >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || { \
		echo "installing redis-server (the Redis store's tests start their own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

test: deps ## run every test with the race detector (also runs the fuzz seeds)
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) test-web

# The web client's browser tests: playwright-core (pinned in
# web/e2e/package-lock.json) drives Debian's chromium; Playwright's own
# browser download is never used. Screenshots land in artifacts/web/.
CHROMIUM ?= /usr/bin/chromium
WEB_E2E  := web/e2e

.PHONY: test-web
test-web: deps build $(WEB_E2E)/node_modules/.package-lock.json ## run the web client's tests in headless Chromium (installs chromium and the npm packages when missing)
	@test -x $(CHROMIUM) || { \
		echo "installing chromium"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	cd $(WEB_E2E) && INBOXMQ_BIN=$(CURDIR)/$(BIN) CHROMIUM=$(CHROMIUM) node --test --test-concurrency=1

# npm ci when node_modules is missing or older than the lock file.
$(WEB_E2E)/node_modules/.package-lock.json: $(WEB_E2E)/package.json $(WEB_E2E)/package-lock.json
	cd $(WEB_E2E) && npm ci --no-audit --no-fund

# bench also runs cmd/inboxbench against inboxmq and a Mosquitto 2.0.11 that
# the harness starts itself on a free loopback port; the system service that
# Debian's package may start is neither used nor needed.
bench: ## run the Go micro-benchmarks, then inboxbench: inboxmq vs Mosquitto (installed when missing), about 9 min
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
		echo "installing mosquitto"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (the scale scenario starts its own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	$(GO) run ./cmd/inboxbench -broker both -scenario all

.PHONY: bench-quick
bench-quick: ## inboxbench -quick against both brokers (about a minute)
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
		echo "installing mosquitto"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (the scale scenario starts its own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	$(GO) run ./cmd/inboxbench -broker both -scenario all -quick

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x $$pkg; \
	done

# The crash test runs the real binary and kills it with SIGKILL at random
# moments while senders push QoS 1 messages to online and offline users; it
# fails on any PUBACKed message lost or reordered. A short variant
# (TestCrash_Short, 20 users, 3 kills) runs in `make test`.
.PHONY: test-crash
test-crash: ## crash safety, long: 200 users, 10 SIGKILLs, counts lost/reordered/duplicate messages (a few minutes)
	$(GO) test -tags crashlong -race -count=1 -timeout 30m -run '^TestCrash_Long$$' -v ./cmd/inboxmq

# The soak runs the real binary (no race detector, so memory figures are
# real) for INBOXMQ_SOAK_DURATION and prints RSS, heap, goroutines, fds,
# clients and subscriptions every INBOXMQ_SOAK_SAMPLE. Not part of CI.
INBOXMQ_SOAK_DURATION ?= 30m
INBOXMQ_SOAK_SAMPLE   ?= 1m
.PHONY: soak
soak: ## soak for INBOXMQ_SOAK_DURATION (30m): churn, chat, broadcasts, a slow consumer; checks for leaks
	INBOXMQ_SOAK_DURATION=$(INBOXMQ_SOAK_DURATION) INBOXMQ_SOAK_SAMPLE=$(INBOXMQ_SOAK_SAMPLE) \
		$(GO) test -tags soak -count=1 -timeout 24h -run '^TestSoak$$' -v ./cmd/inboxmq

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

check: lint test ## lint and test

clean: ## remove build output and the dev data dir
	rm -rf bin data
