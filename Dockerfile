# Sluice broker image: built with cargo, run from a slim base as a non-root user.
#   docker build -t sluice .
#   docker run -p 9092:9092 -v sluice-data:/var/lib/sluice sluice
# Configure with a mounted file (-v ./my.properties:/etc/sluice/server.properties)
# and/or SLUICE_-prefixed variables: SLUICE_NUM_PARTITIONS=3 sets num.partitions,
# SLUICE_ADVERTISED_LISTENERS=PLAINTEXT://my-host:9092 sets advertised.listeners.
# compat/python/test_dockerfile.py runs these same commands outside a container.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/sluice sluice \
    && mkdir -p /var/lib/sluice /etc/sluice \
    && chown sluice /var/lib/sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY config/server.properties /etc/sluice/server.properties
USER sluice
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
EXPOSE 9092
ENV SLUICE_LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    SLUICE_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    SLUICE_LOG_DIRS=/var/lib/sluice/data
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sluice", "--healthcheck", "localhost:9092"]
ENTRYPOINT ["/usr/local/bin/sluice", "--config", "/etc/sluice/server.properties"]
