import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A transactional Java producer (kafka-clients, unchanged) driven step by step, for the
 * compat cases of transaction version 2 (KIP-890). Arguments: bootstrap, transactional
 * id, then steps:
 *
 *   init | begin | commit | abort | close
 *   send:TOPIC:PARTITION:VALUE           (waits for the acknowledgement)
 *   offsets:GROUP:TOPIC:PARTITION:OFFSET (sendOffsetsToTransaction, a group without members)
 *   state                                (the client's view, read from its TransactionManager)
 *   wait                                 (until a line arrives on stdin)
 *   sleep:MS
 *
 * Arguments "--key=value" before the steps are producer configs.
 * Each step prints one line: "OK step [detail]" or "ERROR step ExceptionClass[/CauseClass]";
 * a failed step does not stop the run. "STATE tv2=B producerId=P epoch=E" is what the
 * client believes: whether it speaks transaction version 2, and its producer id and epoch.
 */
public final class TxnSteps {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("transactional.id", args[1]);
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        props.put("max.block.ms", "30000");
        props.put("delivery.timeout.ms", "30000");
        props.put("request.timeout.ms", "10000");
        int first = 2;
        for (; first < args.length && args[first].startsWith("--"); first++) {
            String[] kv = args[first].substring(2).split("=", 2);
            props.put(kv[0], kv[1]);
        }
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int i = first; i < args.length; i++) {
                String step = args[i];
                try {
                    String detail = run(producer, step, stdin);
                    System.out.println("OK " + step + (detail.isEmpty() ? "" : " " + detail));
                } catch (Exception e) {
                    Throwable t = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
                    String cause = t.getCause() == null ? "" : "/" + t.getCause().getClass().getSimpleName();
                    System.out.println("ERROR " + step + " " + t.getClass().getSimpleName() + cause);
                }
                System.out.flush();
            }
        }
        System.out.println("EXIT");
    }

    // A group's metadata without a consumer: its constructors are deprecated in 4.4.
    @SuppressWarnings("removal")
    private static String run(KafkaProducer<String, String> producer, String step, BufferedReader stdin)
            throws Exception {
        String[] p = step.split(":");
        switch (p[0]) {
            case "init": producer.initTransactions(); return "";
            case "begin": producer.beginTransaction(); return "";
            case "commit": producer.commitTransaction(); return "";
            case "abort": producer.abortTransaction(); return "";
            case "close": producer.close(); return "";
            case "send": {
                RecordMetadata m = producer.send(new ProducerRecord<>(p[1], Integer.parseInt(p[2]), null, p[3])).get();
                return m.partition() + "@" + m.offset();
            }
            case "offsets": {
                producer.sendOffsetsToTransaction(
                    Map.of(new TopicPartition(p[2], Integer.parseInt(p[3])),
                           new OffsetAndMetadata(Long.parseLong(p[4]))),
                    new ConsumerGroupMetadata(p[1], -1, "", Optional.empty()));
                return "";
            }
            case "state": return state(producer);
            case "wait": stdin.readLine(); return "";
            case "sleep": Thread.sleep(Long.parseLong(p[1])); return "";
            default: throw new IllegalArgumentException("unknown step " + step);
        }
    }

    /** What the client's TransactionManager holds (private: read by reflection). */
    private static String state(KafkaProducer<String, String> producer) throws Exception {
        Object manager = field(producer, "transactionManager");
        boolean tv2 = (Boolean) manager.getClass().getMethod("isTransactionV2Enabled").invoke(manager);
        Object idAndEpoch = field(manager, "producerIdAndEpoch");
        long producerId = idAndEpoch.getClass().getField("producerId").getLong(idAndEpoch);
        short epoch = idAndEpoch.getClass().getField("epoch").getShort(idAndEpoch);
        System.out.println("STATE tv2=" + tv2 + " producerId=" + producerId + " epoch=" + epoch);
        return "";
    }

    private static Object field(Object owner, String name) throws Exception {
        Field f = owner.getClass().getDeclaredField(name);
        f.setAccessible(true);
        return f.get(owner);
    }
}
