# s3canary container image: a static-enough Rust binary on a distroless, non-root base.
#   docker build -t s3canary:0.1.0 .
#   docker run --rm -p 9340:9340 -v $PWD/config:/etc/s3canary:ro s3canary:0.1.0 \
#     run --config /etc/s3canary/s3canary.example.toml
# The runtime image has no shell and no package manager; it runs as UID 65532.

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && mkdir config && touch config/demo.toml \
    && cargo build --profile dist --locked --bin s3canary \
    && rm -rf src config
COPY src ./src
COPY config ./config
# The dist profile (whole-program LTO, optimised for size), packed relocations and the hot
# functions placed together: see scripts/build-dist and docs/benchmarks.md, Footprint.
COPY scripts/build-dist scripts/hot-functions.txt ./scripts/
RUN touch src/main.rs src/lib.rs && scripts/build-dist \
    && strip target/dist/s3canary

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/s3canary /usr/local/bin/s3canary
USER 65532:65532
EXPOSE 9340
ENTRYPOINT ["/usr/local/bin/s3canary"]
CMD ["run", "--config", "/etc/s3canary/s3canary.toml"]
