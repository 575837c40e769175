//! Gauges and counters read from the broker's state at scrape time, in the
//! Prometheus text format.

use crate::broker::Broker;
use std::fmt::Write;
use std::sync::atomic::Ordering;

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

/// Resident memory (bytes) and open file descriptors of this process.
fn process_stats() -> (Option<u64>, Option<u64>) {
    let rss = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
    (rss, fds)
}

/// Reads one of a topic's counters.
type ReadCounter = fn(&crate::replication::TopicStats) -> u64;

pub async fn render(broker: &Broker) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let topics = broker.replicas.topics();

    let topic_counters: [(&str, &str, ReadCounter); 6] = [
        (
            "sluice_topic_bytes_in_total",
            "Bytes of record batches appended to the topic.",
            |s| s.bytes_in.load(Ordering::Relaxed),
        ),
        ("sluice_topic_records_in_total", "Records appended to the topic.", |s| {
            s.records_in.load(Ordering::Relaxed)
        }),
        (
            "sluice_topic_bytes_out_total",
            "Bytes of record batches fetched from the topic.",
            |s| s.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "sluice_topic_records_out_total",
            "Records fetched from the topic.",
            |s| s.records_out.load(Ordering::Relaxed),
        ),
        (
            "sluice_topic_produce_requests_total",
            "Produce requests that wrote to the topic.",
            |s| s.produce_requests.load(Ordering::Relaxed),
        ),
        (
            "sluice_topic_fetch_requests_total",
            "Fetch requests that read from the topic.",
            |s| s.fetch_requests.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, read) in topic_counters {
        f.header(name, "counter", help);
        for t in &topics {
            f.sample(name, &[("topic", &t.name)], read(&t.stats) as f64);
        }
    }

    let partition_gauges = [
        (
            "sluice_partition_log_start_offset",
            "The first offset still in the log.",
        ),
        (
            "sluice_partition_log_end_offset",
            "The offset the next record will get.",
        ),
        (
            "sluice_partition_high_watermark",
            "The last offset consumers may read, plus one.",
        ),
        (
            "sluice_partition_size_bytes",
            "Bytes of the partition's segments on disk.",
        ),
        ("sluice_partition_segments", "Segments of the partition's log."),
    ];
    let mut rows = Vec::new();
    for t in &topics {
        for p in t.partitions() {
            let log = p.log();
            rows.push((
                t.name.clone(),
                p.index().to_string(),
                [
                    log.log_start_offset() as f64,
                    log.log_end_offset() as f64,
                    log.high_watermark() as f64,
                    log.size_bytes() as f64,
                    log.segment_count() as f64,
                ],
            ));
        }
    }
    for (i, (name, help)) in partition_gauges.iter().enumerate() {
        f.header(name, "gauge", help);
        for (topic, partition, values) in &rows {
            f.sample(name, &[("topic", topic), ("partition", partition)], values[i]);
        }
    }

    // Groups: state, members, committed offsets and lag (high watermark minus committed).
    let groups = broker.groups.list().await;
    f.header(
        "sluice_group_state",
        "gauge",
        "1 for the state the consumer group is in.",
    );
    for g in &groups {
        f.sample("sluice_group_state", &[("group", &g.group_id), ("state", g.state)], 1.0);
    }
    f.header("sluice_group_members", "gauge", "Members of the consumer group.");
    let mut offsets = Vec::new();
    for g in &groups {
        f.sample("sluice_group_members", &[("group", &g.group_id)], g.members as f64);
        for (topic, rows) in broker.groups.fetch_offsets(&g.group_id, None).await {
            for (partition, committed) in rows {
                let Some(committed) = committed else { continue };
                let end = broker
                    .replicas
                    .partition(&topic, partition)
                    .map(|p| p.offsets().high_watermark);
                offsets.push((
                    g.group_id.clone(),
                    topic.clone(),
                    partition.to_string(),
                    committed.offset,
                    end,
                ));
            }
        }
    }
    f.header(
        "sluice_group_committed_offset",
        "gauge",
        "The offset the group committed for the partition.",
    );
    for (group, topic, partition, committed, _) in &offsets {
        f.sample(
            "sluice_group_committed_offset",
            &[("group", group), ("topic", topic), ("partition", partition)],
            *committed as f64,
        );
    }
    f.header(
        "sluice_group_lag",
        "gauge",
        "Records the group has yet to consume: high watermark minus committed offset.",
    );
    for (group, topic, partition, committed, end) in &offsets {
        if let Some(end) = end {
            f.sample(
                "sluice_group_lag",
                &[("group", group), ("topic", topic), ("partition", partition)],
                (end - committed).max(0) as f64,
            );
        }
    }

    let (rss, fds) = process_stats();
    if let Some(rss) = rss {
        f.header(
            "sluice_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the broker process.",
        );
        f.sample("sluice_process_resident_memory_bytes", &[], rss as f64);
    }
    if let Some(fds) = fds {
        f.header(
            "sluice_process_open_fds",
            "gauge",
            "Open file descriptors of the broker process.",
        );
        f.sample("sluice_process_open_fds", &[], fds as f64);
    }
    out
}
