# inboxmq: `make run` starts a dev broker, `make test` runs every test.
GO       ?= go
BIN      := bin/inboxmq
FUZZTIME ?= 30s
# Root installs directly; anyone else goes through sudo.
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# What `inboxmq version` prints (package internal/version). DATE is the
# commit's time, or SOURCE_DATE_EPOCH when set, never "now": with
# -trimpath, two builds of one commit by one Go release are byte-identical.
VERSION           ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT            ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
DATE              ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG       := github.com/inboxmq/inboxmq/internal/version
LDFLAGS           := -s -w -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT) -X $(VERSION_PKG).date=$(DATE)
# CGO_ENABLED=0: a static binary that runs on any Linux (and FROM scratch);
# Pebble then uses the pure-Go zstd. cmd/inboxmq's TestShippedBinaryIsStatic
# builds with this target and fails if the result needs a dynamic loader.
GOBUILD           := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

# Every fuzz target as package:Name; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := \
	./bridge:FuzzParse ./bridge:FuzzAppendEnvelope ./bridge:FuzzMsgIDLiteral \
	./acl:FuzzCovers ./acl:FuzzCanRead ./acl:FuzzParseRule \
	./auth:FuzzVerify ./inbox/pebble:FuzzDecode ./inbox/redis:FuzzDecode ./broker:FuzzParseConfig ./events:FuzzParseNotice \
	./broker:FuzzRawMQTT ./inbox:FuzzDecodeSession ./cmd/inboxbench:FuzzMonitorArgs

.PHONY: help run build test bench fuzz lint check deps clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/inboxmq: static (CGO_ENABLED=0), -trimpath, version stamped
	$(GOBUILD) -o $(BIN) ./cmd/inboxmq

# release cross-builds one tarball per platform into dist/: the binary,
# README.md, LICENSE, the sample config and the systemd unit, plus
# SHA256SUMS. Tar entries are sorted, owned by root and dated
# SOURCE_DATE_EPOCH, and gzip -n drops its own timestamp, so the tarballs
# are reproducible too.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
DIST              := dist
RELEASE_FILES     := README.md LICENSE inboxmq.yaml deploy/systemd/inboxmq.service

# The container image (Dockerfile). image-rootfs lays out every file the
# image holds; the Dockerfile's from-source build runs it too. image builds
# from the binary made here, so no base image is pulled: with podman
# (installed from Debian when missing) unless a working docker is found.
IMAGE        ?= inboxmq
IMAGE_TAG    ?= $(VERSION)
IMAGE_ROOTFS ?= dist/image/rootfs
CA_BUNDLE    ?= /etc/ssl/certs/ca-certificates.crt
CONTAINER    ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)

.PHONY: image-rootfs image
image-rootfs: ## lay out the image's files in IMAGE_ROOTFS: static binary, passwd/group (user 65532), CA bundle, config, /data
	@test -s $(CA_BUNDLE) || { \
		echo "installing ca-certificates (the image's CA bundle, for TLS to Redis and webhooks)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq ca-certificates >/dev/null; }
	rm -rf $(IMAGE_ROOTFS)
	mkdir -p $(IMAGE_ROOTFS)/etc/inboxmq $(IMAGE_ROOTFS)/etc/ssl/certs $(IMAGE_ROOTFS)/data
	$(MAKE) --no-print-directory build BIN=$(IMAGE_ROOTFS)/inboxmq
	printf 'root:x:0:0:root:/root:/sbin/nologin\ninboxmq:x:65532:65532:inboxmq:/data:/sbin/nologin\n' > $(IMAGE_ROOTFS)/etc/passwd
	printf 'root:x:0:\ninboxmq:x:65532:\n' > $(IMAGE_ROOTFS)/etc/group
	cp $(CA_BUNDLE) $(IMAGE_ROOTFS)/etc/ssl/certs/ca-certificates.crt
	cp deploy/image/inboxmq.yaml $(IMAGE_ROOTFS)/etc/inboxmq/inboxmq.yaml

image: image-rootfs ## build the container image IMAGE:IMAGE_TAG (and :latest) from the binary built here, with podman or docker
	@if [ "$(CONTAINER)" = podman ] && ! command -v podman >/dev/null 2>&1; then \
		echo "installing podman"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq podman >/dev/null; fi
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) --build-arg ROOTFS=rootfs-prebuilt \
		-t $(IMAGE):$(IMAGE_TAG) -t $(IMAGE):latest .

# The image test builds the image with `make image` and podman, runs it
# (podman run with runc and this machine's own limits; see
# deploy/image_test.go) against real MQTT clients, and also runs the binary
# from the image's exported filesystem. Not part of `make test`: installing
# podman alone takes about a minute on a fresh machine.
.PHONY: test-image
test-image: ## build the container image with podman and run it against real clients (installs podman and runc when missing)
	@command -v podman >/dev/null 2>&1 || { \
		echo "installing podman"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq podman >/dev/null; }
	@command -v runc >/dev/null 2>&1 || test -x /usr/sbin/runc || { \
		echo "installing runc (podman's crun refuses this machine's hybrid cgroups)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq runc >/dev/null; }
	$(GO) test -tags image -race -count=1 -timeout 15m -run '^TestImage$$' -v ./deploy

.PHONY: release
release: ## cross-build linux/amd64 and linux/arm64 tarballs with SHA256SUMS into dist/
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=inboxmq-$(VERSION)-$$os-$$arch; dir=$(DIST)/$$name; \
		echo "== $$name"; \
		mkdir -p $$dir; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $$dir/inboxmq ./cmd/inboxmq; \
		for f in $(RELEASE_FILES); do mkdir -p $$dir/$$(dirname $$f); cp $$f $$dir/$$f; done; \
		tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
			-C $(DIST) -cf $$dir.tar $$name; \
		gzip -n -9 $$dir.tar; \
		rm -rf $$dir; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS && sha256sum -c SHA256SUMS

run: build ## run a dev broker on the embedded store (inboxmq.dev.yaml, DEV secrets)
	@echo "inboxmq dev broker: mqtt://127.0.0.1:1883  ws://127.0.0.1:8083/mqtt  http://127.0.0.1:8080/healthz"
	@echo "admin listener (metrics, admin API): http://127.0.0.1:9090/metrics"
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

deps: ## install what the tests need when missing (mosquitto-clients, redis-server, systemd-analyze, haproxy, node, python3-paho-mqtt, a JDK, php-cli, curl, promtool)
	@command -v mosquitto_pub >/dev/null 2>&1 || { \
		echo "installing mosquitto-clients"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto-clients >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || { \
		echo "installing redis-server (the Redis store's tests start their own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		echo "installing systemd (for systemd-analyze, which checks deploy/systemd/inboxmq.service; nothing is started)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq systemd >/dev/null; }
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { \
		echo "installing haproxy (deploy's tests run deploy/compose/haproxy.cfg; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq haproxy >/dev/null; }
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "installing nodejs and npm (the web client's tests and examples/node)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	@/usr/bin/python3 -c 'import paho.mqtt.client' 2>/dev/null || { \
		echo "installing python3-paho-mqtt (examples/python; PyPI is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 python3-paho-mqtt >/dev/null; }
	@command -v java >/dev/null 2>&1 || { \
		echo "installing a JDK (examples/java/MintToken.java, the Java token minting of docs/clients.md)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq default-jdk-headless >/dev/null; }
	@command -v curl >/dev/null 2>&1 || { \
		echo "installing curl (examples/docs_test.go runs the curl examples of docs/api.md)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq curl >/dev/null; }
	@command -v php >/dev/null 2>&1 || { \
		echo "installing php-cli (examples/php/mint_token.php, the PHP token minting of docs/clients.md)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq php-cli >/dev/null; }
	@command -v promtool >/dev/null 2>&1 || { \
		echo "installing prometheus (for promtool, which checks deploy/prometheus/alerts.yml and the dashboard's queries; the service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus >/dev/null; }

# The client examples of docs/clients.md; mqtt is pinned in
# examples/node/package-lock.json, installed by npm ci when missing or
# older than the lock file.
EXAMPLES_NODE := examples/node

$(EXAMPLES_NODE)/node_modules/.package-lock.json: $(EXAMPLES_NODE)/package.json $(EXAMPLES_NODE)/package-lock.json
	cd $(EXAMPLES_NODE) && npm ci --no-audit --no-fund

# INBOXMQ_REQUIRE_EXAMPLES=1: examples/examples_test.go fails, not skips,
# when node, its npm packages or python3's paho-mqtt are missing, and
# deploy/prometheus_test.go when promtool is.
test: deps $(EXAMPLES_NODE)/node_modules/.package-lock.json ## run every test with the race detector (also runs the fuzz seeds)
	INBOXMQ_REQUIRE_EXAMPLES=1 $(GO) test -race -count=1 -timeout 20m ./...
	cd third_party/mochi-mqtt-server && $(GO) test -race -count=1 -run '^TestPatch' .  # our mochi patches (its own module)
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
bench: ## run the Go micro-benchmarks, then inboxbench: inboxmq vs Mosquitto (installed when missing), 3 alternating rounds of each messaging scenario
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
		echo "installing mosquitto"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (the scale scenario starts its own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	$(GO) run ./cmd/inboxbench -broker both -scenario all -rounds 3 -duration 10s

.PHONY: bench-quick
bench-quick: ## inboxbench -quick against both brokers (about a minute)
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
		echo "installing mosquitto"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (the scale scenario starts its own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	$(GO) run ./cmd/inboxbench -broker both -scenario all -quick

# bench-pinned: the broker on CPU 1 and the harness on CPU 0 (taskset, from
# util-linux), beside the same runs co-located; both brokers, alternating.
.PHONY: bench-pinned
bench-pinned: ## broker CPU per message and throughput, co-located and pinned (taskset: broker CPU 1, harness CPU 0), 3 alternating rounds
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
		echo "installing mosquitto"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }
	@command -v taskset >/dev/null 2>&1 || { \
		echo "installing util-linux (taskset)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq util-linux >/dev/null; }
	$(GO) run ./cmd/inboxbench -broker both -scenario dm,offline,fanout -rounds 3 -duration 10s -placement both

.PHONY: bench-redis
bench-redis: ## what one direct message costs Redis: commands, round trips, Redis CPU, by origin (inboxbench -scenario rediscost, about 5 min)
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (the harness starts its own; the system service is not used)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	$(GO) run ./cmd/inboxbench -broker inboxmq -scenario rediscost -users 1000 -senders 100 -messages 5000

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
	rm -rf bin data dist
