# Build with the Rust image, run on Debian slim as a non-root user that may bind
# port 25 (CAP_NET_BIND_SERVICE on the binary).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY web web
COPY config.example.toml ./
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/bridgehead /usr/local/bin/bridgehead
RUN setcap cap_net_bind_service=+ep /usr/local/bin/bridgehead \
 && useradd --system --uid 10025 --home-dir /data --shell /usr/sbin/nologin bridgehead \
 && mkdir -p /data && chown bridgehead:bridgehead /data
USER bridgehead
WORKDIR /data
ENV BRIDGEHEAD_DATA_DIR=/data \
    BRIDGEHEAD_ADMIN_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 25 587 465 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["bridgehead"]
CMD ["serve"]
