# Sluice broker image, with the apache/kafka image's conventions: a compose file
# written for apache/kafka runs with only the image name changed.
#   docker build -t sluice .
#   docker run -p 9092:9092 sluice                    # one combined node on 9092
#   docker run -p 9092:9092 -e KAFKA_NODE_ID=1 -e KAFKA_PROCESS_ROLES=broker,controller ...
# KAFKA_<NAME> variables are config keys (KAFKA_NUM_PARTITIONS=3 sets num.partitions),
# CLUSTER_ID formats the log directories, a server.properties mounted in
# /mnt/shared/config is used with the variables appended; see docker/run. Its paths
# (/etc/kafka/docker/run) and its start-up log line are Kafka's, which Testcontainers waits for.
# SLUICE_-prefixed variables set keys too, as outside a container.
# compat/python/test_dockerfile.py runs these same commands outside a container.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN useradd --system --uid 1000 --create-home --home-dir /home/appuser appuser \
    && mkdir -p /var/lib/kafka/data /etc/kafka/secrets /mnt/shared/config /opt/kafka/config /etc/kafka/docker \
    && chown -R appuser /var/lib/kafka /etc/kafka/secrets /mnt/shared/config /opt/kafka/config
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY docker/run /etc/kafka/docker/run
COPY docker/server.properties /etc/kafka/docker/server.properties
USER appuser
VOLUME ["/etc/kafka/secrets", "/var/lib/kafka/data", "/mnt/shared/config"]
EXPOSE 9092
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sluice", "--healthcheck", "localhost:9092"]
# A command, not an entry point, as apache/kafka has it: Testcontainers' KafkaContainer
# replaces it with a script that ends by running /etc/kafka/docker/run.
CMD ["/etc/kafka/docker/run"]
