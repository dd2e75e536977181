//! `mtu = "auto"`: the interface MTU follows the largest packet one DATAGRAM frame carries
//!
//! PMTUD raises the connection's datagram limit above the 1280 bytes we start with once it
//! finds a larger path (about 1430 on a 1500-byte underlay); a path that shrinks (migration to
//! a narrower uplink) lowers it. Setting the TUN MTU to that limit lets the kernel size inner
//! packets (and TCP segments) so that every one fits a datagram, instead of answering
//! oversize ones with Packet Too Big.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netdev::Netlink;

use crate::link::QuicLink;
use crate::router::Router;

/// IPv6 forbids links below 1280 bytes (RFC 8200 §5)
const IPV6_MIN_MTU: usize = 1280;
/// The IPv4 minimum every host must accept (RFC 791)
const IPV4_MIN_MTU: usize = 576;
/// How often the limits are compared; PMTUD itself probes on a scale of seconds
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The interface MTU for the current datagram limits of the connected peers, or `None` when
/// no peer takes datagrams (the MTU then stays as it is)
pub fn auto_mtu(limits: impl IntoIterator<Item = usize>, ipv6: bool) -> Option<usize> {
    let smallest = limits.into_iter().min()?;
    let floor = if ipv6 { IPV6_MIN_MTU } else { IPV4_MIN_MTU };
    // Below the floor the interface keeps the floor; the router answers what does not fit a
    // datagram with Packet Too Big or carries it on a stream (carriage = "auto")
    Some(smallest.clamp(floor, usize::from(u16::MAX)))
}

/// Keep the TUN `if_index` and the router at the MTU the connections allow, until aborted
pub async fn follow(
    links: Vec<Arc<QuicLink>>,
    router: Arc<Mutex<Router>>,
    if_index: u32,
    ipv6: bool,
    mut current: usize,
) {
    let nl = match Netlink::new() {
        Ok(nl) => nl,
        Err(e) => {
            tracing::warn!("mtu = \"auto\" cannot set the interface MTU: {e}");
            return;
        }
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        let limits = links
            .iter()
            .filter_map(|l| l.connection())
            .filter_map(|c| c.max_datagram_size());
        let Some(mtu) = auto_mtu(limits, ipv6) else {
            continue;
        };
        if mtu == current {
            continue;
        }
        let Ok(value) = u32::try_from(mtu) else {
            continue;
        };
        match nl.set_mtu(if_index, value).await {
            Ok(()) => {
                router
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_tunnel_mtu(mtu);
                tracing::info!("interface MTU {current} -> {mtu} (mtu = \"auto\", from the path)");
                current = mtu;
            }
            Err(e) => tracing::warn!("setting the interface MTU to {mtu}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_limit_wins_within_the_family_floor() {
        assert_eq!(auto_mtu([1432, 1400], true), Some(1400));
        assert_eq!(auto_mtu([1200], true), Some(1280));
        assert_eq!(auto_mtu([1200], false), Some(1200));
        assert_eq!(auto_mtu([300], false), Some(576));
        assert_eq!(auto_mtu([], true), None);
    }
}
