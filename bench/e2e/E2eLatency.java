import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * End-to-end latency at a fixed rate: one producer thread sends RATE records a second
 * for WARMUP + SECONDS seconds, each value starting with System.nanoTime() at send; a
 * consumer in the same JVM (assigned every partition, from the end) takes now - sent for
 * each record it polls into an HdrHistogram (microseconds). Records sent during the first
 * WARMUP seconds are not counted. The run stops by itself: when every acknowledged record
 * is read, or DRAIN seconds after the last send.
 *
 * Usage: E2eLatency BOOTSTRAP TOPIC RATE SECONDS WARMUP RECORD_SIZE [producer.key=value ...]
 *
 * Prints one line a second, "SECOND t sent=N acked=N received=N" (counts in that second),
 * and last "RESULT key=value ..." with count, p50_ms, p99_ms, p999_ms, max_ms, sent,
 * acked, received, errors, send_seconds.
 */
public final class E2eLatency {
    private static final long DRAIN_NANOS = 15_000_000_000L;
    private static final long HIGHEST_MICROS = 600_000_000L;

    private final String bootstrap;
    private final String topic;
    private final double rate;
    private final long sendNanos;
    private final long warmupNanos;
    private final int recordSize;
    private final Properties producerProps = new Properties();

    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong acked = new AtomicLong();
    private final AtomicLong errors = new AtomicLong();
    private final AtomicLong received = new AtomicLong();
    private final Histogram histogram = new Histogram(HIGHEST_MICROS, 3);
    private volatile boolean sending = true;
    private volatile long sendEnded;
    private volatile long sendStart;

    private E2eLatency(String[] args) {
        bootstrap = args[0];
        topic = args[1];
        rate = Double.parseDouble(args[2]);
        long seconds = Long.parseLong(args[3]);
        long warmup = Long.parseLong(args[4]);
        recordSize = Math.max(8, Integer.parseInt(args[5]));
        sendNanos = (seconds + warmup) * 1_000_000_000L;
        warmupNanos = warmup * 1_000_000_000L;
        producerProps.put("bootstrap.servers", bootstrap);
        producerProps.put("request.timeout.ms", "15000");
        producerProps.put("delivery.timeout.ms", "30000");
        for (int i = 6; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            producerProps.put(kv[0], kv[1]);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 6) {
            System.err.println("usage: E2eLatency BOOTSTRAP TOPIC RATE SECONDS WARMUP RECORD_SIZE [k=v ...]");
            System.exit(2);
        }
        new E2eLatency(args).run();
    }

    private void run() throws InterruptedException {
        try (KafkaConsumer<byte[], byte[]> consumer = openConsumer()) {
            Thread producer = new Thread(this::produce, "e2e-producer");
            Thread reporter = new Thread(this::report, "e2e-reporter");
            reporter.setDaemon(true);
            sendStart = System.nanoTime();
            producer.start();
            reporter.start();
            consume(consumer);
            producer.join();
        }
        printResult();
    }

    /** Assigned every partition of the topic, positioned at its end before the first send. */
    private KafkaConsumer<byte[], byte[]> openConsumer() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "latest");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        List<TopicPartition> partitions = new ArrayList<>();
        for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
            partitions.add(new TopicPartition(topic, info.partition()));
        }
        consumer.assign(partitions);
        consumer.seekToEnd(partitions);
        for (TopicPartition tp : partitions) {
            consumer.position(tp, Duration.ofSeconds(30));
        }
        return consumer;
    }

    /** RATE records a second on a schedule: whatever is due is sent, then a short park. */
    private void produce() {
        producerProps.put("key.serializer", ByteArraySerializer.class.getName());
        producerProps.put("value.serializer", ByteArraySerializer.class.getName());
        byte[] filler = new byte[recordSize];
        ThreadLocalRandom.current().nextBytes(filler);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps)) {
            long start = sendStart;
            long total = (long) (rate * sendNanos / 1e9);
            long i = 0;
            while (i < total) {
                long elapsed = System.nanoTime() - start;
                long due = Math.min(total, (long) (rate * elapsed / 1e9) + 1);
                if (i >= due) {
                    LockSupport.parkNanos(Math.min(1_000_000L, (long) ((i + 1 - due) * 1e9 / rate)));
                    continue;
                }
                for (; i < due; i++) {
                    byte[] value = filler.clone();
                    ByteBuffer.wrap(value).putLong(System.nanoTime());
                    producer.send(new ProducerRecord<>(topic, value), (md, e) -> {
                        if (e == null) {
                            acked.incrementAndGet();
                        } else {
                            errors.incrementAndGet();
                        }
                    });
                    sent.incrementAndGet();
                }
            }
            producer.flush();
        } finally {
            sendEnded = System.nanoTime();
            sending = false;
        }
    }

    /** Polls until every acknowledged record is read, or DRAIN after the last send. */
    private void consume(KafkaConsumer<byte[], byte[]> consumer) {
        long measureFrom = sendStart + warmupNanos;
        while (true) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
            long now = System.nanoTime();
            for (ConsumerRecord<byte[], byte[]> r : records) {
                long sentAt = ByteBuffer.wrap(r.value()).getLong();
                if (sentAt >= measureFrom) {
                    histogram.recordValue(Math.min(HIGHEST_MICROS, Math.max(0, (now - sentAt) / 1000)));
                }
            }
            received.addAndGet(records.count());
            if (!sending && (received.get() >= acked.get() || now - sendEnded > DRAIN_NANOS)) {
                return;
            }
        }
    }

    /** One line a second: what was sent, acknowledged and read in that second. */
    private void report() {
        long[] before = {0, 0, 0};
        for (int t = 1; ; t++) {
            long next = sendStart + t * 1_000_000_000L;
            LockSupport.parkNanos(Math.max(0, next - System.nanoTime()));
            long[] now = {sent.get(), acked.get(), received.get()};
            System.out.printf("SECOND %d sent=%d acked=%d received=%d%n", t,
                    now[0] - before[0], now[1] - before[1], now[2] - before[2]);
            before = now;
        }
    }

    private void printResult() {
        System.out.printf("RESULT count=%d p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
                        + "sent=%d acked=%d received=%d errors=%d send_seconds=%.3f%n",
                histogram.getTotalCount(),
                histogram.getValueAtPercentile(50) / 1000.0,
                histogram.getValueAtPercentile(99) / 1000.0,
                histogram.getValueAtPercentile(99.9) / 1000.0,
                histogram.getMaxValue() / 1000.0,
                sent.get(), acked.get(), received.get(), errors.get(),
                (sendEnded - sendStart) / 1e9);
        System.out.flush();
    }
}
