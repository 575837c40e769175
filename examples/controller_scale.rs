//! What a cluster's metadata costs at 100,000 partitions, simulated on one
//! machine (issue #17, point 2): the real controller (one node, its metadata
//! log on disk, fsynced as in a broker) gets brokers registered and topics
//! created until it holds `--partitions` partitions with `--rf` replicas
//! over `--brokers` brokers; then one broker's controlled shutdown (every
//! partition it leads gets a new leader), its return, a preferred-leader
//! election that gives its leadership back, and a restart from the log.
//! Prints the time of each step, the records and bytes written and the
//! process's RSS. The brokers are only registrations: no partition data,
//! no Raft replication between controllers (the same records, the same
//! image and the same JSON snapshot as a cluster's controllers keep).
//!
//!     cargo run --release --example controller_scale -- --partitions 100000 --brokers 10
//!
//! `bench/controller-scale` runs it.

use clap::Parser;
use sluice::metadata::controller::elections::ElectionType;
use sluice::metadata::controller::isr::AlterPartition;
use sluice::metadata::controller::{ControllerConfig, NewTopic};
use sluice::metadata::delta::MetadataDelta;
use sluice::metadata::log::MetadataLog;
use sluice::metadata::records::BrokerEndpoint;
use sluice::metadata::{Controller, MetadataImage};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Partitions in all.
    #[arg(long, default_value_t = 100_000)]
    partitions: i32,
    /// Brokers registered (the placement spreads replicas over them).
    #[arg(long, default_value_t = 10)]
    brokers: i32,
    /// Replication factor.
    #[arg(long, default_value_t = 3)]
    rf: i16,
    /// Partitions per topic; CreateTopics may add at most 10,000 records.
    #[arg(long, default_value_t = 2_500)]
    per_topic: i32,
    /// Racks the brokers are spread over (0: none).
    #[arg(long, default_value_t = 3)]
    racks: i32,
    /// The directory for the metadata log (a temporary one by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// A memory figure of this process from /proc (VmRSS, VmHWM), in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn controller(image: MetadataImage, log: MetadataLog) -> Controller {
    // Publications count as published at once: the brokers' side (roles
    // applied to partitions) is not what this measures.
    let config = ControllerConfig {
        node_id: 1,
        delete_topic_enable: true,
        default_partitions: 1,
        default_replication_factor: 1,
        static_configs: BTreeMap::new(),
    };
    Controller::published_at_once(config, log, Arc::new(image))
}

fn endpoint(id: i32) -> Vec<BrokerEndpoint> {
    vec![BrokerEndpoint {
        listener: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        security_protocol: "PLAINTEXT".into(),
    }]
}

fn rack(args: &Args, id: i32) -> Option<String> {
    (args.racks > 0).then(|| format!("rack-{}", id % args.racks))
}

/// Partitions each broker leads.
fn leaders(image: &MetadataImage) -> BTreeMap<i32, usize> {
    let mut led = BTreeMap::new();
    for topic in image.topics.iter() {
        for p in &topic.partitions {
            *led.entry(p.leader).or_insert(0) += 1;
        }
    }
    led
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn load(dir: &Path) -> Result<(MetadataLog, MetadataImage, usize), Box<dyn std::error::Error>> {
    let (log, loaded) = MetadataLog::open(dir)?;
    let mut delta = MetadataDelta::new(&MetadataImage::default());
    let mut records = 0;
    if let Some((offset, snapshot)) = &loaded.snapshot {
        records += snapshot.len();
        delta.replay_snapshot(*offset, snapshot);
    }
    for (base, batch) in &loaded.batches {
        records += batch.len();
        delta.replay_all(*base, batch);
    }
    Ok((log, delta.apply().0, records))
}

async fn run(args: Args, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rss_start = status_mib("VmRSS:");
    let (log, _) = MetadataLog::open(dir)?;
    let c = controller(MetadataImage::default(), log);
    for id in 1..=args.brokers {
        c.register_broker(id, endpoint(id), rack(&args, id), None, uuid::Uuid::new_v4())
            .await?;
        c.heartbeat(id, false).await?;
    }

    let topics = (args.partitions + args.per_topic - 1) / args.per_topic;
    let mut create_ms = Vec::new();
    let started = Instant::now();
    for t in 0..topics {
        let partitions = args.per_topic.min(args.partitions - t * args.per_topic);
        let topic = NewTopic {
            name: format!("scale-{t:04}"),
            partitions,
            replication_factor: args.rf,
            configs: BTreeMap::new(),
            assignments: None,
        };
        let one = Instant::now();
        let created = c.create_topics(vec![topic], false).await?;
        if let Some(Err(e)) = created.first() {
            return Err(format!("creating topic {t}: {e:?}").into());
        }
        create_ms.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    let create_total = started.elapsed().as_secs_f64();
    create_ms.sort_by(f64::total_cmp);
    let image = c.image().await;
    let held: usize = image.topics.iter().map(|t| t.partitions.len()).sum();
    let offset_after_create = image.offset;
    println!(
        "create: {held} partitions (rf {}) over {} brokers in {topics} topics: {create_total:.2} s, \
         {:.0} partitions/s; a CreateTopics of {} partitions p50 {:.1} ms, max {:.1} ms",
        args.rf,
        args.brokers,
        held as f64 / create_total,
        args.per_topic,
        percentile(&create_ms, 0.5),
        percentile(&create_ms, 1.0),
    );
    println!(
        "metadata: {} records, files {:.1} MiB on disk; RSS {:.1} MiB (+{:.1} MiB: {:.0} bytes a partition)",
        offset_after_create + 1,
        mib(dir_bytes(dir)),
        status_mib("VmRSS:"),
        status_mib("VmRSS:") - rss_start,
        (status_mib("VmRSS:") - rss_start) * 1024.0 * 1024.0 / held.max(1) as f64,
    );

    let before = leaders(&image);
    let led = before.get(&1).copied().unwrap_or(0);
    let one = Instant::now();
    c.heartbeat(1, true).await?;
    let shutdown_s = one.elapsed().as_secs_f64();
    let image = c.image().await;
    let still = leaders(&image).get(&1).copied().unwrap_or(0);
    let without_leader = leaders(&image).get(&-1).copied().unwrap_or(0);
    println!(
        "controlled shutdown of broker 1: {shutdown_s:.3} s, {} records; it led {led}, now {still}; \
         {without_leader} partitions without a leader",
        image.offset - offset_after_create,
    );

    let one = Instant::now();
    c.register_broker(1, endpoint(1), rack(&args, 1), None, uuid::Uuid::new_v4())
        .await?;
    c.heartbeat(1, false).await?;
    let back_s = one.elapsed().as_secs_f64();
    println!("broker 1 back: registered and unfenced in {back_s:.3} s");
    // Followers caught up: each leader asks for broker 1 back in its ISRs,
    // all its pending changes in one AlterPartition (at most 10,000) as a
    // broker sends them, the leaders side by side.
    let image = c.image().await;
    let mut by_leader: BTreeMap<i32, Vec<AlterPartition>> = BTreeMap::new();
    for topic in image.topics.iter() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.replicas.contains(&1) && !p.isr.contains(&1) && p.leader >= 0 {
                let mut new_isr = p.isr.clone();
                new_isr.push(1);
                by_leader.entry(p.leader).or_default().push(AlterPartition {
                    broker_id: p.leader,
                    topic_id: topic.id,
                    partition: index as i32,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr,
                });
            }
        }
    }
    let expansions: usize = by_leader.values().map(Vec::len).sum();
    let c = Arc::new(c);
    let one = Instant::now();
    let mut leaders_sending = tokio::task::JoinSet::new();
    for (_, requests) in by_leader {
        let c = c.clone();
        leaders_sending.spawn(async move {
            let mut requests = requests.into_iter().peekable();
            let mut sent = 0;
            while requests.peek().is_some() {
                let batch: Vec<AlterPartition> = requests.by_ref().take(10_000).collect();
                let outcomes = c.alter_partitions(batch).await?;
                if let Some(Err(e)) = outcomes.into_iter().find(|o| o.is_err()) {
                    return Err(e);
                }
                sent += 1;
            }
            Ok::<usize, sluice::metadata::ControllerError>(sent)
        });
    }
    let mut requests_sent = 0;
    while let Some(sent) = leaders_sending.join_next().await {
        requests_sent += sent??;
    }
    let expand_s = one.elapsed().as_secs_f64();
    println!(
        "ISR expansions: {expansions} partitions in {requests_sent} AlterPartition requests (each leader's pending \
         changes together, at most 10,000) in {expand_s:.2} s, {:.0} partitions a second",
        expansions as f64 / expand_s.max(1e-9),
    );

    let offset = c.image().await.offset;
    let one = Instant::now();
    let elected = c.elect_leaders(ElectionType::Preferred, None).await?;
    let elect_s = one.elapsed().as_secs_f64();
    let image = c.image().await;
    println!(
        "preferred election over every partition: {elect_s:.3} s, {} moved, broker 1 leads {} again ({} records)",
        elected.iter().filter(|e| e.error.is_none()).count(),
        leaders(&image).get(&1).copied().unwrap_or(0),
        image.offset - offset,
    );
    let last_offset = image.offset;
    c.stop();
    drop(c);
    drop(image);

    let bytes = dir_bytes(dir);
    let one = Instant::now();
    let (mut log, image, records) = load(dir)?;
    let load_s = one.elapsed().as_secs_f64();
    if image.offset != last_offset {
        return Err(format!("reloaded to offset {}, wrote up to {last_offset}", image.offset).into());
    }
    println!(
        "restart: {records} records ({:.1} MiB) read and replayed into the image in {load_s:.2} s",
        mib(bytes)
    );
    let one = Instant::now();
    log.snapshot(&image)?;
    let snapshot_s = one.elapsed().as_secs_f64();
    let one = Instant::now();
    let (_, reloaded, _) = load(dir)?;
    let from_snapshot_s = one.elapsed().as_secs_f64();
    if reloaded.offset != last_offset {
        return Err("the snapshot did not reload to the same offset".into());
    }
    println!(
        "snapshot: {:.1} MiB written in {snapshot_s:.2} s; a restart from it {from_snapshot_s:.2} s; peak RSS {:.1} MiB",
        mib(dir_bytes(dir)),
        status_mib("VmHWM:"),
    );
    Ok(())
}

fn main() {
    let args = Args::parse();
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run(args, &dir)) {
        eprintln!("controller_scale: {e}");
        std::process::exit(1);
    }
}
