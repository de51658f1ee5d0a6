# syntax=docker/dockerfile:1.7
# hadrill/test-server: the test workload of the feature suite (features/manifests).
#
# Built from the workspace root (the build context), by `make images` or:
#   docker build -f deploy/docker/test-server.Dockerfile -t hadrill/test-server:dev .
# Two stages: the workspace is compiled in the Rust image (BuildKit caches the registry and the
# target directory between builds); only the binary goes into a distroless runtime image
# (glibc + libgcc + CA certificates, no shell), which runs as the unprivileged user 65532.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-trixie AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=hadrill-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=hadrill-target,target=/src/target \
    cargo build --release --locked -p hadrill-sim --bin hadrill-test-server \
 && install -D -m 0755 target/release/hadrill-test-server /out/hadrill-test-server

FROM gcr.io/distroless/cc-debian13:nonroot AS runtime
COPY --from=build /out/hadrill-test-server /usr/local/bin/hadrill-test-server
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hadrill-test-server"]
