//! A minimal read-only view of an IP packet's header: what routing needs and nothing more
//!
//! Rule (smoltcp style): once [`IpView::parse`] returns `Ok`, every field is known to lie inside
//! the buffer, so nothing downstream indexes out of bounds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The packet is not a well-formed IPv4 or IPv6 packet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Header fields of one IPv4 or IPv6 packet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpView {
    /// Source address
    pub src: IpAddr,
    /// Destination address
    pub dst: IpAddr,
    /// IPv4 protocol or IPv6 next header
    pub protocol: u8,
    /// Length of the IP header (IPv6: the fixed 40 bytes)
    pub header_len: usize,
    /// Length of the whole packet as the header states it
    pub total_len: usize,
    /// False for IPv4 fragments after the first (they carry no transport ports)
    pub first_fragment: bool,
}

impl IpView {
    /// Parse the header of `packet`
    pub fn parse(packet: &[u8]) -> Result<Self, Malformed> {
        let first = *packet.first().ok_or(Malformed)?;
        match first >> 4 {
            4 => {
                if packet.len() < 20 {
                    return Err(Malformed);
                }
                let header_len = usize::from(first & 0x0f) * 4;
                let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
                if header_len < 20 || total_len < header_len || total_len > packet.len() {
                    return Err(Malformed);
                }
                let frag_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
                Ok(Self {
                    src: IpAddr::V4(Ipv4Addr::new(
                        packet[12], packet[13], packet[14], packet[15],
                    )),
                    dst: IpAddr::V4(Ipv4Addr::new(
                        packet[16], packet[17], packet[18], packet[19],
                    )),
                    protocol: packet[9],
                    header_len,
                    total_len,
                    first_fragment: frag_offset == 0,
                })
            }
            6 => {
                if packet.len() < 40 {
                    return Err(Malformed);
                }
                let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
                // A zero payload length with data means a jumbogram, which a tunnel never carries
                let total_len = 40 + payload_len;
                if total_len > packet.len() || (payload_len == 0 && packet.len() > 40) {
                    return Err(Malformed);
                }
                let mut src = [0u8; 16];
                src.copy_from_slice(&packet[8..24]);
                let mut dst = [0u8; 16];
                dst.copy_from_slice(&packet[24..40]);
                Ok(Self {
                    src: IpAddr::V6(Ipv6Addr::from(src)),
                    dst: IpAddr::V6(Ipv6Addr::from(dst)),
                    protocol: packet[6],
                    header_len: 40,
                    total_len,
                    first_fragment: true,
                })
            }
            _ => Err(Malformed),
        }
    }

    /// Source and destination ports for TCP, UDP and SCTP when the packet holds them
    pub fn ports(&self, packet: &[u8]) -> Option<(u16, u16)> {
        if !self.first_fragment || !matches!(self.protocol, 6 | 17 | 132) {
            return None;
        }
        let p = packet.get(self.header_len..self.header_len + 4)?;
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    }
}

/// Test helpers that build minimal packets
#[cfg(test)]
pub(crate) mod build {
    use std::net::IpAddr;

    /// A UDP packet from `src` to `dst` with `payload_len` zero bytes of payload
    pub(crate) fn udp(
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        payload_len: usize,
    ) -> Vec<u8> {
        let udp_len = 8 + payload_len;
        let mut p = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = 20 + udp_len;
                let mut p = vec![0u8; total];
                p[0] = 0x45;
                p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                p[8] = 64;
                p[9] = 17;
                p[12..16].copy_from_slice(&s.octets());
                p[16..20].copy_from_slice(&d.octets());
                p
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = vec![0u8; 40 + udp_len];
                p[0] = 0x60;
                p[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
                p[6] = 17;
                p[7] = 64;
                p[8..24].copy_from_slice(&s.octets());
                p[24..40].copy_from_slice(&d.octets());
                p
            }
            _ => panic!("mixed address families"),
        };
        let h = if src.is_ipv4() { 20 } else { 40 };
        p[h..h + 2].copy_from_slice(&sport.to_be_bytes());
        p[h + 2..h + 4].copy_from_slice(&dport.to_be_bytes());
        p[h + 4..h + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6() {
        let p = build::udp(
            "198.19.0.1".parse().unwrap(),
            "198.19.0.2".parse().unwrap(),
            1000,
            53,
            10,
        );
        let v = IpView::parse(&p).unwrap();
        assert_eq!(v.dst, "198.19.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(v.total_len, 38);
        assert_eq!(v.ports(&p), Some((1000, 53)));
        let p = build::udp(
            "fd00:19::1".parse().unwrap(),
            "fd00:19::2".parse().unwrap(),
            1,
            2,
            0,
        );
        let v = IpView::parse(&p).unwrap();
        assert_eq!(v.src, "fd00:19::1".parse::<IpAddr>().unwrap());
        assert_eq!(v.total_len, 48);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(IpView::parse(&[]), Err(Malformed));
        assert_eq!(IpView::parse(&[0x45; 10]), Err(Malformed));
        assert_eq!(IpView::parse(&[0x20; 60]), Err(Malformed));
        let mut p = build::udp(
            "198.19.0.1".parse().unwrap(),
            "198.19.0.2".parse().unwrap(),
            1,
            2,
            0,
        );
        p[2] = 0xff; // total length beyond the buffer
        assert_eq!(IpView::parse(&p), Err(Malformed));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            if let Ok(v) = IpView::parse(&data) {
                proptest::prop_assert!(v.total_len <= data.len());
                let _ = v.ports(&data);
            }
        }
    }
}
