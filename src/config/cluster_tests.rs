use super::*;
use crate::config::{BrokerConfig, ConfigError};

/// Kafka's single-node KRaft configuration (as in FIELD-NOTES), plus changes.
fn kraft(changes: &[&str]) -> Result<BrokerConfig, ConfigError> {
    let mut overrides: Vec<String> = [
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.voters=1@127.0.0.1:9093",
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "controller.listener.names=CONTROLLER",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for change in changes {
        // "-key" removes a key.
        if let Some(key) = change.strip_prefix('-') {
            overrides.retain(|o| !o.starts_with(&format!("{key}=")));
        } else {
            overrides.push(change.to_string());
        }
    }
    BrokerConfig::load(None, &overrides).map(|l| l.config)
}

fn cluster_error(changes: &[&str]) -> ClusterConfigError {
    match kraft(changes) {
        Err(ConfigError::Cluster(e)) => e,
        other => panic!("expected a cluster config error, got {other:?}"),
    }
}

fn invalid_value(changes: &[&str]) -> String {
    match kraft(changes) {
        Err(e @ ConfigError::InvalidValue { .. }) => e.to_string(),
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

#[test]
fn without_process_roles_nothing_changes() {
    let c = BrokerConfig::default();
    assert_eq!(c.cluster.roles, None);
    assert!(c.cluster.voters.is_empty());
    assert_eq!(c.cluster.broker_session_timeout_ms, 9000);
    assert_eq!(c.cluster.broker_heartbeat_interval_ms, 2000);
    assert_eq!(c.cluster.election_timeout_ms, 1000);
    assert!(!c.cluster.is_cluster(c.node_id));
    // The cluster keys alone, without process.roles, are not checked against each other.
    let c = BrokerConfig::load(None, &["controller.listener.names=CONTROLLER".into()])
        .unwrap()
        .config;
    assert_eq!(c.cluster.controller_listener_names, vec!["CONTROLLER".to_string()]);
    assert!(!c.cluster.is_cluster(c.node_id));
}

#[test]
fn kafkas_single_node_kraft_config_is_known_and_stays_single_node() {
    let loaded = BrokerConfig::load(
        None,
        &[
            "process.roles=broker,controller".into(),
            "node.id=1".into(),
            "controller.quorum.voters=1@127.0.0.1:9093".into(),
            "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093".into(),
            "advertised.listeners=PLAINTEXT://127.0.0.1:9092".into(),
            "controller.listener.names=CONTROLLER".into(),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            "inter.broker.listener.name=PLAINTEXT".into(),
        ],
    )
    .unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    assert!(loaded.ignored_keys.is_empty(), "{:?}", loaded.ignored_keys);
    let c = loaded.config;
    assert_eq!(
        c.cluster.roles,
        Some(ProcessRoles {
            broker: true,
            controller: true
        })
    );
    assert_eq!(
        c.cluster.voters,
        vec![Voter {
            id: 1,
            host: "127.0.0.1".into(),
            port: 9093,
            directory_id: None
        }]
    );
    assert_eq!(c.cluster.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
    assert!(!c.cluster.is_cluster(1));
    // The controller listener is a listener like the others.
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(
        c.cluster.controller_security_protocol,
        Some(SecurityProtocol::Plaintext)
    );
}

#[test]
fn a_controller_listener_is_plaintext_when_the_protocol_map_is_not_given() {
    // Kafka adds CONTROLLER:PLAINTEXT to its default map for KRaft nodes.
    let c = kraft(&[]).unwrap();
    assert_eq!(c.security.listeners["CONTROLLER"].protocol, SecurityProtocol::Plaintext);
    // An explicit map must name it, as in Kafka.
    let err = kraft(&["listener.security.protocol.map=PLAINTEXT:PLAINTEXT"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no security protocol for listener CONTROLLER"), "{err}");
    // ... and so must a broker-only node, whose listeners do not include it.
    assert_eq!(
        cluster_error(&[
            "process.roles=broker",
            "node.id=2",
            "listeners=PLAINTEXT://127.0.0.1:9092",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT",
        ]),
        ClusterConfigError::ControllerListenerWithoutProtocol("CONTROLLER".into())
    );
    // With SASL or SSL in use Kafka adds nothing.
    let err = kraft(&[
        "listeners=CONTROLLER://127.0.0.1:9093,SASL_PLAINTEXT://127.0.0.1:9092",
        "inter.broker.listener.name=SASL_PLAINTEXT",
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("no security protocol for listener CONTROLLER"), "{err}");
}

#[test]
fn voters_and_bootstrap_servers_parse_as_kafka_writes_them() {
    let c = kraft(&["controller.quorum.voters=1@a:9093, 2@[::1]:9094,3@c.example:9095"]).unwrap();
    let voters: Vec<(i32, &str, u16)> = c
        .cluster
        .voters
        .iter()
        .map(|v| (v.id, v.host.as_str(), v.port))
        .collect();
    assert_eq!(voters, vec![(1, "a", 9093), (2, "::1", 9094), (3, "c.example", 9095)]);
    assert!(c.cluster.is_cluster(1));
    let c = kraft(&[
        "-controller.quorum.voters",
        "controller.quorum.bootstrap.servers=a:9093,[::1]:9094",
    ])
    .unwrap();
    assert_eq!(
        c.cluster.bootstrap_servers,
        vec![("a".to_string(), 9093), ("::1".to_string(), 9094)]
    );
    assert!(c.cluster.voters.is_empty());
}

#[test]
fn bad_voters_and_bootstrap_servers_name_key_and_value() {
    for (value, words) in [
        ("abc", "Each entry should be in the form `{id}@{host}:{port}`"),
        ("1@host", "Failed to parse host name from entry 1@host"),
        ("x@h:1", "Failed to parse voter ID as an integer from x"),
        ("1@h:notaport", "Failed to parse host name from entry 1@h:notaport"),
        ("1@h:99999", "port out of range"),
        ("-1@h:1", "negative"),
        ("1@h:1,1@h:2", "voter ID 1 appears more than once"),
    ] {
        let err = invalid_value(&[&format!("controller.quorum.voters={value}")]);
        assert!(
            err.contains("controller.quorum.voters") && err.contains(value) && err.contains(words),
            "{err}"
        );
    }
    for value in ["nohostport", "h:x", ":9093"] {
        let err = invalid_value(&[
            "-controller.quorum.voters",
            &format!("controller.quorum.bootstrap.servers={value}"),
        ]);
        assert!(
            err.contains("controller.quorum.bootstrap.servers") && err.contains("Failed to parse host name"),
            "{err}"
        );
    }
}

#[test]
fn roles_must_be_broker_or_controller() {
    let err = invalid_value(&["process.roles=foo"]);
    assert!(
        err.contains("'process.roles'") && err.contains("'foo'") && err.contains("broker, controller"),
        "{err}"
    );
    let err = invalid_value(&["process.roles="]);
    assert!(err.contains("must not be empty"), "{err}");
    // A repeated role is dropped, as Kafka drops it.
    let c = kraft(&["process.roles=broker,controller,broker"]).unwrap();
    assert_eq!(
        c.cluster.roles,
        Some(ProcessRoles {
            broker: true,
            controller: true
        })
    );
}

#[test]
fn timeouts_and_metadata_log_dir() {
    let c = kraft(&[
        "broker.session.timeout.ms=18000",
        "broker.heartbeat.interval.ms=500",
        "controller.quorum.election.timeout.ms=2500",
        "metadata.log.dir=/var/sluice/meta",
    ])
    .unwrap();
    assert_eq!(c.cluster.broker_session_timeout_ms, 18000);
    assert_eq!(c.cluster.broker_heartbeat_interval_ms, 500);
    assert_eq!(c.cluster.election_timeout_ms, 2500);
    assert_eq!(c.cluster.metadata_log_dir, Some(PathBuf::from("/var/sluice/meta")));
    for bad in [
        "broker.session.timeout.ms=x",
        "broker.heartbeat.interval.ms=0",
        "controller.quorum.election.timeout.ms=-5",
    ] {
        let err = invalid_value(&[bad]);
        let (k, v) = bad.split_once('=').unwrap();
        assert!(err.contains(k) && err.contains(v), "{err}");
    }
}

#[test]
fn kafkas_checks_across_keys() {
    assert_eq!(cluster_error(&["-node.id"]), ClusterConfigError::Missing("node.id"));
    assert_eq!(
        cluster_error(&["-controller.listener.names"]),
        ClusterConfigError::Missing("controller.listener.names")
    );
    assert_eq!(
        cluster_error(&["-controller.quorum.voters"]),
        ClusterConfigError::NoQuorum
    );
    // A controller must be one of the static voters.
    assert_eq!(
        cluster_error(&["controller.quorum.voters=2@h:9093,3@h:9093"]),
        ClusterConfigError::ControllerNotVoter {
            node_id: 1,
            voters: "[2, 3]".into()
        }
    );
    // ... and have its controller listener among its listeners.
    assert_eq!(
        cluster_error(&[
            "controller.listener.names=CTRL",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ]),
        ClusterConfigError::NoControllerListener
    );
    assert_eq!(
        cluster_error(&["controller.listener.names=CONTROLLER,OTHER"]),
        ClusterConfigError::UnknownControllerListener
    );
    // A broker-only node is no voter and has no controller listener.
    assert_eq!(
        cluster_error(&["process.roles=broker", "listeners=PLAINTEXT://127.0.0.1:9092"]),
        ClusterConfigError::BrokerIsVoter {
            node_id: 1,
            voters: "[1]".into()
        }
    );
    assert_eq!(
        cluster_error(&["process.roles=broker", "node.id=2"]),
        ClusterConfigError::BrokerHasControllerListener
    );
    // A controller-only node serves only controller listeners.
    assert_eq!(
        cluster_error(&["process.roles=controller"]),
        ClusterConfigError::ControllerOnlyHasBrokerListener
    );
    // A broker needs a broker listener, and the inter-broker one among them.
    assert_eq!(
        cluster_error(&["listeners=CONTROLLER://127.0.0.1:9093"]),
        ClusterConfigError::NoBrokerListener
    );
    assert_eq!(
        cluster_error(&[
            "listeners=EXTERNAL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            "listener.security.protocol.map=EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]),
        ClusterConfigError::InterBrokerListenerNotAdvertised {
            options: "EXTERNAL".into()
        }
    );
    let err = cluster_error(&["inter.broker.listener.name=CONTROLLER"]);
    assert_eq!(
        err.to_string(),
        "inter.broker.listener.name must be a listener name defined in advertised.listeners. \
         The valid options based on currently configured listeners are PLAINTEXT"
    );
    // Kafka's words, as `kafka-storage format` printed them.
    assert_eq!(
        ClusterConfigError::ControllerNotVoter {
            node_id: 1,
            voters: "[2]".into()
        }
        .to_string(),
        "If process.roles contains the 'controller' role, the node id 1 must be included in the set of voters \
         controller.quorum.voters=[2]"
    );
}

#[test]
fn valid_shapes_of_a_cluster() {
    // A broker-only node.
    let c = kraft(&[
        "process.roles=broker",
        "node.id=4",
        "listeners=PLAINTEXT://127.0.0.1:9092",
        "controller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093",
    ])
    .unwrap();
    assert!(c.cluster.is_cluster(4));
    assert_eq!(
        c.cluster.controller_security_protocol,
        Some(SecurityProtocol::Plaintext)
    );
    // A controller-only node.
    let c = kraft(&["process.roles=controller", "listeners=CONTROLLER://127.0.0.1:9093"]).unwrap();
    assert!(c.cluster.is_cluster(1));
    // A combined node of a dynamic quorum (Kafka 4's own server.properties).
    let c = kraft(&[
        "-controller.quorum.voters",
        "controller.quorum.bootstrap.servers=localhost:9093",
        "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
        "advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
    ])
    .unwrap();
    assert!(c.cluster.is_cluster(1));
    // Static voter and bootstrap servers both: a quorum others may join.
    let c = kraft(&["controller.quorum.bootstrap.servers=127.0.0.1:9093"]).unwrap();
    assert!(c.cluster.is_cluster(1));
}

#[test]
fn the_standalone_voter_is_the_advertised_controller_listener() {
    let c = kraft(&[
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093",
        "-controller.quorum.voters",
        "controller.quorum.bootstrap.servers=127.0.0.1:9093",
    ])
    .unwrap();
    assert_eq!(
        c.cluster.controller_endpoint(&c.listeners, &c.advertised_listeners),
        Some(("localhost".to_string(), 9093))
    );
    let c = kraft(&[
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093",
        "advertised.listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://ctrl.example:9099",
    ])
    .unwrap();
    assert_eq!(
        c.cluster.controller_endpoint(&c.listeners, &c.advertised_listeners),
        Some(("ctrl.example".to_string(), 9099))
    );
}
