# The eci image, for users with Docker. It holds the same files at the same paths as
#     go run ./hack/mkimage eci -bin bin -tag ghcr.io/eci-dev/eci:VERSION -o eci.tar
# which is how the eci dev machines (no container engine) build it:
#     /usr/local/bin/eci-node         entrypoint (DaemonSet)
#     /usr/local/bin/eci-controller   the controller Deployment's command
#     /opt/eci-artifacts/eci-runtime  copied to each node by eci-node
#     /opt/eci-artifacts/runc         pinned runc, static, with seccomp
#     /etc/passwd, /etc/group, /tmp (1777); no shell
# eci-node and eci-controller are built only if their cmd/ directory exists.
#
#     docker build -t ghcr.io/eci-dev/eci:dev \
#         --build-arg VERSION=dev --build-arg COMMIT="$(git rev-parse HEAD)" .
#
# The defaults of the version arguments match hack/versions.env; keep them in step.
# Builds for the platform of the builder (runc needs cgo, so no cross-compiling here).

ARG GO_IMAGE=golang:1.26.8-bookworm

# --- runc: as hack/build-runc.sh builds it (static, seccomp, against libseccomp-dev) ---
FROM ${GO_IMAGE} AS runc
ARG RUNC_VERSION=v1.5.3
# Debian 12's exact package version; set it empty to take whatever bookworm has.
ARG LIBSECCOMP_DEV_VERSION=2.5.4-1+deb12u1
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        gcc libc6-dev pkg-config "libseccomp-dev${LIBSECCOMP_DEV_VERSION:+=$LIBSECCOMP_DEV_VERSION}"; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /tmp
# Outside any module: runc@version builds with runc's own go.mod.
RUN CGO_ENABLED=1 GOBIN=/out GOFLAGS=-buildvcs=false go install -trimpath \
        -tags "seccomp netgo osusergo urfave_cli_no_docs" \
        -ldflags "-X main.gitCommit=${RUNC_VERSION} -extldflags -static" \
        "github.com/opencontainers/runc@${RUNC_VERSION}"

# --- eci's binaries, checked runc, and the image's root filesystem in /rootfs ---
FROM ${GO_IMAGE} AS build
ARG RUNC_VERSION=v1.5.3
ARG VERSION=0.1.0-dev
ARG COMMIT=unknown
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN set -eux; \
    ldflags="-s -w -X github.com/eci-dev/eci/internal/version.Version=${VERSION} -X github.com/eci-dev/eci/internal/version.Commit=${COMMIT}"; \
    mkdir -p /out; \
    go build -trimpath -ldflags "$ldflags" -o /out/eci-runtime ./cmd/eci-runtime; \
    for c in eci-node eci-controller; do \
        if [ -d "cmd/$c" ]; then \
            go build -trimpath -ldflags "$ldflags" -o "/out/$c" "./cmd/$c"; \
        else \
            echo "warning: cmd/$c does not exist: the image has no /usr/local/bin/$c" >&2; \
        fi; \
    done
COPY --from=runc /out/runc /out/runc
# The same verification hack/build-runc.sh runs: static, the pinned version, and the
# features eci needs (seccomp user notification, user namespaces, idmapped mounts).
RUN go run ./hack/checkrunc -static -version "${RUNC_VERSION#v}" /out/runc
RUN set -eux; \
    mkdir -p /rootfs/usr/local/bin /rootfs/opt/eci-artifacts /rootfs/etc /rootfs/tmp; \
    chmod 1777 /rootfs/tmp; \
    install -m 0755 /out/eci-runtime /out/runc /rootfs/opt/eci-artifacts/; \
    for c in eci-node eci-controller; do \
        if [ -f "/out/$c" ]; then install -m 0755 "/out/$c" /rootfs/usr/local/bin/; fi; \
    done; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >/rootfs/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >/rootfs/etc/group; \
    chmod 0644 /rootfs/etc/passwd /rootfs/etc/group; \
    chown -R 0:0 /rootfs

# --- the image ---
FROM scratch
ARG VERSION=0.1.0-dev
ARG COMMIT=unknown
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.title="eci" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/eci-dev/eci"
ENTRYPOINT ["/usr/local/bin/eci-node"]
