# Sluice broker image: build with cargo, run from a slim base as a non-root user.
#   docker build -t sluice .
#   docker run -p 9092:9092 -v sluice-data:/var/lib/sluice sluice
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
ENTRYPOINT ["/usr/local/bin/sluice", "--config", "/etc/sluice/server.properties", \
            "--override", "listeners=PLAINTEXT://0.0.0.0:9092", \
            "--override", "advertised.listeners=PLAINTEXT://localhost:9092", \
            "--override", "log.dirs=/var/lib/sluice/data"]
