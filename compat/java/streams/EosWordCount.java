/*
 * A Kafka Streams 4.4 application, written the way its users write one, with
 * processing.guarantee=exactly_once_v2: it counts the words of an input topic.
 *
 *   input (key: record id, value: a word)
 *     -> groupBy(word)           re-keyed: a repartition topic, <app>-by-word-repartition
 *     -> count() in "counts"     a RocksDB store, logged to <app>-counts-changelog
 *     -> output (key: the word, value: its count so far, in decimal)
 *
 * The store's cache is off, so every input record makes exactly one output record: a
 * word seen n times has the outputs 1, 2, ..., n, in this order. Under exactly-once, a
 * read_committed reader of the output sees exactly that, also across a crash of the
 * application (its open transaction aborted, its store restored from the changelog).
 *
 * Usage (compat/java/test_streams.py runs it; no build tool):
 *   java -cp '<classes>:compat/.cache/kafka-jars/*' EosWordCount \
 *        BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR DELAY_MS [streams.config=value ...]
 *
 * DELAY_MS: a pause per input record (to keep a run busy long enough to kill it).
 * Prints one line per state change ("STATE REBALANCING -> RUNNING"); ends cleanly
 * (KafkaStreams.close, then "CLOSED true", exit 0) when its stdin is closed, and exits 1
 * if the client goes to ERROR.
 */

import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

public final class EosWordCount {

    static Topology topology(String input, String output, long delayMs) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .peek((id, word) -> pause(delayMs))
            .groupBy((id, word) -> word, Grouped.with("by-word", Serdes.String(), Serdes.String()))
            .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                       .withKeySerde(Serdes.String())
                       .withValueSerde(Serdes.Long())
                       .withCachingDisabled())
            .toStream()
            .mapValues(count -> Long.toString(count))
            .to(output, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    static void pause(long ms) {
        if (ms <= 0) {
            return;
        }
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 6) {
            System.err.println("usage: EosWordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR "
                               + "DELAY_MS [config=value ...]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        for (int i = 6; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("not config=value: " + args[i]);
                System.exit(2);
            }
            props.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }

        KafkaStreams streams = new KafkaStreams(topology(args[2], args[3], Long.parseLong(args[5])), props);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + before + " -> " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR) {
                done.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("UNCAUGHT " + e);
            System.out.flush();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });

        Thread stdin = new Thread(() -> {
            InputStream in = System.in;
            try {
                while (in.read() >= 0) {
                    // only its end matters
                }
            } catch (IOException ignored) {
                // as good as the end
            }
            done.countDown();
        }, "stdin-watcher");
        stdin.setDaemon(true);

        streams.start();
        stdin.start();
        done.await();
        boolean failed = streams.state() == KafkaStreams.State.ERROR
            || streams.state() == KafkaStreams.State.PENDING_ERROR;
        boolean closed = streams.close(Duration.ofSeconds(30));
        System.out.println("CLOSED " + closed);
        System.out.flush();
        System.exit(failed || !closed ? 1 : 0);
    }
}
