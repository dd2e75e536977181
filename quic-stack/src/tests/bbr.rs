//! BBR end to end: bulk transfers over a lossy, bandwidth-limited simulated path

use std::time::Duration;

use super::util::{payload, Harness, Setup};
use crate::cc::Algorithm;
use crate::config::TransportConfig;
use crate::shared::Dir;
use crate::sim::LinkConfig;

/// Bottleneck rate of the scenario, bytes per second (16 Mbit/s)
const RATE: u64 = 2_000_000;

/// Transfer `len` bytes client to server with `congestion` on a 2 MB/s, 25 ms, lossy path;
/// returns the goodput in bytes per (virtual) second and the client's loss count
fn bulk(seed: u64, congestion: Algorithm, loss: f64, len: usize) -> (f64, u64) {
    let mut h = Harness::new(Setup {
        seed,
        transport: TransportConfig {
            congestion,
            ..TransportConfig::default()
        },
        link: LinkConfig {
            delay: Duration::from_millis(25),
            loss,
            bandwidth: Some(RATE),
            // About 2 BDPs of buffer
            queue_limit: 200_000,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let data = payload(len, seed);
    let start = h.now();
    let got = h.transfer(Dir::Uni, &data);
    let elapsed = h.now() - start;
    assert!(got == data, "seed {seed}: payload mismatch");
    let stats = h.client_conn().stats();
    eprintln!(
        "{congestion}: {len} B in {elapsed:?}, lost {}",
        stats.packets_lost
    );
    (len as f64 / elapsed.as_secs_f64(), stats.packets_lost)
}

#[test]
fn bbr_bulk_transfer_over_a_lossy_bottleneck() {
    let seed = std::env::var("QUICTUN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(31);
    let (goodput, lost) = bulk(seed, Algorithm::Bbr, 0.01, 4 << 20);
    // Random loss must actually have happened for the scenario to mean anything
    assert!(lost > 10, "seed {seed}: only {lost} packets lost");
    // BBR's model ignores random loss: it keeps most of the bottleneck busy
    assert!(
        goodput > 0.6 * RATE as f64,
        "seed {seed}: goodput {goodput:.0} B/s of {RATE}"
    );
    assert!(goodput <= RATE as f64, "seed {seed}: faster than the link?");
}

#[test]
fn bbr_beats_newreno_under_random_loss() {
    let seed = 32;
    let (bbr, _) = bulk(seed, Algorithm::Bbr, 0.02, 2 << 20);
    let (reno, _) = bulk(seed, Algorithm::NewReno, 0.02, 2 << 20);
    // Halving on every random loss leaves NewReno far below the link rate; BBR is not
    // loss-driven
    assert!(
        bbr > 1.5 * reno,
        "seed {seed}: bbr {bbr:.0} newreno {reno:.0}"
    );
}
