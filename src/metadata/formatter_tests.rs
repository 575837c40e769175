use super::*;
use crate::metadata::format::{read_format, require_format, BOOTSTRAP_FILE};
use crate::metadata::meta_properties::{self, META_PROPERTIES};
use std::path::Path;

const CLUSTER: &str = "MjpJvG0KSauIJkzPM2xAWw";

fn config(overrides: &[String]) -> BrokerConfig {
    BrokerConfig::load(None, overrides).unwrap().config
}

/// A combined node of a dynamic quorum (Kafka 4's own server.properties).
fn dynamic_controller(dir: &Path, extra: &[&str]) -> BrokerConfig {
    let mut o: Vec<String> = vec![
        "process.roles=broker,controller".into(),
        "node.id=1".into(),
        "controller.quorum.bootstrap.servers=127.0.0.1:9093".into(),
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093".into(),
        "controller.listener.names=CONTROLLER".into(),
        format!("log.dirs={}", dir.join("data").display()),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    config(&o)
}

fn options(initial_controllers: InitialControllers) -> FormatOptions {
    FormatOptions {
        cluster_id: CLUSTER.into(),
        ignore_formatted: false,
        initial_controllers,
        add_scram: Vec::new(),
    }
}

/// Runs the format; returns what it printed.
fn run(config: &BrokerConfig, options: &FormatOptions) -> Result<String, FormatError> {
    let mut out = Vec::new();
    format(config, options, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn meta(dir: &Path) -> MetaProperties {
    meta_properties::read(dir).unwrap().expect("meta.properties")
}

#[test]
fn a_single_node_is_formatted_in_every_log_dir_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let c = config(&[format!("log.dirs={},{}", b.display(), a.display())]);
    let mut o = options(InitialControllers::NotGiven);
    o.add_scram = vec!["SCRAM-SHA-256=[name=alice,password=alice-secret]".into()];
    let printed = run(&c, &o).unwrap();
    assert_eq!(
        printed,
        format!(
            "Bootstrap metadata: 1 record(s).\n\
             Formatting data directory {} with cluster.id {CLUSTER}.\n\
             Formatting metadata directory {} with cluster.id {CLUSTER}.\n",
            a.display(),
            b.display()
        )
    );
    let (ma, mb) = (meta(&a), meta(&b));
    assert_eq!((ma.cluster_id.as_deref(), ma.node_id), (Some(CLUSTER), Some(1)));
    assert_eq!((mb.cluster_id.as_deref(), mb.node_id), (Some(CLUSTER), Some(1)));
    assert!(ma.directory_id.is_some() && ma.directory_id != mb.directory_id);
    // The metadata directory is the first of log.dirs, as in Kafka.
    assert!(b.join(BOOTSTRAP_FILE).exists() && !a.join(BOOTSTRAP_FILE).exists());
    let state = read_format(&c).unwrap().unwrap();
    assert_eq!(state.cluster_id, CLUSTER);
    assert_eq!(state.node_id, 1);
    assert_eq!(state.initial_voters, None);
    assert_eq!(state.metadata_directory_id, mb.directory_id);
    assert!(matches!(
        &state.bootstrap_records[..],
        [MetadataRecord::UserScramCredential { name, .. }] if name == "alice"
    ));
}

#[test]
fn the_single_node_start_takes_the_formatted_cluster_id_and_records() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&[format!("log.dirs={}", tmp.path().join("data").display())]);
    let mut o = options(InitialControllers::NotGiven);
    o.add_scram = vec!["SCRAM-SHA-512=[name=bob,password=bob-secret]".into()];
    run(&c, &o).unwrap();
    let directory_id = meta(&tmp.path().join("data")).directory_id;
    let loaded = crate::metadata::bootstrap::load(&c).unwrap();
    assert_eq!(loaded.cluster_id, CLUSTER);
    assert!(loaded.image.scram.contains_key("bob"));
    // The start leaves format's meta.properties (and its directory.id) alone.
    assert_eq!(meta(&tmp.path().join("data")).directory_id, directory_id);
    drop(loaded);
    // A second start does not add the records again.
    let again = crate::metadata::bootstrap::load(&c).unwrap();
    assert_eq!(again.image.offset, 1);
}

#[test]
fn unformatted_and_merely_started_directories_read_as_not_formatted() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&[format!("log.dirs={}", tmp.path().join("data").display())]);
    assert_eq!(read_format(&c).unwrap(), None);
    // A single node writes meta.properties on its own; that is no format.
    crate::metadata::bootstrap::load(&c).unwrap();
    assert!(tmp.path().join("data").join(META_PROPERTIES).exists());
    assert_eq!(read_format(&c).unwrap(), None);
    let err = require_format(&c).unwrap_err().to_string();
    assert!(err.contains("have you run `sluice format`"), "{err}");
}

#[test]
fn an_already_formatted_directory_is_refused_unless_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let first = config(&[format!("log.dirs={}", a.display())]);
    run(&first, &options(InitialControllers::NotGiven)).unwrap();
    let err = run(&first, &options(InitialControllers::NotGiven)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
            a.display()
        )
    );
    assert_eq!(err.exit_code(), 1);
    let mut ignore = options(InitialControllers::NotGiven);
    ignore.ignore_formatted = true;
    assert_eq!(
        run(&first, &ignore).unwrap(),
        "All of the log directories are already formatted.\n"
    );
    // A new directory beside it is formatted; the old one is left alone.
    let before = std::fs::read(a.join(META_PROPERTIES)).unwrap();
    let both = config(&[format!("log.dirs={},{}", a.display(), b.display())]);
    let printed = run(&both, &ignore).unwrap();
    assert!(
        printed.ends_with(&format!(
            "Formatting data directory {} with cluster.id {CLUSTER}.\n",
            b.display()
        )),
        "{printed}"
    );
    assert_eq!(std::fs::read(a.join(META_PROPERTIES)).unwrap(), before);
    assert_ne!(meta(&a).directory_id, meta(&b).directory_id);
}

#[test]
fn another_cluster_or_node_id_on_disk_is_refused_as_kafka_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node1 = config(&[format!("log.dirs={}", dir.display())]);
    run(&node1, &options(InitialControllers::NotGiven)).unwrap();
    let mut other = options(InitialControllers::NotGiven);
    other.cluster_id = "OTHERvG0KSauIJkzPM2xAW".into();
    other.ignore_formatted = true;
    assert_eq!(
        run(&node1, &other).unwrap_err().to_string(),
        format!(
            "Invalid cluster.id in: {}. Expected OTHERvG0KSauIJkzPM2xAW, but read {CLUSTER}",
            dir.join(META_PROPERTIES).display()
        )
    );
    let node2 = config(&[format!("log.dirs={}", dir.display()), "node.id=2".into()]);
    for ignore_formatted in [false, true] {
        let mut o = options(InitialControllers::NotGiven);
        o.ignore_formatted = ignore_formatted;
        let err = run(&node2, &o).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Stored node id 1 doesn't match previous node id 2 in {}. If you moved your data, make sure your \
                 configured node id matches. If you intend to create a new node, you should remove all data in \
                 your data directories.",
                dir.join(META_PROPERTIES).display()
            )
        );
        assert_eq!(err.exit_code(), 1);
    }
    // read_format checks the same at start.
    assert!(matches!(
        read_format(&node2),
        Err(FormatError::NodeIdMismatch {
            stored: 1,
            configured: 2,
            ..
        })
    ));
}

#[test]
fn standalone_makes_this_controller_the_only_voter() {
    let tmp = tempfile::tempdir().unwrap();
    let c = dynamic_controller(tmp.path(), &[]);
    let printed = run(&c, &options(InitialControllers::Standalone)).unwrap();
    let state = read_format(&c).unwrap().unwrap();
    let voters = state.initial_voters.unwrap();
    assert_eq!(voters.len(), 1);
    assert_eq!(
        (voters[0].id, voters[0].host.as_str(), voters[0].port),
        (1, "localhost", 9093)
    );
    // The voter's directory is the metadata directory.
    assert_eq!(voters[0].directory_id, state.metadata_directory_id);
    assert!(voters[0].directory_id.is_some());
    let data = tmp.path().join("data");
    assert!(
        printed.contains(&format!(
            "Formatting dynamic metadata voter directory {} with cluster.id {CLUSTER}.",
            data.display()
        )),
        "{printed}"
    );
    assert!(printed.starts_with(&format!(
        "Bootstrap metadata: 0 record(s), initial controllers 1@localhost:9093:{}.",
        topic_id_string(voters[0].directory_id.unwrap())
    )));
}

#[test]
fn initial_controllers_name_the_voters_and_this_nodes_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let c = dynamic_controller(tmp.path(), &[]);
    let spec = format!("1@127.0.0.1:9093:{CLUSTER},2@[::1]:9094:AAAAAAAAAAAAAAAAAAAAAQ");
    run(&c, &options(InitialControllers::Given(spec))).unwrap();
    let state = read_format(&c).unwrap().unwrap();
    let voters = state.initial_voters.unwrap();
    assert_eq!(voters[1].host, "::1");
    assert_eq!(state.metadata_directory_id, parse_topic_id(CLUSTER));
    // Not among them: a dynamic metadata directory with an id of its own.
    let tmp = tempfile::tempdir().unwrap();
    let c = dynamic_controller(tmp.path(), &[]);
    let printed = run(
        &c,
        &options(InitialControllers::Given("2@h:9094:AAAAAAAAAAAAAAAAAAAAAQ".into())),
    )
    .unwrap();
    assert!(printed.contains("Formatting dynamic metadata directory"), "{printed}");
    let state = read_format(&c).unwrap().unwrap();
    assert_ne!(state.metadata_directory_id, parse_topic_id("AAAAAAAAAAAAAAAAAAAAAQ"));
}

#[test]
fn the_quorum_options_are_checked_against_the_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let expect = |c: &BrokerConfig, option: InitialControllers, message: &str| {
        let err = run(c, &options(option)).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(err.exit_code(), 2, "{message}");
    };
    let broker = dynamic_controller(
        dir,
        &[
            "process.roles=broker",
            "node.id=2",
            "listeners=PLAINTEXT://127.0.0.1:9092",
        ],
    );
    expect(
        &broker,
        InitialControllers::Standalone,
        "You can only use --standalone on a controller.",
    );
    let static_voters = dynamic_controller(dir, &["controller.quorum.voters=1@127.0.0.1:9093"]);
    let static_message = "You cannot specify controller.quorum.voters and format the node with \
        --initial-controllers or --standalone. If you want to use dynamic quorum, please remove \
        controller.quorum.voters and specify controller.quorum.bootstrap.servers instead.";
    expect(&static_voters, InitialControllers::Standalone, static_message);
    expect(
        &static_voters,
        InitialControllers::Given(format!("1@h:9093:{CLUSTER}")),
        static_message,
    );
    expect(
        &dynamic_controller(dir, &[]),
        InitialControllers::NotGiven,
        "Because controller.quorum.voters is not set on this controller, you must specify one of the following: \
         --standalone, --initial-controllers, or --no-initial-controllers.",
    );
    let single = config(&[format!("log.dirs={}", dir.join("single").display())]);
    expect(
        &single,
        InitialControllers::Standalone,
        "--standalone needs a KRaft configuration, and process.roles is not set.",
    );
    // Nothing was written by any of these.
    assert!(!dir.join("data").exists() && !dir.join("single").exists());
    // A node that joins a quorum that exists needs no initial voters.
    run(
        &dynamic_controller(dir, &[]),
        &options(InitialControllers::NoInitialControllers),
    )
    .unwrap();
    assert_eq!(
        read_format(&dynamic_controller(dir, &[]))
            .unwrap()
            .unwrap()
            .initial_voters,
        None
    );
}

#[test]
fn initial_controllers_parse_with_kafkas_messages() {
    for (spec, message) in [
        ("abc", "No @ found in dynamic voter string."),
        ("@h:1:x", "Invalid @ at beginning of dynamic voter string."),
        ("1@h", "No colon following hostname could be found."),
        (
            "x@h:1:MjpJvG0KSauIJkzPM2xAWw",
            "Failed to parse node id in dynamic voter string.",
        ),
        (
            "-1@h:1:MjpJvG0KSauIJkzPM2xAWw",
            "Invalid negative node id -1 in dynamic voter string.",
        ),
        (
            "1@h:x:MjpJvG0KSauIJkzPM2xAWw",
            "Failed to parse port in dynamic voter string.",
        ),
        (
            "1@h:70000:MjpJvG0KSauIJkzPM2xAWw",
            "Invalid port 70000 in dynamic voter string.",
        ),
        ("1@h:1:bad", "Failed to parse directory ID in dynamic voter string."),
        ("1@h:1", "No colon following port could be found."),
        (
            "1@[::1:1:x",
            "Hostname began with left bracket, but no right bracket was found.",
        ),
        ("1@[::1]1:x", "Port section must start with a colon."),
        (
            "1@h:1:MjpJvG0KSauIJkzPM2xAWw,1@h:2:AAAAAAAAAAAAAAAAAAAAAQ",
            "Node id 1 was specified more than once.",
        ),
        (" , ", "No voters given."),
    ] {
        assert_eq!(parse_initial_controllers(spec).unwrap_err(), message, "{spec}");
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&[format!("log.dirs={}", tmp.path().join("data").display())]);
    let mut o = options(InitialControllers::NotGiven);
    o.cluster_id = " ".into();
    let err = run(&c, &o).unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.exit_code()),
        ("the cluster id is empty", 2)
    );
    let mut o = options(InitialControllers::NotGiven);
    o.add_scram = vec!["bogus".into()];
    let err = run(&c, &o).unwrap_err();
    assert!(err.to_string().starts_with("--add-scram 'bogus'"), "{err}");
    assert_eq!(err.exit_code(), 2);
    assert!(!tmp.path().join("data").exists());
}

#[test]
fn a_separate_metadata_log_dir_holds_the_bootstrap() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, meta_dir) = (tmp.path().join("data"), tmp.path().join("meta"));
    let c = config(&[
        format!("log.dirs={}", data.display()),
        format!("metadata.log.dir={}", meta_dir.display()),
    ]);
    let printed = run(&c, &options(InitialControllers::NotGiven)).unwrap();
    assert!(
        printed.contains(&format!("Formatting data directory {}", data.display())),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("Formatting metadata directory {}", meta_dir.display())),
        "{printed}"
    );
    assert!(meta_dir.join(BOOTSTRAP_FILE).exists() && !data.join(BOOTSTRAP_FILE).exists());
    assert_eq!(read_format(&c).unwrap().unwrap().cluster_id, CLUSTER);
}

#[test]
fn directories_that_cannot_be_read_or_created() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let ok = tmp.path().join("ok");
    // A data directory under a file is skipped, with Kafka's words.
    let c = config(&[format!("log.dirs={},{}", ok.display(), file.join("sub").display())]);
    let printed = run(&c, &options(InitialControllers::NotGiven)).unwrap();
    assert!(
        printed.starts_with(&format!(
            "I/O error trying to read log directory {}. Ignoring...\n",
            file.join("sub").display()
        )),
        "{printed}"
    );
    assert!(ok.join(META_PROPERTIES).exists());
    // The metadata directory cannot be skipped.
    let c = config(&[format!("log.dirs={}", file.join("sub").display())]);
    let err = run(&c, &options(InitialControllers::NotGiven)).unwrap_err();
    assert!(matches!(err, FormatError::MetadataDirectoryUnreadable { .. }), "{err}");
    assert_eq!(err.exit_code(), 1);
    // A directory that does not exist and cannot be made.
    let c = config(&["log.dirs=/proc/sluice-nope/x".into()]);
    let err = run(&c, &options(InitialControllers::NotGiven)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Error while writing meta.properties file /proc/sluice-nope/x: "),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
}
