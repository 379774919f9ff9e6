# sketchd container image: a static binary on scratch, non-root, data in
# /data. Build: docker build -t sketchd . (or podman build). See
# docs/container.md; scripts/image-local.sh builds the same final image
# from a locally built binary without pulling anything.

# ---- build: a static binary (no cgo), reproducible paths.
ARG GO_VERSION=1.26
FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/sketchd ./cmd/sketchd \
 && mkdir -p /out/data

# ---- final: nothing but the binary, CA certificates (for NATS TLS) and an
# empty /data owned by the runtime user.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/sketchd /sketchd
COPY --from=build --chown=65532:65532 /out/data /data
# Inside the container sketchd listens on every interface (the binary's
# defaults are loopback only); publish the ports to 127.0.0.1 on the host,
# or set tokens (SKETCHD_READ_TOKEN, SKETCHD_ADMIN_TOKEN) before exposing
# them further. The embedded NATS has no authentication.
ENV SKETCHD_DATA_DIR=/data \
    SKETCHD_HTTP_ADDR=0.0.0.0:8080 \
    SKETCHD_NATS_LISTEN=0.0.0.0:4222
USER 65532:65532
VOLUME /data
EXPOSE 8080 4222
# `sketchd healthcheck` GETs /livez of the address in $SKETCHD_HTTP_ADDR;
# scratch has no shell and no curl.
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
  CMD ["/sketchd", "healthcheck"]
ENTRYPOINT ["/sketchd"]
