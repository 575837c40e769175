//! The `sluice` command: run a broker from Kafka-style configuration.

use clap::Parser;
use sluice::{BrokerConfig, RunningBroker};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka wire-protocol compatible broker",
    long_about = "A Kafka wire-protocol compatible broker. With no arguments it serves on \
                  localhost:9092 and keeps its data in ./sluice-data. Configuration uses \
                  Kafka's own server.properties keys."
)]
struct Cli {
    /// A server.properties file (Kafka key names).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set one config key, overriding the file; repeatable.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    raise_open_file_limit();
    return_large_buffers_to_the_os();
    let file = cli.config.or(cli.config_file);
    let mut loaded = match BrokerConfig::load(file.as_deref(), &cli.overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
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

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match RunningBroker::start(loaded.config).await {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, "could not start");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        match broker.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(error = %e, "unclean shutdown");
                ExitCode::FAILURE
            }
        }
    })
}

/// Request and fetch buffers of up to tens of MiB come and go; glibc would
/// otherwise keep them in its heap after a burst, and the broker's resident
/// memory would stay at its peak. A fixed mmap threshold hands them back.
fn return_large_buffers_to_the_os() {
    // SAFETY: mallopt only adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
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
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("received SIGINT"),
        _ = term.recv() => info!("received SIGTERM"),
    }
}
