//! ICMPv4 "Fragmentation Needed" and ICMPv6 "Packet Too Big" synthesis
//!
//! When the tunnel cannot carry a packet because it exceeds the path MTU, it answers the sender
//! the way a router would, so the sender's PMTU discovery shrinks its packets. The reply is
//! addressed from a local address of the tunnel interface back to the offending packet's source.
//!
//! Rules (RFC 1812 §4.3.2.7, RFC 4443 §2.4): never answer an ICMP error, a non-first fragment, or a
//! packet whose source is unspecified, multicast, broadcast or loopback. Rate-limit replies with
//! [`RateLimiter`].

use std::net::IpAddr;
use std::time::{Duration, Instant};

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder};

use crate::ip::{IpError, IpPacket, PROTO_ICMP, PROTO_ICMPV6};

/// Largest ICMPv4 error datagram we emit (RFC 1812 §4.3.2.3: at most 576 bytes)
const V4_MAX_REPLY: usize = 576;
/// Largest ICMPv6 error packet (RFC 4443 §2.4 (c): must not exceed the minimum IPv6 MTU)
const V6_MAX_REPLY: usize = 1280;
/// IPv4 header without options
const V4_HEADER: usize = 20;
/// IPv6 fixed header
const V6_HEADER: usize = 40;
/// ICMP / ICMPv6 header incl. the 4-byte MTU field
const ICMP_HEADER: usize = 8;
/// TTL / hop limit of the replies
const REPLY_TTL: u8 = 64;

/// Why no Packet Too Big reply was produced
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IcmpError {
    /// The original is not a valid IP packet
    #[error("original is not an IP packet: {0}")]
    NotIp(#[from] IpError),
    /// The original is itself an ICMP error; answering could loop
    #[error("original is an ICMP error message")]
    IsIcmpError,
    /// The original is a non-first fragment, which carries no upper-layer header to quote
    #[error("original is a non-first fragment")]
    NonFirstFragment,
    /// The original's source cannot be answered (unspecified, multicast, broadcast, loopback)
    #[error("original source address is not a unicast host")]
    BadSource,
    /// The local address is of another family than the original
    #[error("local address family differs from the original packet's")]
    FamilyMismatch,
    /// etherparse refused to serialize (cannot happen for the bounded sizes used here)
    #[error("ICMP reply serialization failed")]
    Build,
}

/// Build a Packet Too Big reply to `original`, sent from `local`, announcing `mtu`
///
/// IPv4: type 3 code 4 with the next-hop MTU, quoting the original up to a 576-byte reply.
/// IPv6: type 2 with the MTU (raised to 1280 if smaller, RFC 8201 §4), quoting up to 1280 bytes.
/// Checksums (IPv4 header, ICMP, ICMPv6 pseudo-header) are filled in. For IPv4 the caller
/// decides whether the packet had DF set ([`IpPacket::dont_fragment`]); without DF a router
/// would fragment instead of answering. Pass replies through a [`RateLimiter`].
pub fn packet_too_big(original: &[u8], local: IpAddr, mtu: u32) -> Result<Vec<u8>, IcmpError> {
    let orig = IpPacket::new_checked(original)?;
    if is_non_first_fragment(&orig) {
        return Err(IcmpError::NonFirstFragment);
    }
    if is_icmp_error(&orig) {
        return Err(IcmpError::IsIcmpError);
    }
    let quoted = orig.packet();
    match (orig.src(), local) {
        (IpAddr::V4(dst), IpAddr::V4(src)) => {
            if dst.is_unspecified() || dst.is_multicast() || dst.is_broadcast() || dst.is_loopback()
            {
                return Err(IcmpError::BadSource);
            }
            let keep = quoted.len().min(V4_MAX_REPLY - V4_HEADER - ICMP_HEADER);
            // The v4 field is 16 bits; larger MTUs cannot be announced, 65535 is the honest cap.
            let next_hop_mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
            let builder = PacketBuilder::ipv4(src.octets(), dst.octets(), REPLY_TTL).icmpv4(
                Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu,
                }),
            );
            let mut out = Vec::with_capacity(builder.size(keep));
            builder
                .write(&mut out, &quoted[..keep])
                .map_err(|_| IcmpError::Build)?;
            Ok(out)
        }
        (IpAddr::V6(dst), IpAddr::V6(src)) => {
            if dst.is_unspecified() || dst.is_multicast() || dst.is_loopback() {
                return Err(IcmpError::BadSource);
            }
            let keep = quoted.len().min(V6_MAX_REPLY - V6_HEADER - ICMP_HEADER);
            let builder = PacketBuilder::ipv6(src.octets(), dst.octets(), REPLY_TTL)
                .icmpv6(Icmpv6Type::PacketTooBig { mtu: mtu.max(1280) });
            let mut out = Vec::with_capacity(builder.size(keep));
            builder
                .write(&mut out, &quoted[..keep])
                .map_err(|_| IcmpError::Build)?;
            Ok(out)
        }
        _ => Err(IcmpError::FamilyMismatch),
    }
}

/// True if `p` is an ICMP or ICMPv6 error message (or too short to tell, to stay safe)
fn is_icmp_error(p: &IpPacket<'_>) -> bool {
    // etherparse walks IPv6 extension headers to the upper-layer header; if it cannot parse,
    // fall back to the fixed header's protocol.
    let (proto, ty) = match etherparse::IpSlice::from_slice(p.packet()) {
        Ok(s) => (
            s.payload().ip_number.0,
            s.payload().payload.first().copied(),
        ),
        Err(_) => (p.protocol(), p.payload().first().copied()),
    };
    match (proto, ty) {
        // RFC 792: 3 unreachable, 4 source quench, 5 redirect, 11 time exceeded, 12 parameter
        (PROTO_ICMP, Some(t)) => matches!(t, 3 | 4 | 5 | 11 | 12),
        // RFC 4443 §2.1: types 0-127 are errors
        (PROTO_ICMPV6, Some(t)) => t < 128,
        (PROTO_ICMP | PROTO_ICMPV6, None) => true,
        _ => false,
    }
}

/// True for a non-first fragment, including IPv6 fragment headers behind other extensions
fn is_non_first_fragment(p: &IpPacket<'_>) -> bool {
    if p.is_non_first_fragment() {
        return true;
    }
    let Ok(etherparse::IpSlice::Ipv6(v6)) = etherparse::IpSlice::from_slice(p.packet()) else {
        return false;
    };
    v6.extensions().clone().into_iter().any(|ext| match ext {
        etherparse::Ipv6ExtensionSlice::Fragment(f) => f.fragment_offset().value() != 0,
        _ => false,
    })
}

/// Token bucket limiting how many ICMP replies are sent (sans-IO: the caller passes `now`)
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Tokens added per second
    rate: f64,
    /// Bucket capacity
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    /// A bucket refilled at `per_second` tokens per second holding at most `burst` (starts full)
    pub fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(per_second),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Take one token if available at `now`; returns whether the reply may be sent
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            // Time going backwards (callers mixing clocks) adds nothing rather than panicking.
            let dt = now.checked_duration_since(last).unwrap_or(Duration::ZERO);
            self.tokens = (self.tokens + dt.as_secs_f64() * self.rate).min(self.burst);
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

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Slice, Icmpv6Slice, Ipv4HeaderSlice, Ipv6HeaderSlice, SlicedPacket};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const L4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const R4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 7);

    fn l6() -> Ipv6Addr {
        "fd00::1".parse().expect("addr")
    }
    fn r6() -> Ipv6Addr {
        "fd00::77".parse().expect("addr")
    }

    fn big_udp_v4(len: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv4(R4.octets(), [198, 18, 9, 9], 64).udp(5000, 6000);
        let mut out = Vec::new();
        b.write(&mut out, &vec![0xab; len]).expect("vec");
        out
    }

    fn big_udp_v6(len: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv6(r6().octets(), l6().octets(), 64).udp(5000, 6000);
        let mut out = Vec::new();
        b.write(&mut out, &vec![0xcd; len]).expect("vec");
        out
    }

    #[test]
    fn v4_frag_needed() {
        let orig = big_udp_v4(1400);
        let reply = packet_too_big(&orig, IpAddr::V4(L4), 1280).expect("reply");
        assert_eq!(reply.len(), 576);
        let ip = Ipv4HeaderSlice::from_slice(&reply).expect("ipv4");
        assert_eq!(ip.source_addr(), L4);
        assert_eq!(ip.destination_addr(), R4);
        assert_eq!(
            ip.header_checksum(),
            ip.to_header().calc_header_checksum(),
            "IPv4 header checksum"
        );
        let icmp = Icmpv4Slice::from_slice(&reply[20..]).expect("icmp");
        assert_eq!(icmp.type_u8(), 3);
        assert_eq!(icmp.code_u8(), 4);
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: 1280
            })
        );
        assert_eq!(
            icmp.checksum(),
            icmp.header().icmp_type.calc_checksum(icmp.payload()),
            "ICMP checksum"
        );
        assert_eq!(icmp.payload(), &orig[..548]);
    }

    #[test]
    fn v4_small_original_quoted_whole() {
        let orig = big_udp_v4(10);
        let reply = packet_too_big(&orig, IpAddr::V4(L4), 1000).expect("reply");
        let parsed = SlicedPacket::from_ip(&reply).expect("parse");
        assert!(parsed.net.is_some());
        assert_eq!(&reply[28..], &orig[..]);
    }

    #[test]
    fn v6_packet_too_big() {
        let orig = big_udp_v6(1800);
        let reply = packet_too_big(&orig, IpAddr::V6(l6()), 1400).expect("reply");
        assert_eq!(reply.len(), 1280);
        let ip = Ipv6HeaderSlice::from_slice(&reply).expect("ipv6");
        assert_eq!(ip.source_addr(), l6());
        assert_eq!(ip.destination_addr(), r6());
        let icmp = Icmpv6Slice::from_slice(&reply[40..]).expect("icmpv6");
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1400 });
        let want = icmp
            .header()
            .icmp_type
            .calc_checksum(l6().octets(), r6().octets(), icmp.payload())
            .expect("checksum");
        assert_eq!(icmp.checksum(), want, "ICMPv6 checksum");
        assert_eq!(icmp.payload(), &orig[..1232]);
    }

    #[test]
    fn v6_mtu_floor() {
        let orig = big_udp_v6(1500);
        let reply = packet_too_big(&orig, IpAddr::V6(l6()), 600).expect("reply");
        let icmp = Icmpv6Slice::from_slice(&reply[40..]).expect("icmpv6");
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1280 });
    }

    #[test]
    fn refuses() {
        // ICMP error in, nothing out.
        let err = packet_too_big(&big_udp_v4(1400), IpAddr::V4(L4), 1280).expect("reply");
        assert_eq!(
            packet_too_big(&err, IpAddr::V4(L4), 1280),
            Err(IcmpError::IsIcmpError)
        );
        let err6 = packet_too_big(&big_udp_v6(1400), IpAddr::V6(l6()), 1280).expect("reply");
        assert_eq!(
            packet_too_big(&err6, IpAddr::V6(l6()), 1280),
            Err(IcmpError::IsIcmpError)
        );
        // ICMP echo is answered.
        let b = PacketBuilder::ipv4(R4.octets(), L4.octets(), 64).icmpv4_echo_request(1, 1);
        let mut echo = Vec::new();
        b.write(&mut echo, &[0; 1400]).expect("vec");
        assert!(packet_too_big(&echo, IpAddr::V4(L4), 1280).is_ok());
        // Non-first fragment.
        let mut frag = big_udp_v4(1400);
        frag[6] = 0x00;
        frag[7] = 0x10;
        assert_eq!(
            packet_too_big(&frag, IpAddr::V4(L4), 1280),
            Err(IcmpError::NonFirstFragment)
        );
        // Family mismatch and garbage.
        assert_eq!(
            packet_too_big(&big_udp_v4(100), IpAddr::V6(l6()), 1280),
            Err(IcmpError::FamilyMismatch)
        );
        assert!(matches!(
            packet_too_big(&[1, 2, 3], IpAddr::V4(L4), 1280),
            Err(IcmpError::NotIp(_))
        ));
        // Broadcast source.
        let b = PacketBuilder::ipv4([255; 4], L4.octets(), 64).udp(1, 2);
        let mut bc = Vec::new();
        b.write(&mut bc, &[0; 10]).expect("vec");
        assert_eq!(
            packet_too_big(&bc, IpAddr::V4(L4), 1280),
            Err(IcmpError::BadSource)
        );
    }

    #[test]
    fn v6_extension_headers_are_walked() {
        use etherparse::{IpNumber, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader};
        // fixed header | hop-by-hop | fragment(offset 8) | data
        let hbh = Ipv6RawExtHeader::new_raw(IpNumber(44), &[0; 6]).expect("hbh");
        let frag = Ipv6FragmentHeader::new(
            IpNumber(17),
            etherparse::IpFragOffset::try_new(8).expect("offset"),
            true,
            7,
        );
        let mut body = Vec::new();
        body.extend_from_slice(&hbh.to_bytes());
        body.extend_from_slice(&frag.to_bytes());
        body.extend_from_slice(&[0u8; 1400]);
        let hdr = Ipv6Header {
            payload_length: u16::try_from(body.len()).expect("len"),
            next_header: IpNumber(0),
            hop_limit: 64,
            source: r6().octets(),
            destination: l6().octets(),
            ..Default::default()
        };
        let mut pkt = hdr.to_bytes().to_vec();
        pkt.extend_from_slice(&body);
        assert_eq!(
            packet_too_big(&pkt, IpAddr::V6(l6()), 1280),
            Err(IcmpError::NonFirstFragment)
        );
        // Same shape, but an ICMPv6 error (type 1) behind the hop-by-hop header.
        let hbh = Ipv6RawExtHeader::new_raw(IpNumber(58), &[0; 6]).expect("hbh");
        let mut body = hbh.to_bytes().to_vec();
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[0u8; 1300]);
        let hdr = Ipv6Header {
            payload_length: u16::try_from(body.len()).expect("len"),
            ..hdr
        };
        let mut pkt = hdr.to_bytes().to_vec();
        pkt.extend_from_slice(&body);
        assert_eq!(
            packet_too_big(&pkt, IpAddr::V6(l6()), 1280),
            Err(IcmpError::IsIcmpError)
        );
    }

    #[test]
    fn rate_limiter() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 3);
        assert!(rl.allow(t0));
        assert!(rl.allow(t0));
        assert!(rl.allow(t0));
        assert!(!rl.allow(t0), "burst exhausted");
        assert!(!rl.allow(t0 + Duration::from_millis(50)));
        assert!(rl.allow(t0 + Duration::from_millis(110)), "refilled one");
        assert!(!rl.allow(t0 + Duration::from_millis(110)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(100);
        assert!((0..3).all(|_| rl.allow(later)));
        assert!(!rl.allow(later));
        // Earlier time does not panic or add tokens.
        assert!(!rl.allow(t0));
    }
}
