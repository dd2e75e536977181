//! impair-relay: a userspace UDP impairment relay (delay, jitter, loss, duplication, rate limit,
//! NAT rebinding) for test networks on kernels without netem
//!
//! ```text
//! impair-relay --listen 198.18.1.1:5000 --upstream 198.18.2.2:4433 --delay 20ms --jitter 5ms \
//!     --loss 0.02 --dup 0.01 --rebind-every 2s --seed 7
//! ```
//! Runs until CTRL-C / SIGTERM (or `--duration`), then prints its counters.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use quictun_tests::relay::{Impairment, Relay, RelayConfig};

#[derive(Debug, Parser)]
#[command(version, about = "UDP impairment relay with NAT rebinding")]
struct Args {
    /// Address clients send to
    #[arg(long)]
    listen: SocketAddr,
    /// Server to forward to
    #[arg(long)]
    upstream: SocketAddr,
    /// One-way delay, each direction (e.g. 20ms)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    delay: Duration,
    /// Uniform jitter around the delay; reorders packets
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    jitter: Duration,
    /// Loss probability per datagram, 0..1
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    loss: f64,
    /// Duplication probability per datagram, 0..1
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    dup: f64,
    /// Rate limit per direction in bytes per second
    #[arg(long)]
    rate: Option<u64>,
    /// Queue limit (in time) of the rate limiter
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    queue: Duration,
    /// Change the upstream source port this often (NAT rebinding)
    #[arg(long, value_parser = humantime::parse_duration)]
    rebind_every: Option<Duration>,
    /// Local addresses to rotate through on rebind (repeatable)
    #[arg(long = "rebind-addr")]
    rebind_addrs: Vec<IpAddr>,
    /// RNG seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this long
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability in [0, 1]"))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = RelayConfig::new(args.listen, args.upstream);
    cfg.impairment = Impairment {
        delay: args.delay,
        jitter: args.jitter,
        loss: args.loss,
        duplicate: args.dup,
        rate: args.rate,
        queue_limit: args.queue,
    };
    cfg.seed = args.seed;
    cfg.rebind_every = args.rebind_every;
    cfg.rebind_addrs = args.rebind_addrs;
    let relay = Relay::spawn(cfg)?;
    eprintln!(
        "impair-relay: {} -> {} (seed {})",
        relay.local_addr(),
        args.upstream,
        args.seed
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let limit = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
            _ = limit => {}
        }
        anyhow::Ok(())
    })?;
    let c = relay.stop();
    eprintln!("impair-relay: {c:?}");
    Ok(())
}
