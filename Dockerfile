# syntax=docker/dockerfile:1
# inboxmq's container image: the static binary on an empty (scratch) base,
# running as an unprivileged user (65532), the store on the /data volume.
#
#   docker build -t inboxmq .      builds the binary from source in golang:1.26;
#                                  add --build-arg VERSION=$(git describe --tags --always --dirty)
#                                  --build-arg COMMIT=$(git rev-parse HEAD)
#                                  --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
#   make image                     uses the binary built on this host by
#                                  `make build` (no base image to pull) and
#                                  builds with podman or docker
#
#   docker run -e INBOXMQ_JWT_SECRET=$(openssl rand -hex 32) \
#     -p 1883:1883 -p 8083:8083 -p 8080:8080 -v inboxmq-data:/data inboxmq
#
# Both paths fill one root filesystem with `make image-rootfs` (the
# binary, /etc/passwd and /etc/group naming the user, the CA bundle for TLS
# to Redis and webhooks, the config, /data), so they cannot drift.

ARG GO_IMAGE=golang:1.26
# Where the files come from: rootfs-source (built below) or
# rootfs-prebuilt (dist/image/rootfs, made on the host by `make image`).
ARG ROOTFS=rootfs-source

FROM ${GO_IMAGE} AS source-build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces mochi-mqtt with this patched copy (PATCHES.md there).
COPY third_party/ third_party/
RUN go mod download
COPY . .
# The build context has no .git: pass what `inboxmq version` should print.
ARG VERSION=dev
ARG COMMIT=unknown
ARG SOURCE_DATE_EPOCH=0
RUN make image-rootfs IMAGE_ROOTFS=/rootfs VERSION="$VERSION" COMMIT="$COMMIT" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH"

FROM scratch AS rootfs-source
COPY --from=source-build /rootfs/ /

FROM scratch AS rootfs-prebuilt
COPY dist/image/rootfs/ /

FROM ${ROOTFS} AS rootfs

FROM scratch
COPY --from=rootfs /inboxmq /inboxmq
COPY --from=rootfs /etc/ /etc/
# Writable by the user only here: COPY creates /data itself with --chown.
COPY --from=rootfs --chown=65532:65532 /data/ /data/
USER 65532:65532
WORKDIR /data
VOLUME /data
# MQTT, MQTT over WebSocket, HTTP (user API, /healthz, /readyz, web page).
# The admin listener (/metrics, admin API) stays on the container's
# loopback unless the config says otherwise.
EXPOSE 1883 8083 8080
# No curl in the image: the binary GETs http://127.0.0.1:8080/healthz itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/inboxmq", "healthcheck"]
ENTRYPOINT ["/inboxmq"]
CMD ["run", "--config", "/etc/inboxmq/inboxmq.yaml"]
