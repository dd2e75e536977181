//! The sans-IO tunnel core: which peer an outbound packet goes to, and whether an inbound one may
//! enter the TUN (crypto-key routing, as WireGuard's AllowedIPs)
//!
//! The router never touches a device or socket and never reads the clock: the daemon passes
//! `now` in and acts on the returned [`Outbound`] / [`Inbound`] decisions.
//!
//! Steps for an outbound packet ([`Router::route_outbound`]):
//! 1. parse the IP header; garbage is dropped as `Malformed`;
//! 2. longest-prefix match of the destination over all peers' allowed IPs; no match → `NoRoute`;
//! 3. pick the carriage from the peer's mode and its current max datagram size; a packet that
//!    fits nowhere becomes `TooBig { mtu }` so the daemon writes ICMP Packet Too Big back into the
//!    TUN (rate-limited here, so a flood of large packets cannot turn into a flood of ICMP).
//!
//! For an inbound packet ([`Router::accept_inbound`]): parse, then deliver only if the source
//! address maps back to the very peer it came from.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::allowed_ips::AllowedIps;
use crate::carriage::{Carriage, CarriageMode};
use crate::ip::IpView;

/// Index of a peer in the order given to [`Router::new`]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerId(pub usize);

/// What the router needs to know about a peer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Name for logs, status and metrics
    pub name: String,
    /// Inner prefixes routed to this peer and accepted as sources from it
    pub allowed_ips: Vec<IpNet>,
    /// Carriage policy
    pub carriage: CarriageMode,
}

/// Why a packet was dropped
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a valid IPv4/IPv6 packet
    Malformed,
    /// No peer's allowed IPs contain the destination
    NoRoute,
    /// Inbound packet whose source is not in the sending peer's allowed IPs
    SpoofedSource,
    /// Inbound packet from a peer id the router does not know
    UnknownPeer,
    /// Too big to carry. The counter includes packets answered with [`Outbound::TooBig`]; as a
    /// decision it means no reply either (rate-limited, or an IPv6 PTB below 1280, which hosts
    /// ignore)
    TooBig,
    /// Datagram-only peer whose connection does not accept datagrams
    NoDatagrams,
}

impl DropReason {
    /// Every reason, for exporting counters
    pub const ALL: [Self; 6] = [
        Self::Malformed,
        Self::NoRoute,
        Self::SpoofedSource,
        Self::UnknownPeer,
        Self::TooBig,
        Self::NoDatagrams,
    ];

    /// Stable snake_case name, used as a metrics label and in status output
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NoRoute => "no_route",
            Self::SpoofedSource => "spoofed_source",
            Self::UnknownPeer => "unknown_peer",
            Self::TooBig => "too_big",
            Self::NoDatagrams => "no_datagrams",
        }
    }
}

/// Decision for a packet read from the TUN
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Send to `peer` with the given carriage
    Send {
        /// Destination peer
        peer: PeerId,
        /// Datagram or stream
        carriage: Carriage,
    },
    /// Answer with ICMP/ICMPv6 Packet Too Big announcing `mtu` (the largest packet that would
    /// have been carried), written back into the TUN
    TooBig {
        /// MTU to announce
        mtu: u32,
    },
    /// Drop silently (counted)
    Drop(DropReason),
}

/// Decision for a packet received from a peer
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Write into the TUN
    Deliver,
    /// Drop (counted)
    Drop(DropReason),
}

/// Drop counters, one per [`DropReason`]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounters {
    /// [`DropReason::Malformed`]
    pub malformed: u64,
    /// [`DropReason::NoRoute`]
    pub no_route: u64,
    /// [`DropReason::SpoofedSource`]
    pub spoofed_source: u64,
    /// [`DropReason::UnknownPeer`]
    pub unknown_peer: u64,
    /// [`DropReason::TooBig`]
    pub too_big: u64,
    /// [`DropReason::NoDatagrams`]
    pub no_datagrams: u64,
}

impl DropCounters {
    /// The counter for `reason`
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Malformed => self.malformed,
            DropReason::NoRoute => self.no_route,
            DropReason::SpoofedSource => self.spoofed_source,
            DropReason::UnknownPeer => self.unknown_peer,
            DropReason::TooBig => self.too_big,
            DropReason::NoDatagrams => self.no_datagrams,
        }
    }

    fn bump(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::NoRoute => &mut self.no_route,
            DropReason::SpoofedSource => &mut self.spoofed_source,
            DropReason::UnknownPeer => &mut self.unknown_peer,
            DropReason::TooBig => &mut self.too_big,
            DropReason::NoDatagrams => &mut self.no_datagrams,
        };
        *c += 1;
    }

    /// Sum over all reasons
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// Traffic counters of one peer
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounters {
    /// Packets routed to the peer
    pub tx_packets: u64,
    /// Bytes routed to the peer (inner IP bytes)
    pub tx_bytes: u64,
    /// Packets from the peer delivered to the TUN
    pub rx_packets: u64,
    /// Bytes from the peer delivered to the TUN
    pub rx_bytes: u64,
    /// Outbound packets sent on a stream rather than as datagrams
    pub tx_stream_packets: u64,
    /// Drops attributed to this peer (too big, spoofed source, no datagrams)
    pub drops: DropCounters,
}

/// Router counters
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterStats {
    /// Per peer, indexed by [`PeerId`]
    pub peers: Vec<PeerCounters>,
    /// All drops, including those not attributable to a peer (malformed, no route)
    pub drops: DropCounters,
    /// Packet Too Big replies requested
    pub ptb_sent: u64,
    /// Packet Too Big replies suppressed by the rate limit
    pub ptb_rate_limited: u64,
}

/// Token bucket for Packet Too Big replies
#[derive(Debug, Clone)]
struct RateLimit {
    per_second: u32,
    burst: u32,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimit {
    fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens =
                (self.tokens + dt * f64::from(self.per_second)).min(f64::from(self.burst));
        } else {
            self.tokens = f64::from(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    spec: PeerSpec,
    /// Current max DATAGRAM payload of the peer's connection; None when datagrams are off
    max_datagram: Option<usize>,
}

/// The tunnel's routing core
#[derive(Debug, Clone)]
pub struct Router {
    table: AllowedIps<PeerId>,
    peers: Vec<Peer>,
    tunnel_mtu: usize,
    ptb: RateLimit,
    stats: RouterStats,
}

/// Default Packet Too Big rate: enough for PMTUD of many flows, too few to amplify a flood
pub const DEFAULT_PTB_PER_SECOND: u32 = 20;

impl Router {
    /// Build a router for `peers` on a tunnel of `tunnel_mtu` bytes
    ///
    /// Until [`set_max_datagram`](Self::set_max_datagram) says otherwise, each peer is assumed to
    /// carry datagrams of the tunnel MTU. If allowed IPs overlap between peers (config validation
    /// rejects that), the later peer wins the exact prefix.
    pub fn new(peers: Vec<PeerSpec>, tunnel_mtu: usize) -> Self {
        let mut table = AllowedIps::new();
        for (i, p) in peers.iter().enumerate() {
            for net in &p.allowed_ips {
                table.insert(*net, PeerId(i));
            }
        }
        let n = peers.len();
        Self {
            table,
            peers: peers
                .into_iter()
                .map(|spec| Peer {
                    spec,
                    max_datagram: Some(tunnel_mtu),
                })
                .collect(),
            tunnel_mtu,
            ptb: RateLimit {
                per_second: DEFAULT_PTB_PER_SECOND,
                burst: DEFAULT_PTB_PER_SECOND,
                tokens: 0.0,
                last: None,
            },
            stats: RouterStats {
                peers: vec![PeerCounters::default(); n],
                ..RouterStats::default()
            },
        }
    }

    /// Change the Packet Too Big rate limit (replies per second, also the burst)
    pub fn set_ptb_rate(&mut self, per_second: u32) {
        self.ptb.per_second = per_second;
        self.ptb.burst = per_second.max(1);
    }

    /// The tunnel MTU
    pub fn tunnel_mtu(&self) -> usize {
        self.tunnel_mtu
    }

    /// Follow a new tunnel MTU (`mtu = "auto"` tracks the path)
    pub fn set_tunnel_mtu(&mut self, mtu: usize) {
        self.tunnel_mtu = mtu;
    }

    /// Record `peer`'s current max datagram payload (`None`: the peer takes no datagrams); call
    /// it whenever the connection's limit changes (handshake, PMTUD, migration)
    pub fn set_max_datagram(&mut self, peer: PeerId, max: Option<usize>) {
        if let Some(p) = self.peers.get_mut(peer.0) {
            p.max_datagram = max;
        }
    }

    /// Number of peers
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The peer called `name`
    pub fn peer_id(&self, name: &str) -> Option<PeerId> {
        self.peers
            .iter()
            .position(|p| p.spec.name == name)
            .map(PeerId)
    }

    /// What the router was told about `peer`
    pub fn peer(&self, peer: PeerId) -> Option<&PeerSpec> {
        self.peers.get(peer.0).map(|p| &p.spec)
    }

    /// The peer an inner address routes to
    pub fn lookup(&self, addr: IpAddr) -> Option<PeerId> {
        self.table.lookup(addr).copied()
    }

    /// Counters so far
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    fn drop_global(&mut self, reason: DropReason) -> DropReason {
        self.stats.drops.bump(reason);
        reason
    }

    fn drop_peer(&mut self, peer: PeerId, reason: DropReason) -> DropReason {
        if let Some(c) = self.stats.peers.get_mut(peer.0) {
            c.drops.bump(reason);
        }
        self.drop_global(reason)
    }

    /// Decide what to do with `packet`, read from the TUN at `now`
    pub fn route_outbound(&mut self, packet: &[u8], now: Instant) -> Outbound {
        let Ok(view) = IpView::parse(packet) else {
            return Outbound::Drop(self.drop_global(DropReason::Malformed));
        };
        let Some(peer) = self.lookup(view.dst) else {
            return Outbound::Drop(self.drop_global(DropReason::NoRoute));
        };
        let (mode, max_datagram) = match self.peers.get(peer.0) {
            Some(p) => (p.spec.carriage, p.max_datagram),
            None => return Outbound::Drop(self.drop_global(DropReason::NoRoute)),
        };
        let len = view.total_len;
        let carriage = if len > self.tunnel_mtu {
            // Larger than the interface admits (e.g. an offload super-packet that slipped
            // through): never carried, whatever the mode
            None
        } else {
            mode.choose(len, max_datagram)
        };
        match carriage {
            Some(carriage) => {
                if let Some(c) = self.stats.peers.get_mut(peer.0) {
                    c.tx_packets += 1;
                    c.tx_bytes += len as u64;
                    if carriage == Carriage::Stream {
                        c.tx_stream_packets += 1;
                    }
                }
                Outbound::Send { peer, carriage }
            }
            None if max_datagram.is_none() && len <= self.tunnel_mtu => {
                Outbound::Drop(self.drop_peer(peer, DropReason::NoDatagrams))
            }
            None => {
                let mtu = max_datagram.unwrap_or(self.tunnel_mtu).min(self.tunnel_mtu);
                // RFC 8201: IPv6 hosts ignore a PTB below 1280, so sending one is useless
                let useless = view.dst.is_ipv6() && mtu < 1280;
                if !useless && self.ptb.allow(now) {
                    self.stats.ptb_sent += 1;
                    self.drop_peer(peer, DropReason::TooBig);
                    Outbound::TooBig {
                        mtu: u32::try_from(mtu).unwrap_or(u32::MAX),
                    }
                } else {
                    self.stats.ptb_rate_limited += u64::from(!useless);
                    Outbound::Drop(self.drop_peer(peer, DropReason::TooBig))
                }
            }
        }
    }

    /// Decide whether `packet`, received from `peer`, may be written into the TUN
    pub fn accept_inbound(&mut self, peer: PeerId, packet: &[u8]) -> Inbound {
        if peer.0 >= self.peers.len() {
            return Inbound::Drop(self.drop_global(DropReason::UnknownPeer));
        }
        let Ok(view) = IpView::parse(packet) else {
            return Inbound::Drop(self.drop_peer(peer, DropReason::Malformed));
        };
        if self.lookup(view.src) != Some(peer) {
            return Inbound::Drop(self.drop_peer(peer, DropReason::SpoofedSource));
        }
        if let Some(c) = self.stats.peers.get_mut(peer.0) {
            c.rx_packets += 1;
            c.rx_bytes += view.total_len as u64;
        }
        Inbound::Deliver
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::build;
    use std::time::Duration;

    fn router() -> Router {
        Router::new(
            vec![
                PeerSpec {
                    name: "laptop".into(),
                    allowed_ips: vec![
                        "198.19.0.2/32".parse().unwrap(),
                        "fd00:19::2/128".parse().unwrap(),
                    ],
                    carriage: CarriageMode::Datagram,
                },
                PeerSpec {
                    name: "site".into(),
                    allowed_ips: vec!["198.19.1.0/24".parse().unwrap()],
                    carriage: CarriageMode::Auto,
                },
            ],
            1280,
        )
    }

    fn udp(src: &str, dst: &str, payload: usize) -> Vec<u8> {
        build::udp(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            1234,
            53,
            payload,
        )
    }

    #[test]
    fn routes_by_destination() {
        let mut r = router();
        let now = Instant::now();
        assert_eq!(
            r.route_outbound(&udp("198.19.0.1", "198.19.0.2", 10), now),
            Outbound::Send {
                peer: PeerId(0),
                carriage: Carriage::Datagram
            }
        );
        assert_eq!(
            r.route_outbound(&udp("fd00:19::1", "fd00:19::2", 10), now),
            Outbound::Send {
                peer: PeerId(0),
                carriage: Carriage::Datagram
            }
        );
        assert_eq!(
            r.route_outbound(&udp("198.19.0.1", "198.19.1.77", 10), now),
            Outbound::Send {
                peer: PeerId(1),
                carriage: Carriage::Datagram
            }
        );
        assert_eq!(
            r.route_outbound(&udp("198.19.0.1", "198.18.9.9", 10), now),
            Outbound::Drop(DropReason::NoRoute)
        );
        assert_eq!(
            r.route_outbound(b"\x45garbage", now),
            Outbound::Drop(DropReason::Malformed)
        );
        let s = r.stats();
        assert_eq!(s.peers[0].tx_packets, 2);
        assert_eq!(s.peers[0].tx_bytes, 38 + 58);
        assert_eq!(s.drops.no_route, 1);
        assert_eq!(s.drops.malformed, 1);
        assert_eq!(r.peer_id("site"), Some(PeerId(1)));
    }

    #[test]
    fn too_big_and_rate_limit() {
        let mut r = router();
        r.set_ptb_rate(2);
        r.set_max_datagram(PeerId(0), Some(1200));
        let now = Instant::now();
        let big = udp("198.19.0.1", "198.19.0.2", 1200);
        assert_eq!(r.route_outbound(&big, now), Outbound::TooBig { mtu: 1200 });
        assert_eq!(r.route_outbound(&big, now), Outbound::TooBig { mtu: 1200 });
        assert_eq!(
            r.route_outbound(&big, now),
            Outbound::Drop(DropReason::TooBig)
        );
        // tokens refill with time
        assert_eq!(
            r.route_outbound(&big, now + Duration::from_secs(1)),
            Outbound::TooBig { mtu: 1200 }
        );
        assert_eq!(r.stats().ptb_sent, 3);
        assert_eq!(r.stats().ptb_rate_limited, 1);
        assert_eq!(r.stats().peers[0].drops.too_big, 4);
        // IPv6 PTB below 1280 is pointless: dropped, not answered
        let big6 = udp("fd00:19::1", "fd00:19::2", 1200);
        assert_eq!(
            r.route_outbound(&big6, now + Duration::from_secs(9)),
            Outbound::Drop(DropReason::TooBig)
        );
        // beyond the tunnel MTU
        let huge = udp("198.19.0.1", "198.19.0.2", 1300);
        assert_eq!(
            r.route_outbound(&huge, now + Duration::from_secs(20)),
            Outbound::TooBig { mtu: 1200 }
        );
    }

    #[test]
    fn auto_falls_back_to_stream_and_datagram_peer_without_datagrams() {
        let mut r = router();
        let now = Instant::now();
        r.set_max_datagram(PeerId(1), Some(1000));
        assert_eq!(
            r.route_outbound(&udp("198.19.0.1", "198.19.1.5", 1100), now),
            Outbound::Send {
                peer: PeerId(1),
                carriage: Carriage::Stream
            }
        );
        assert_eq!(r.stats().peers[1].tx_stream_packets, 1);
        r.set_max_datagram(PeerId(0), None);
        assert_eq!(
            r.route_outbound(&udp("198.19.0.1", "198.19.0.2", 10), now),
            Outbound::Drop(DropReason::NoDatagrams)
        );
    }

    #[test]
    fn inbound_source_check() {
        let mut r = router();
        assert_eq!(
            r.accept_inbound(PeerId(0), &udp("198.19.0.2", "198.19.0.1", 5)),
            Inbound::Deliver
        );
        assert_eq!(
            r.accept_inbound(PeerId(0), &udp("fd00:19::2", "fd00:19::1", 5)),
            Inbound::Deliver
        );
        // peer 0 claiming an address of peer 1
        assert_eq!(
            r.accept_inbound(PeerId(0), &udp("198.19.1.9", "198.19.0.1", 5)),
            Inbound::Drop(DropReason::SpoofedSource)
        );
        assert_eq!(
            r.accept_inbound(PeerId(1), &udp("198.18.0.1", "198.19.0.1", 5)),
            Inbound::Drop(DropReason::SpoofedSource)
        );
        assert_eq!(
            r.accept_inbound(PeerId(1), b"\x60"),
            Inbound::Drop(DropReason::Malformed)
        );
        assert_eq!(
            r.accept_inbound(PeerId(7), &udp("198.19.0.2", "198.19.0.1", 5)),
            Inbound::Drop(DropReason::UnknownPeer)
        );
        let s = r.stats();
        assert_eq!(s.peers[0].rx_packets, 2);
        assert_eq!(s.peers[0].drops.spoofed_source, 1);
        assert_eq!(s.peers[1].drops.spoofed_source, 1);
        assert_eq!(s.drops.spoofed_source, 2);
        assert_eq!(s.drops.total(), 4);
    }
}
