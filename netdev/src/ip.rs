//! Zero-copy IPv4/IPv6 header views
//!
//! Contract (smoltcp style): once [`IpPacket::new_checked`] returns `Ok`, no accessor panics.
//! The check validates the version nibble, the fixed header length, the IPv4 IHL and the
//! declared total length against the buffer. Bytes past the declared length (e.g. link padding)
//! are ignored by [`IpPacket::packet`] and [`IpPacket::payload`].
//!
//! IPv6 extension headers are not walked: [`IpPacket::protocol`] is the first Next Header and
//! [`IpPacket::payload`] starts right after the fixed 40-byte header. The flow hash only uses ports
//! when that first Next Header is TCP or UDP, which covers what the tunnel steers.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of ICMP
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of the IPv6 fragment extension header
pub const PROTO_IPV6_FRAG: u8 = 44;
/// IP protocol number of ICMPv6
pub const PROTO_ICMPV6: u8 = 58;

/// Byte ranges of the fixed IPv4 header (RFC 791 §3.1)
mod v4 {
    pub(super) const TOS: usize = 1;
    pub(super) const LEN: core::ops::Range<usize> = 2..4;
    pub(super) const FLAGS_FRAG: core::ops::Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTO: usize = 9;
    pub(super) const SRC: core::ops::Range<usize> = 12..16;
    pub(super) const DST: core::ops::Range<usize> = 16..20;
    pub(super) const MIN_HEADER: usize = 20;
}

/// Byte ranges of the fixed IPv6 header (RFC 8200 §3)
mod v6 {
    pub(super) const PAYLOAD_LEN: core::ops::Range<usize> = 4..6;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: core::ops::Range<usize> = 8..24;
    pub(super) const DST: core::ops::Range<usize> = 24..40;
    pub(super) const HEADER: usize = 40;
}

/// Why a buffer is not a well-formed IP packet
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpError {
    /// The buffer is empty or shorter than the fixed header
    #[error("buffer shorter than the IP header")]
    Truncated,
    /// The version nibble is neither 4 nor 6
    #[error("IP version {0} is not 4 or 6")]
    BadVersion(u8),
    /// IPv4 IHL below 5 words or past the buffer
    #[error("invalid IPv4 header length")]
    BadHeaderLength,
    /// The declared total length is below the header length or past the buffer
    #[error("declared length {declared} does not fit the {available}-byte buffer")]
    BadTotalLength {
        /// Length the header claims
        declared: usize,
        /// Bytes actually available
        available: usize,
    },
}

/// IP version of a packet
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4
    V4,
    /// IPv6
    V6,
}

/// A validated view over an IPv4 or IPv6 packet
#[derive(Debug, Clone, Copy)]
pub struct IpPacket<'a> {
    /// The packet up to its declared total length
    buf: &'a [u8],
    version: IpVersion,
    header_len: usize,
}

impl<'a> IpPacket<'a> {
    /// Validate `buf` as an IP packet; after `Ok`, no accessor panics
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, IpError> {
        let first = *buf.first().ok_or(IpError::Truncated)?;
        match first >> 4 {
            4 => {
                if buf.len() < v4::MIN_HEADER {
                    return Err(IpError::Truncated);
                }
                let header_len = usize::from(first & 0x0f) * 4;
                if header_len < v4::MIN_HEADER || header_len > buf.len() {
                    return Err(IpError::BadHeaderLength);
                }
                let total = usize::from(be16(buf, v4::LEN.start));
                if total < header_len || total > buf.len() {
                    return Err(IpError::BadTotalLength {
                        declared: total,
                        available: buf.len(),
                    });
                }
                Ok(Self {
                    buf: &buf[..total],
                    version: IpVersion::V4,
                    header_len,
                })
            }
            6 => {
                if buf.len() < v6::HEADER {
                    return Err(IpError::Truncated);
                }
                // A zero payload length with a Hop-by-Hop jumbo option (RFC 2675) cannot occur on
                // a TUN below 64 KiB MTU; treat it as an empty payload like any other zero.
                let payload = usize::from(be16(buf, v6::PAYLOAD_LEN.start));
                let total = v6::HEADER + payload;
                if total > buf.len() {
                    return Err(IpError::BadTotalLength {
                        declared: total,
                        available: buf.len(),
                    });
                }
                Ok(Self {
                    buf: &buf[..total],
                    version: IpVersion::V6,
                    header_len: v6::HEADER,
                })
            }
            other => Err(IpError::BadVersion(other)),
        }
    }

    /// IP version
    pub fn version(&self) -> IpVersion {
        self.version
    }

    /// Source address
    pub fn src(&self) -> IpAddr {
        match self.version {
            IpVersion::V4 => IpAddr::V4(self.v4_addr(v4::SRC)),
            IpVersion::V6 => IpAddr::V6(self.v6_addr(v6::SRC)),
        }
    }

    /// Destination address
    pub fn dst(&self) -> IpAddr {
        match self.version {
            IpVersion::V4 => IpAddr::V4(self.v4_addr(v4::DST)),
            IpVersion::V6 => IpAddr::V6(self.v6_addr(v6::DST)),
        }
    }

    /// IPv4 protocol or IPv6 first Next Header
    pub fn protocol(&self) -> u8 {
        match self.version {
            IpVersion::V4 => self.buf[v4::PROTO],
            IpVersion::V6 => self.buf[v6::NEXT_HEADER],
        }
    }

    /// IPv4 TTL or IPv6 hop limit
    pub fn ttl(&self) -> u8 {
        match self.version {
            IpVersion::V4 => self.buf[v4::TTL],
            IpVersion::V6 => self.buf[v6::HOP_LIMIT],
        }
    }

    /// Traffic class byte (IPv4 TOS / IPv6 traffic class): DSCP in the top six bits, ECN below
    fn traffic_class(&self) -> u8 {
        match self.version {
            IpVersion::V4 => self.buf[v4::TOS],
            // The traffic class straddles bytes 0 and 1 (RFC 8200 §3).
            IpVersion::V6 => (self.buf[0] << 4) | (self.buf[1] >> 4),
        }
    }

    /// Differentiated services code point (6 bits)
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN codepoint (2 bits: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE)
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0b11
    }

    /// Total packet length as declared in the header (header + payload)
    pub fn total_len(&self) -> usize {
        self.buf.len()
    }

    /// Length of the fixed header (IPv4 including options; IPv6 always 40)
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The whole packet up to its declared length
    pub fn packet(&self) -> &'a [u8] {
        self.buf
    }

    /// The bytes after the (fixed) header
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..]
    }

    /// True for an IPv4 fragment other than the first (offset != 0)
    ///
    /// IPv6 fragments are only detected when the fragment header comes first.
    pub fn is_non_first_fragment(&self) -> bool {
        match self.version {
            IpVersion::V4 => {
                let ff = be16(self.buf, v4::FLAGS_FRAG.start);
                ff & 0x1fff != 0
            }
            IpVersion::V6 => {
                if self.protocol() != PROTO_IPV6_FRAG {
                    return false;
                }
                // Fragment header: next(1) reserved(1) offset:13|res:2|M:1 (RFC 8200 §4.5)
                match self.payload().get(2..4) {
                    Some(b) => u16::from_be_bytes([b[0], b[1]]) >> 3 != 0,
                    None => false,
                }
            }
        }
    }

    /// IPv4 Don't Fragment flag; always true for IPv6, where routers never fragment
    pub fn dont_fragment(&self) -> bool {
        match self.version {
            IpVersion::V4 => self.buf[v4::FLAGS_FRAG.start] & 0x40 != 0,
            IpVersion::V6 => true,
        }
    }

    /// Source and destination ports when the protocol is TCP or UDP and the ports are present
    pub fn ports(&self) -> Option<(u16, u16)> {
        if !matches!(self.protocol(), PROTO_TCP | PROTO_UDP) || self.is_non_first_fragment() {
            return None;
        }
        let p = self.payload().get(0..4)?;
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    }

    /// Flow hash over (src, dst, protocol, ports) for steering packets of one flow to one stream
    ///
    /// Stable within a process (std `DefaultHasher` with fixed keys); not a security boundary.
    pub fn flow_hash(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.src().hash(&mut h);
        self.dst().hash(&mut h);
        self.protocol().hash(&mut h);
        self.ports().hash(&mut h);
        h.finish()
    }

    fn v4_addr(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.buf[r]);
        Ipv4Addr::from(a)
    }

    fn v6_addr(&self, r: core::ops::Range<usize>) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf[r]);
        Ipv6Addr::from(a)
    }
}

/// Big-endian u16 at `at`; callers have checked `at + 2 <= buf.len()`
fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Fuzz target bodies (for a cargo-fuzz crate and for `cargo test`)
pub mod fuzzing {
    use super::IpPacket;

    /// Parse arbitrary bytes and exercise every accessor, checking invariants
    pub fn fuzz_ip(data: &[u8]) {
        let Ok(p) = IpPacket::new_checked(data) else {
            return;
        };
        let _ = (p.src(), p.dst(), p.protocol(), p.ttl(), p.dscp(), p.ecn());
        let _ = (p.ports(), p.flow_hash(), p.is_non_first_fragment());
        let _ = p.dont_fragment();
        // Invariants: the view lies within the input, and header + payload = total.
        assert!(p.total_len() <= data.len());
        assert_eq!(p.header_len() + p.payload().len(), p.total_len());
        assert!(p.dscp() < 64 && p.ecn() < 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    fn udp_v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 0, 2], 33).udp(4433, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload)
            .expect("write to a Vec cannot fail");
        out
    }

    #[test]
    fn v4_udp_fields() {
        let mut pkt = udp_v4(b"hello");
        pkt[1] = (46 << 2) | 2; // EF, ECT(0)
        let p = IpPacket::new_checked(&pkt).expect("valid");
        assert_eq!(p.version(), IpVersion::V4);
        assert_eq!(p.src(), IpAddr::from([198, 18, 0, 1]));
        assert_eq!(p.dst(), IpAddr::from([198, 18, 0, 2]));
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.ttl(), 33);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 2);
        assert_eq!(p.total_len(), 20 + 8 + 5);
        assert_eq!(p.payload().len(), 13);
        assert_eq!(p.ports(), Some((4433, 53)));
        assert!(!p.is_non_first_fragment());
    }

    #[test]
    fn v6_tcp_fields() {
        let src: Ipv6Addr = "fd00::1".parse().expect("addr");
        let dst: Ipv6Addr = "fd00::2".parse().expect("addr");
        let b = PacketBuilder::ipv6(src.octets(), dst.octets(), 7).tcp(1000, 2000, 1, 100);
        let mut pkt = Vec::new();
        b.write(&mut pkt, b"xyz").expect("vec");
        // traffic class 0xb9: DSCP 46, ECN CE
        pkt[0] = 0x6b;
        pkt[1] = (pkt[1] & 0x0f) | 0x90;
        pkt.extend_from_slice(&[0xee; 4]); // trailing padding must be ignored
        let p = IpPacket::new_checked(&pkt).expect("valid");
        assert_eq!(p.version(), IpVersion::V6);
        assert_eq!(p.src(), IpAddr::V6(src));
        assert_eq!(p.dst(), IpAddr::V6(dst));
        assert_eq!(p.protocol(), PROTO_TCP);
        assert_eq!(p.ttl(), 7);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 1);
        assert_eq!(p.total_len(), pkt.len() - 4);
        assert_eq!(p.ports(), Some((1000, 2000)));
    }

    #[test]
    fn errors() {
        assert_eq!(IpPacket::new_checked(&[]).err(), Some(IpError::Truncated));
        assert_eq!(
            IpPacket::new_checked(&[0x50; 40]).err(),
            Some(IpError::BadVersion(5))
        );
        let mut pkt = udp_v4(b"abc");
        assert_eq!(
            IpPacket::new_checked(&pkt[..19]).err(),
            Some(IpError::Truncated)
        );
        pkt[0] = 0x44;
        assert_eq!(
            IpPacket::new_checked(&pkt).err(),
            Some(IpError::BadHeaderLength)
        );
        let mut pkt = udp_v4(b"abc");
        pkt[3] += 1;
        assert!(matches!(
            IpPacket::new_checked(&pkt),
            Err(IpError::BadTotalLength { .. })
        ));
        assert_eq!(
            IpPacket::new_checked(&[0x60; 39]).err(),
            Some(IpError::Truncated)
        );
    }

    #[test]
    fn fragments_have_no_ports() {
        let mut pkt = udp_v4(b"abcdefgh");
        pkt[6] = 0x00;
        pkt[7] = 0x02; // offset 16 bytes
        let p = IpPacket::new_checked(&pkt).expect("valid");
        assert!(p.is_non_first_fragment());
        assert_eq!(p.ports(), None);
    }

    #[test]
    fn flow_hash_separates_flows() {
        let a = udp_v4(b"1");
        let b = udp_v4(b"22");
        let ha = IpPacket::new_checked(&a).expect("valid").flow_hash();
        let hb = IpPacket::new_checked(&b).expect("valid").flow_hash();
        assert_eq!(ha, hb, "same 5-tuple, same hash");
        let c = {
            let b = PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 0, 2], 33).udp(4434, 53);
            let mut out = Vec::new();
            b.write(&mut out, b"1").expect("vec");
            out
        };
        let hc = IpPacket::new_checked(&c).expect("valid").flow_hash();
        assert_ne!(ha, hc);
    }

    /// Edge cases kept as a small corpus, replayed through the fuzz body
    #[test]
    fn corpus_replay() {
        let mut v4_options = udp_v4(b"x");
        v4_options[0] = 0x46; // claims 24-byte header
        let corpus: &[&[u8]] = &[
            &[],
            &[0x45],
            &[0x4f; 60],
            &[
                0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
            ],
            &[
                0x45, 0, 0, 19, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
            ],
            &[0x60; 40],
            &[0x60; 41],
            &[0xff; 64],
            &v4_options,
        ];
        for case in corpus {
            fuzzing::fuzz_ip(case);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            fuzzing::fuzz_ip(&data);
        }

        #[test]
        fn random_v4_v6_headers_never_panic(
            v in prop_oneof![Just(0x45u8), Just(0x4fu8), Just(0x60u8)],
            rest in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            let mut data = vec![v];
            data.extend_from_slice(&rest);
            fuzzing::fuzz_ip(&data);
        }
    }
}
