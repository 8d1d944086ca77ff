# syntax=docker/dockerfile:1
# The weir image: `docker build -t ghcr.io/weir-dev/weir:0.1.0 .`
#
# Two stages: the toolchain builds, a slim Debian runs. The binary is at
# /usr/local/bin/weir, where the Kubernetes executor's init container copies
# it from into task pods (`weir exec-task`).

FROM rust:1.95-bookworm AS build
# git2 links the system OpenSSL (HTTPS remotes) and builds libgit2 and
# libssh2 from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target/ are cache mounts, kept between builds; the binary
# is copied out of target/ in the same step, as the mount is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin weir \
 && install -m 0755 target/release/weir /usr/local/bin/weir

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
# 65532 is the conventional non-root id (distroless' `nonroot`); the
# Deployment runs as it too.
RUN groupadd --gid 65532 weir \
 && useradd --uid 65532 --gid 65532 --home-dir /var/lib/weir --no-create-home \
      --shell /usr/sbin/nologin weir \
 && mkdir -p /var/lib/weir /etc/weir \
 && chown 65532:65532 /var/lib/weir
COPY --from=build /usr/local/bin/weir /usr/local/bin/weir
USER 65532:65532
WORKDIR /var/lib/weir
EXPOSE 7878
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["serve", "--config", "/etc/weir/weir.toml"]
