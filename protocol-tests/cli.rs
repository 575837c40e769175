//! The storage commands of the command line (`sluice random-uuid`, `sluice
//! format`, as Kafka's `kafka-storage`), and that they leave the old ways of
//! starting alone: `sluice FILE`, `sluice -c FILE`, `--override`.

use crate::harness::msgs::*;
use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CLUSTER: &str = "MjpJvG0KSauIJkzPM2xAWw";

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A server.properties in `dir` keeping its data in `dir/data`, the
/// harness's data directory.
fn properties(dir: &Path, extra: &str) -> String {
    let path = dir.join("server.properties");
    std::fs::write(&path, format!("log.dirs={}\n{extra}", dir.join("data").display())).unwrap();
    path.display().to_string()
}

#[test]
fn random_uuid_prints_a_kafka_cluster_id() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let out = sluice(dir.path(), &["random-uuid"]);
            assert_eq!(out.status.code(), Some(0));
            text(&out.stdout).trim_end().to_string()
        })
        .collect();
    for id in &ids {
        // 16 random bytes as URL-safe base64 without padding, as Kafka's Uuid prints them.
        assert_eq!(id.len(), 22, "{id}");
        assert!(!id.starts_with('-'), "{id}");
        assert!(
            id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_formatted_directory_starts_with_its_cluster_id_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = properties(dir.path(), "");
    let out = sluice(
        dir.path(),
        &[
            "format",
            "-t",
            CLUSTER,
            "-c",
            &config,
            "--add-scram",
            "SCRAM-SHA-256=[name=alice,password=alice-secret]",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains(&format!(
            "Formatting metadata directory {} with cluster.id {CLUSTER}.",
            dir.path().join("data").display()
        )),
        "{printed}"
    );
    let meta = std::fs::read_to_string(dir.path().join("data/meta.properties")).unwrap();
    assert!(
        meta.contains(&format!("cluster.id={CLUSTER}")) && meta.contains("directory.id="),
        "{meta}"
    );

    let broker = Broker::start_in(dir, &[]);
    let mut client = broker.client();
    let r: DescribeClusterResponse = client.request(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default());
    assert_eq!(&*r.cluster_id, CLUSTER);
    let r: DescribeUserScramCredentialsResponse = client.request(
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    );
    let users: Vec<&str> = r.results.iter().map(|u| &*u.user).collect();
    assert_eq!(users, vec!["alice"]);
    // A restart keeps it all, and formatting again is refused.
    let (code, dir) = broker.terminate();
    assert_eq!(code, Some(0));
    let broker = Broker::start_in(dir, &[]);
    let r: DescribeClusterResponse =
        broker
            .client()
            .request(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default());
    assert_eq!(&*r.cluster_id, CLUSTER);
    let (_, dir) = broker.terminate();
    let out = sluice(dir.path(), &["format", "-t", CLUSTER, "-c", &config]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unformatted_single_node_still_starts_as_before() {
    let broker = Broker::start(&[]);
    let r: DescribeClusterResponse =
        broker
            .client()
            .request(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default());
    assert_eq!(r.cluster_id.len(), 22);
    assert!(!broker.dir.path().join("data/bootstrap.json").exists());
}

#[test]
fn an_already_formatted_directory_is_refused_unless_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let config = properties(dir.path(), "");
    let args = ["format", "--cluster-id", CLUSTER, "--config", &config];
    assert_eq!(sluice(dir.path(), &args).status.code(), Some(0));
    let out = sluice(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "sluice: Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and \
             format the others.\n",
            dir.path().join("data").display()
        )
    );
    let out = sluice(dir.path(), &[&args[..], &["--ignore-formatted"]].concat());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "All of the log directories are already formatted.\n");
    // Another node's directory: Kafka's words, exit 1.
    let out = sluice(dir.path(), &[&args[..], &["-g", "--override", "node.id=2"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Stored node id 1 doesn't match previous node id 2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_format_arguments_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let single = properties(dir.path(), "");
    let broker_only = {
        let path = dir.path().join("broker.properties");
        std::fs::write(
            &path,
            "process.roles=broker\nnode.id=2\ncontroller.quorum.bootstrap.servers=127.0.0.1:9093\n\
             controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://127.0.0.1:9092\n",
        )
        .unwrap();
        path.display().to_string()
    };
    let controller = {
        let path = dir.path().join("controller.properties");
        std::fs::write(
            &path,
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=127.0.0.1:9093\n\
             controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n",
        )
        .unwrap();
        path.display().to_string()
    };
    for (args, says) in [
        (vec!["format", "-c", &single], "--cluster-id"),
        (vec!["format", "-t", CLUSTER], "--config"),
        (vec!["format", "-t", "", "-c", &single], "the cluster id is empty"),
        (
            vec![
                "format",
                "-t",
                CLUSTER,
                "-c",
                &controller,
                "--standalone",
                "--initial-controllers",
                "1@h:1:x",
            ],
            "cannot be used with",
        ),
        (
            vec!["format", "-t", CLUSTER, "-c", &broker_only, "--standalone"],
            "You can only use --standalone on a controller.",
        ),
        (
            vec!["format", "-t", CLUSTER, "-c", &controller],
            "you must specify one of the following: --standalone, --initial-controllers, or --no-initial-controllers",
        ),
        (
            vec!["format", "-t", CLUSTER, "-c", &controller, "-I", "1@h:1:bad"],
            "Failed to parse directory ID in dynamic voter string.",
        ),
        (
            vec!["format", "-t", CLUSTER, "-c", &single, "--add-scram", "bogus"],
            "--add-scram 'bogus'",
        ),
        (
            vec![
                "format",
                "-t",
                CLUSTER,
                "-c",
                &single,
                "--override",
                "process.roles=foo",
            ],
            "process.roles",
        ),
        (
            vec!["format", "-t", CLUSTER, "-c", "no-such-file.properties"],
            "no-such-file.properties",
        ),
        (
            vec!["format", "-t", CLUSTER, "-c", &single, "--release-version", "4.4"],
            "--release-version",
        ),
    ] {
        let out = sluice(dir.path(), &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was formatted");
}

#[test]
fn the_subcommands_do_not_take_the_place_of_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    // A file named like a subcommand is the subcommand; ./format is the file.
    std::fs::write(dir.path().join("format"), "num.partitions=3\n").unwrap();
    let out = sluice(dir.path(), &["format"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config"), "{}", text(&out.stderr));
    // "help" is no subcommand: a file of that name, as before.
    let out = sluice(dir.path(), &["help"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read config file help"),
        "{}",
        text(&out.stderr)
    );
    // The positional file and -c start a broker as before.
    let config = properties(dir.path(), "listeners=PLAINTEXT://127.0.0.1:0\n");
    for args in [
        vec![config.as_str()],
        vec!["-c", &config],
        vec!["./format", "--override", "listeners=PLAINTEXT://127.0.0.1:0"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir.path())
            .args(&args)
            .args(["--override", &format!("log.dirs={}", dir.path().join("data").display())])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kept open until the broker is gone: it logs its shutdown too.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("listening on PLAINTEXT://"));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(child.wait().unwrap().code(), Some(0), "{args:?}");
        assert!(started, "{args:?} did not start");
    }
    // --healthcheck is still an option of the broker command.
    let out = sluice(dir.path(), &[&config, "--healthcheck", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
}
