//! The `sluice` command: run a broker from Kafka-style configuration.

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice::metadata::formatter::{FormatOptions, InitialControllers};
use sluice::{BrokerConfig, RunningBroker};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info, warn};

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka wire-protocol compatible broker",
    long_about = "A Kafka wire-protocol compatible broker. With no arguments it serves on \
                  localhost:9092 and keeps its data in ./sluice-data. Configuration uses \
                  Kafka's own server.properties keys; environment variables SLUICE_<KEY> \
                  set keys too (SLUICE_LOG_DIRS sets log.dirs), below --override.",
    // `sluice format ...` is the subcommand even beside a positional config
    // file: a file named "format" is given as ./format.
    args_conflicts_with_subcommands = true,
    // `sluice help` stays what it was: a config file named "help".
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// A server.properties file (Kafka key names).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set one config key, overriding the file and the environment; repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,

    /// The config file may also be given as the only positional argument,
    /// as with kafka-server-start.sh.
    #[arg(value_name = "FILE", conflicts_with = "config")]
    config_file: Option<PathBuf>,

    /// Create or replace a SCRAM credential at start, as
    /// `kafka-storage format --add-scram` does; repeatable.
    /// Example: 'SCRAM-SHA-512=[name=alice,password=alice-secret]'
    #[arg(long = "add-scram", value_name = "SPEC")]
    add_scram: Vec<String>,

    /// Log lines as text (default) or JSON; the same as logging.format.
    #[arg(long = "log-format", value_enum)]
    log_format: Option<LogFormat>,

    /// Check that a broker answers at HOST:PORT (an ApiVersions round trip)
    /// and exit 0 if it does, 1 if not. For container health checks.
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "localhost:9092")]
    healthcheck: Option<String>,

    /// Keep the data (logs and metadata) in a new temporary directory,
    /// removed when the broker stops: a fresh broker for a test suite, with
    /// nothing to format or clean up. Overrides log.dirs and metadata.log.dir.
    #[arg(long)]
    ephemeral: bool,
}

/// The storage commands, as Kafka's `kafka-storage` has them.
#[derive(Subcommand)]
enum Command {
    /// Print a new random cluster id (as `kafka-storage random-uuid`).
    RandomUuid,
    /// Format the log directories of this node (as `kafka-storage format`).
    /// A single node needs no format; one that has been formatted takes its
    /// cluster id and initial records from it.
    Format(FormatArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("quorum").multiple(false)))]
struct FormatArgs {
    /// The configuration file to use (server.properties, Kafka key names).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,

    /// Set one config key, overriding the file and the environment; repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,

    /// The cluster id to use (`sluice random-uuid` makes one).
    #[arg(long = "cluster-id", short = 't', value_name = "CLUSTER_ID")]
    cluster_id: String,

    /// A SCRAM credential to add to the metadata log; repeatable.
    /// Example: 'SCRAM-SHA-256=[name=alice,password=alice-secret]'
    #[arg(long = "add-scram", short = 'S', value_name = "SPEC")]
    add_scram: Vec<String>,

    /// Skip directories that are already formatted rather than failing.
    #[arg(long = "ignore-formatted", short = 'g')]
    ignore_formatted: bool,

    /// Start a dynamic quorum with this controller as its only voter.
    #[arg(long, short = 's', group = "quorum")]
    standalone: bool,

    /// The initial voters of a dynamic quorum, the same on every node:
    /// id@host:port:directory-id,... (KIP-853).
    #[arg(long = "initial-controllers", short = 'I', value_name = "SPEC", group = "quorum")]
    initial_controllers: Option<String>,

    /// Format a node that will join a quorum that exists.
    #[arg(long = "no-initial-controllers", short = 'N', group = "quorum")]
    no_initial_controllers: bool,
}

/// Environment variables that are not configuration (the test suites' own).
const NOT_CONFIG: &[&str] = &["SLUICE_BIN"];

/// `SLUICE_LOG_DIRS=/data` → `log.dirs=/data`.
fn environment_overrides() -> Vec<String> {
    let mut out: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SLUICE_") && !NOT_CONFIG.contains(&k.as_str()))
        .map(|(k, v)| format!("{}={v}", k["SLUICE_".len()..].to_ascii_lowercase().replace('_', ".")))
        .collect();
    out.sort();
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::RandomUuid) => {
            println!(
                "{}",
                sluice::metadata::topic_id_string(sluice::metadata::random_kafka_uuid())
            );
            return ExitCode::SUCCESS;
        }
        Some(Command::Format(args)) => return format(args),
        None => {}
    }
    if let Some(address) = &cli.healthcheck {
        return healthcheck(address);
    }
    raise_open_file_limit();
    return_large_buffers_to_the_os();

    let file = cli.config.or(cli.config_file);
    let mut overrides = environment_overrides();
    overrides.extend(cli.overrides.iter().cloned());
    // Removed at the end of main, after the broker has stopped.
    let ephemeral_data = match cli.ephemeral {
        true => match ephemeral_dir(&mut overrides) {
            Ok(dir) => Some(dir),
            Err(e) => {
                eprintln!("sluice: --ephemeral: cannot create a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
        false => None,
    };
    let mut loaded = match BrokerConfig::load(file.as_deref(), &overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => loaded.config.log_json,
    };
    init_logging(json, &loaded.config.log_level);

    // TLS material that rustls refuses (a key not matching its certificate...)
    // is a configuration error too.
    for (name, security) in &loaded.config.security.listeners {
        if let Some(tls) = &security.tls {
            if let Err(e) = sluice::server::tls::acceptor(tls) {
                eprintln!("sluice: listener {name}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for spec in &cli.add_scram {
        match sluice::auth::scram::parse_add_scram(spec) {
            Ok(credential) => loaded.config.initial_scram.push(credential),
            Err(e) => {
                eprintln!("sluice: --add-scram {e}");
                return ExitCode::from(2);
            }
        }
    }
    for key in &loaded.unknown_keys {
        warn!(key = %key, "unknown config key, ignored");
    }
    if !loaded.ignored_keys.is_empty() {
        info!(keys = %loaded.ignored_keys.join(", "), "Kafka config keys accepted without effect");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ephemeral = ephemeral_data.is_some();
    let code = runtime.block_on(async move {
        // Signal handlers go in before the listeners answer, so a SIGTERM sent
        // as soon as the broker is reachable still shuts it down cleanly.
        let signals = ShutdownSignals::install();
        let broker = match RunningBroker::start(loaded.config).await {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, "could not start");
                return ExitCode::FAILURE;
            }
        };
        // Logs go to stderr: stdout carries this line only. A closed stdout
        // is no reason to stop serving.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{}", broker.ready_line()).and_then(|()| stdout.flush());
        signals.wait().await;
        if ephemeral {
            // Its data is about to be removed: nothing to flush, close or
            // checkpoint for a next start, so a test suite's broker stops at once.
            info!("stopped (ephemeral: data discarded)");
            return ExitCode::SUCCESS;
        }
        match broker.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(error = %e, "unclean shutdown");
                ExitCode::FAILURE
            }
        }
    });
    if ephemeral {
        // The broker's tasks were not stopped one by one: a blocking one still
        // running must not hold the exit (and the removal of its data) up.
        runtime.shutdown_timeout(Duration::from_millis(500));
    }
    // The temporary directory goes here, after the runtime.
    drop(ephemeral_data);
    code
}

/// A new temporary directory for the data of an `--ephemeral` broker, put
/// last in the overrides so that it wins over the file and the environment.
fn ephemeral_dir(overrides: &mut Vec<String>) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("sluice-ephemeral-").tempdir()?;
    overrides.push(format!("log.dirs={}", dir.path().display()));
    // Empty: the metadata log goes to the first of log.dirs.
    overrides.push("metadata.log.dir=".to_string());
    Ok(dir)
}

/// `sluice format`: the same configuration as the broker would read (file,
/// environment, overrides), then Kafka's format. Bad input exits 2, what is
/// on disk 1.
fn format(args: FormatArgs) -> ExitCode {
    let mut overrides = environment_overrides();
    overrides.extend(args.overrides.iter().cloned());
    let loaded = match BrokerConfig::load(Some(&args.config), &overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    for key in &loaded.unknown_keys {
        eprintln!("sluice: unknown config key '{key}', ignored");
    }
    let initial_controllers = match (args.standalone, args.initial_controllers, args.no_initial_controllers) {
        (true, _, _) => InitialControllers::Standalone,
        (_, Some(spec), _) => InitialControllers::Given(spec),
        (_, _, true) => InitialControllers::NoInitialControllers,
        _ => InitialControllers::NotGiven,
    };
    let options = FormatOptions {
        cluster_id: args.cluster_id,
        ignore_formatted: args.ignore_formatted,
        initial_controllers,
        add_scram: args.add_scram,
    };
    match sluice::metadata::formatter::format(&loaded.config, &options, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Text for people, JSON (one object per line) for log pipelines. RUST_LOG,
/// when set, wins over `logging.level`.
fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // openraft narrates every vote at info: its warnings are what an operator needs.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).with_span_list(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// One ApiVersions v0 round trip; exit 0 when the broker answers it.
fn healthcheck(address: &str) -> ExitCode {
    let answered = (|| -> std::io::Result<bool> {
        use std::net::ToSocketAddrs;
        let addr = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        // Size, api key 18, version 0, correlation id 1, null client id.
        stream.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff])?;
        let mut head = [0u8; 10];
        stream.read_exact(&mut head)?;
        Ok(head[4..8] == [0, 0, 0, 1] && head[8..10] == [0, 0])
    })();
    match answered {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("sluice: {address} answered, but not as a healthy broker");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sluice: {address}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Request and fetch buffers of up to tens of MiB come and go; glibc would
/// otherwise keep them in its heap after a burst, and the broker's resident
/// memory would stay at its peak. A fixed mmap threshold hands them back.
/// It is 4 MiB, not lower: the working vectors of a fetch or produce across
/// 10,000 partitions are 1-3 MiB each, and mapping, faulting in and unmapping
/// them on every request cost a 10,000-partition session-opening fetch a
/// third of its time. The heap's top is trimmed past 8 MiB free.
fn return_large_buffers_to_the_os() {
    // SAFETY: mallopt only adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 * 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Every connection and segment is a file descriptor: take the hard limit
/// rather than the often small soft one, as Kafka's start scripts advise.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// SIGTERM and SIGINT, listened for from the moment of installing.
struct ShutdownSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        ShutdownSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => info!("received SIGINT"),
            _ = recv(&mut self.term) => info!("received SIGTERM"),
        }
    }
}
