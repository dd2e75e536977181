//! `quictun`: command-line entry point
//!
//! Every failure prints as one line, `quictun: <error>`, and exits with 1 (configuration or
//! certificate input), 2 (usage, from clap) or 3 (permission, system, or an unreachable daemon).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tunnel::cert::{self, CertError, PeerCertRequest};
use tunnel::cli::{exit, CertArgs, Cli, Command, MigrateArgs, SockdArgs, StatusArgs, UpArgs};
use tunnel::config::{Config, ConfigError};
use tunnel::control::{self, ControlError, Request};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain with ": " on one line
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("quictun: {line}");
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}

fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<ConfigError>().is_some() {
        return exit::CONFIG;
    }
    if let Some(c) = e.downcast_ref::<CertError>() {
        return match c {
            CertError::Write { .. } => exit::SYSTEM,
            _ => exit::CONFIG,
        };
    }
    exit::SYSTEM
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up(&args),
        Command::Status(args) => status(&args),
        Command::Cert(args) => cert_cmd(&args),
        Command::Demo => Ok(tunnel::demo::run()?),
        Command::Migrate(args) => migrate(&args),
        Command::Sockd(args) => sockd(&args),
    }
}

fn up(args: &UpArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let material = cert::TlsMaterial::load(&config.tls)?;
    let summary = format!(
        "config OK: {} {} with {} peer(s), mtu {:?}{}",
        match config.role() {
            tunnel::config::Role::Server => "server",
            tunnel::config::Role::Client => "client",
        },
        config.interface.name,
        config.peers.len(),
        config.interface.mtu,
        material
            .own_pin()
            .map(|p| format!(", own pin {p}"))
            .unwrap_or_default()
    );
    if args.check {
        println!("{summary}");
        return Ok(());
    }
    init_logging(&config.log.level);
    tracing::info!("{summary}");
    // One thread: the TUN reader, the link readers and the endpoint driver hand every batch
    // to each other, and on a worker pool each hand-off was a cross-thread wake-up (futex,
    // context switch). Measured in the tunnel benchmark: 4-5x fewer context switches and less
    // CPU per Gbit/s than with two workers; the kernel's half of the work (softirq, the other
    // daemon, the applications) runs on the other cores meanwhile.
    // QUICTUN_THREADS=N (N > 1) trades that for parallelism on machines with cores to spare
    let threads = match std::env::var("QUICTUN_THREADS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=64).contains(&n))
            .with_context(|| {
                format!("QUICTUN_THREADS={v:?}: use a number of threads from 1 to 64")
            })?,
        Err(_) => 1,
    };
    let rt = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot install the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        tunnel::up::run(config, material, shutdown).await?;
        anyhow::Ok(())
    })?;
    // Tasks still parked in the runtime (e.g. the endpoint driver) must not delay the exit
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Logs go to stderr; RUST_LOG overrides `[log] level`
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let path = args.target.socket_path();
    let reply = control::query(&path, &Request::Status, Duration::from_secs(5))?;
    if !reply.ok {
        anyhow::bail!(
            "status: daemon refused: {}",
            reply.error.unwrap_or_else(|| "no reason given".into())
        );
    }
    let st = reply
        .status
        .ok_or_else(|| ControlError::Protocol("status reply without a status".into()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&st).context("status: cannot encode JSON")?
        );
    } else {
        print!("{}", st.render_table());
    }
    Ok(())
}

/// `quictun migrate --to ADDR`: the daemon moves its connections to a socket on ADDR
fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let path = args.target.socket_path();
    let reply = control::query(
        &path,
        &Request::Migrate { to: args.to },
        Duration::from_secs(5),
    )?;
    if !reply.ok {
        anyhow::bail!(
            "migrate: daemon refused: {}",
            reply.error.unwrap_or_else(|| "no reason given".into())
        );
    }
    if let Some(m) = reply.message {
        println!("{m}");
    }
    Ok(())
}

fn cert_cmd(args: &CertArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.fingerprint {
        println!("{}", cert::fingerprint_file(file)?);
        return Ok(());
    }
    let written = if args.ca {
        cert::generate_ca(&args.out, args.force)?
    } else if let Some(name) = &args.name {
        let req = PeerCertRequest {
            name: name.clone(),
            dns: args.dns.clone(),
            ips: args.ip.clone(),
        };
        let ca_dir = args.ca_dir.as_deref().unwrap_or(&args.out);
        cert::generate_peer(&args.out, ca_dir, &req, args.force)?
    } else {
        // clap's argument group requires one of --ca, --name, --fingerprint
        anyhow::bail!("cert: pass --ca, --name NAME or --fingerprint FILE");
    };
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// `quictun sockd`: the kernel-QUIC-API socket service of this network namespace, in the
/// foreground until SIGTERM/SIGINT
fn sockd(args: &SockdArgs) -> anyhow::Result<()> {
    // RUST_LOG overrides; the service logs to stderr like the other foreground commands.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(async {
        let limits = tunnel::sockd::Limits {
            sockets_per_uid: args.max_sockets,
            rcvbuf: args.rcvbuf.max(64 * 1024),
            ..tunnel::sockd::Limits::default()
        };
        // The handler goes in before the name is bound: whoever sees the service up may stop it.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("install the SIGTERM handler")?;
        let name = tunnel::sockd::service_name();
        let listener = tunnel::sockd::bind(&name)?;
        tracing::info!("sockd listening on @{name}");
        tokio::select! {
            () = tunnel::sockd::serve(listener, limits) => {}
            _ = term.recv() => tracing::info!("sockd: SIGTERM, exiting"),
            _ = tokio::signal::ctrl_c() => tracing::info!("sockd: interrupted, exiting"),
        }
        anyhow::Ok(())
    })?;
    // Dropping the runtime aborts every session; applications see EOF on their fds.
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}
