//! DescribeLogDirs: each log directory, its partitions and their sizes, and
//! the disk's total and usable bytes. AlterReplicaLogDirs: moves a hosted
//! replica to another of this broker's log directories (JBOD).

use super::RequestContext;
use crate::broker::Broker;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (total, usable) bytes of the file system holding `dir`, or (-1, -1).
fn disk_space(dir: &Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    // SAFETY: statvfs fills the struct we pass for a NUL-terminated path.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut s) != 0 {
            return (-1, -1);
        }
        let block = s.f_frsize as i64;
        (s.f_blocks as i64 * block, s.f_bavail as i64 * block)
    }
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if !broker.authorize_cluster(ctx, crate::auth::acl::operation::DESCRIBE) {
        let code = if ctx.api_version >= 3 {
            kafka_protocol::ResponseError::ClusterAuthorizationFailed.code()
        } else {
            0
        };
        return DescribeLogDirsResponse::default().with_error_code(code);
    }
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req
        .topics
        .map(|ts| ts.into_iter().map(|t| (t.topic.to_string(), t.partitions)).collect());
    // log dir → topic → [(partition, size)]
    let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
    for dir in &broker.config.log_dirs {
        by_dir
            .entry(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
            .or_default();
    }
    for topic in broker.replicas.topics() {
        let partitions: Vec<i32> = match &wanted {
            Some(w) => match w.get(&topic.name) {
                Some(ps) => ps.clone(),
                None => continue,
            },
            None => topic.hosted.keys().copied().collect(),
        };
        for index in partitions {
            let Some(p) = topic.partition(index) else {
                continue;
            };
            let log = p.log();
            let dir = log.dir().parent().map(Path::to_path_buf).unwrap_or_default();
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            by_dir
                .entry(dir)
                .or_default()
                .entry(topic.name.clone())
                .or_default()
                .push((index, log.size_bytes() as i64));
        }
    }
    let results = by_dir
        .into_iter()
        .map(|(dir, topics)| {
            let (total, usable) = disk_space(&dir);
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                .with_total_bytes(total)
                .with_usable_bytes(usable)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, size)| {
                                            DescribeLogDirsPartition::default()
                                                .with_partition_index(index)
                                                .with_partition_size(size)
                                                .with_offset_lag(0)
                                                .with_is_future_key(false)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

pub async fn handle_alter_replica_log_dirs(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    use kafka_protocol::ResponseError as E;
    let allowed = broker.authorize_cluster(ctx, crate::auth::acl::operation::ALTER);
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in req.dirs {
        let target = broker.replicas.log_dir_index(Path::new(dir.path.as_str()));
        for t in dir.topics {
            let topic = broker.replicas.topic(&t.name);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for index in t.partitions {
                let code = match (&topic, target) {
                    _ if !allowed => E::ClusterAuthorizationFailed.code(),
                    (_, None) => E::LogDirNotFound.code(),
                    (None, _) => E::ReplicaNotAvailable.code(),
                    (Some(topic), Some(to)) => match topic.partition(index) {
                        None => E::ReplicaNotAvailable.code(),
                        Some(p) => match broker.replicas.move_to_dir(p.clone(), to).await {
                            Ok(()) => {
                                tracing::info!(topic = %topic.name, partition = index, dir = %dir.path.as_str(),
                                    "moved a replica to another log dir");
                                0
                            }
                            Err(e) => {
                                tracing::warn!(topic = %topic.name, partition = index, error = %e,
                                    "could not move a replica to another log dir");
                                E::KafkaStorageError.code()
                            }
                        },
                    },
                };
                partitions.push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
            match results.iter_mut().find(|r| r.topic_name == t.name) {
                Some(r) => r.partitions.extend(partitions),
                None => results.push(
                    AlterReplicaLogDirTopicResult::default()
                        .with_topic_name(t.name)
                        .with_partitions(partitions),
                ),
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}
