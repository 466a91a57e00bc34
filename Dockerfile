# Keel in a container: the dist build (dist/build.sh), on a slim Debian, as an
# unprivileged user. See dist/README.md.
#
#   docker build -t keel .
#   docker run -p 8080:8080 -v $PWD/keel.toml:/etc/keel/keel.toml:ro -v keel-state:/var/lib/keel keel

# rust-toolchain.toml pins the toolchain; rustup in the image installs it.
FROM rust:1-bookworm AS build
# protoc: the fleet feature's etcd client compiles etcd's protos; zlib: gzip links the system's.
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN dist/build.sh && cp target/dist/keel /usr/local/bin/keel

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/keel /usr/bin/keel
COPY dist/keel.toml /etc/keel/keel.toml
# A fixed unprivileged user owns the state volume: the store and the admin token.
RUN useradd --system --uid 10001 --home-dir /var/lib/keel --shell /usr/sbin/nologin keel \
    && mkdir -p /var/lib/keel && chown keel:keel /var/lib/keel && chmod 0750 /var/lib/keel
USER keel
VOLUME /var/lib/keel
EXPOSE 8080
ENTRYPOINT ["/usr/bin/keel"]
CMD ["serve", "--config", "/etc/keel/keel.toml", "--state-dir", "/var/lib/keel"]
