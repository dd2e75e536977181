//! How inner IP packets ride on a QUIC connection: as DATAGRAM frames or length-prefixed on streams
//!
//! Stream framing: each packet is a 2-byte big-endian length followed by the packet. Lengths of
//! zero or above the decoder's limit are framing errors: the stream is out of sync and must be
//! reset, since there is no way to find the next packet boundary.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::ip::IpView;

/// Per-peer carriage policy, as configured
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CarriageMode {
    /// DATAGRAM frames only (RFC 9221); packets that do not fit get ICMP Packet Too Big
    #[default]
    Datagram,
    /// Length-prefixed packets on streams: works without datagram support, at the cost of
    /// retransmission inside the tunnel (TCP-over-TCP behaviour under loss)
    Stream,
    /// Datagrams when the packet fits the connection's current datagram limit, a stream otherwise
    Auto,
}

impl CarriageMode {
    /// Every accepted spelling, for error messages
    pub const NAMES: &'static [&'static str] = &["datagram", "stream", "auto"];

    /// How to send one packet of `packet_len` bytes; `max_datagram` is the connection's current
    /// max datagram payload, `None` when the peer does not accept datagrams. `None` means the
    /// packet cannot be carried (answer with Packet Too Big).
    pub fn choose(self, packet_len: usize, max_datagram: Option<usize>) -> Option<Carriage> {
        let fits = max_datagram.is_some_and(|max| packet_len <= max);
        match self {
            Self::Datagram if fits => Some(Carriage::Datagram),
            Self::Datagram => None,
            Self::Stream => Some(Carriage::Stream),
            Self::Auto if fits => Some(Carriage::Datagram),
            // Stream framing carries any length the 2-byte prefix can express
            Self::Auto => (packet_len <= MAX_FRAMED_PACKET).then_some(Carriage::Stream),
        }
    }
}

impl fmt::Display for CarriageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Datagram => "datagram",
            Self::Stream => "stream",
            Self::Auto => "auto",
        })
    }
}

impl FromStr for CarriageMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "datagram" => Ok(Self::Datagram),
            "stream" => Ok(Self::Stream),
            "auto" => Ok(Self::Auto),
            _ => Err(()),
        }
    }
}

/// How one packet is sent
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriage {
    /// As one DATAGRAM frame
    Datagram,
    /// Framed on a stream (see [`flow_stream_index`])
    Stream,
}

/// Largest packet the 2-byte length prefix can carry
pub const MAX_FRAMED_PACKET: usize = u16::MAX as usize;

/// Stream framing errors; each one means the stream must be reset
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A zero length prefix: a sender never frames empty packets
    #[error("stream framing: zero-length packet (stream out of sync)")]
    ZeroLength,
    /// A length prefix above the configured limit
    #[error("stream framing: packet of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Announced length
        len: usize,
        /// Decoder limit
        max: usize,
    },
    /// The caller kept pushing without draining complete packets
    #[error("stream framing: receive buffer full ({0} bytes undrained)")]
    BufferFull(usize),
}

/// Append the framed form of `packet` to `out`
pub fn encode_frame(packet: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    if packet.is_empty() {
        return Err(FrameError::ZeroLength);
    }
    let len = u16::try_from(packet.len()).map_err(|_| FrameError::TooLong {
        len: packet.len(),
        max: MAX_FRAMED_PACKET,
    })?;
    out.reserve(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(())
}

/// Incremental decoder of stream-framed packets
///
/// Holds at most one incomplete frame between calls, as long as the caller drains the iterator
/// that [`push`](Self::push) returns. After an error it stays failed.
#[derive(Debug)]
pub struct StreamDecoder {
    buf: BytesMut,
    max_packet: usize,
    failed: Option<FrameError>,
}

impl StreamDecoder {
    /// A decoder accepting packets up to `max_packet` bytes (at most 65535)
    pub fn new(max_packet: usize) -> Self {
        let max_packet = max_packet.clamp(1, MAX_FRAMED_PACKET);
        Self {
            buf: BytesMut::with_capacity(2 + max_packet),
            max_packet,
            failed: None,
        }
    }

    /// Append received stream bytes; iterate to take the complete packets
    pub fn push(&mut self, data: &[u8]) -> StreamPackets<'_> {
        // Undrained leftovers above one whole frame mean the caller ignored the iterator; refuse
        // to grow without bound.
        let limit = 2 + self.max_packet;
        if self.failed.is_none() && self.buf.len() >= limit {
            self.failed = Some(FrameError::BufferFull(self.buf.len()));
        }
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
        StreamPackets {
            dec: self,
            done: false,
        }
    }

    /// Bytes held of an incomplete frame
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The error this decoder failed with, if any
    pub fn error(&self) -> Option<FrameError> {
        self.failed
    }

    fn next_packet(&mut self) -> Option<Result<Bytes, FrameError>> {
        if let Some(e) = self.failed {
            self.buf.clear();
            return Some(Err(e));
        }
        if self.buf.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        let err = if len == 0 {
            Some(FrameError::ZeroLength)
        } else if len > self.max_packet {
            Some(FrameError::TooLong {
                len,
                max: self.max_packet,
            })
        } else {
            None
        };
        if let Some(e) = err {
            self.failed = Some(e);
            self.buf.clear();
            return Some(Err(e));
        }
        if self.buf.len() < 2 + len {
            return None;
        }
        self.buf.advance(2);
        Some(Ok(self.buf.split_to(len).freeze()))
    }
}

/// Complete packets decoded by one [`StreamDecoder::push`]
#[derive(Debug)]
pub struct StreamPackets<'a> {
    dec: &'a mut StreamDecoder,
    /// Set after yielding an error: a failure is reported once per push
    done: bool,
}

impl Iterator for StreamPackets<'_> {
    type Item = Result<Bytes, FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.dec.next_packet();
        self.done = matches!(item, Some(Err(_)));
        item
    }
}

/// Which of `n_streams` streams carries `packet`, by a hash of its inner 5-tuple
///
/// Packets of one flow always share a stream (keeping their order); different flows spread over
/// the streams so that one lost packet stalls only the flows on its stream. Unparsable packets
/// go to stream 0.
pub fn flow_stream_index(packet: &[u8], n_streams: usize) -> usize {
    if n_streams <= 1 {
        return 0;
    }
    let Ok(view) = IpView::parse(packet) else {
        return 0;
    };
    // FNV-1a: deterministic across runs and processes, which a RandomState hasher is not
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match (view.src, view.dst) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            eat(&s.octets());
            eat(&d.octets());
        }
        (s, d) => {
            eat(&ip_bytes(s));
            eat(&ip_bytes(d));
        }
    }
    eat(&[view.protocol]);
    if let Some((sp, dp)) = view.ports(packet) {
        eat(&sp.to_be_bytes());
        eat(&dp.to_be_bytes());
    }
    (h % n_streams as u64) as usize
}

fn ip_bytes(a: std::net::IpAddr) -> [u8; 16] {
    match a {
        std::net::IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v) => v.octets(),
    }
}

/// Fuzz body: feed `data` to a decoder in chunks and check that what it yields re-encodes to a
/// prefix of the input
#[doc(hidden)]
pub fn fuzz_stream_decoder(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut dec = StreamDecoder::new(1500);
    let mut reencoded = BytesMut::new();
    let mut failed = false;
    for piece in rest.chunks(chunk) {
        for item in dec.push(piece) {
            match item {
                Ok(p) => {
                    assert!(!p.is_empty() && p.len() <= 1500);
                    assert!(encode_frame(&p, &mut reencoded).is_ok());
                }
                Err(_) => failed = true,
            }
        }
    }
    assert!(rest.starts_with(&reencoded));
    if !failed {
        assert_eq!(reencoded.len() + dec.buffered(), rest.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::build;
    use proptest::prelude::*;

    #[test]
    fn auto_rule() {
        use Carriage::*;
        assert_eq!(
            CarriageMode::Datagram.choose(1200, Some(1200)),
            Some(Datagram)
        );
        assert_eq!(CarriageMode::Datagram.choose(1201, Some(1200)), None);
        assert_eq!(CarriageMode::Datagram.choose(100, None), None);
        assert_eq!(CarriageMode::Stream.choose(100, Some(1200)), Some(Stream));
        assert_eq!(CarriageMode::Auto.choose(1000, Some(1200)), Some(Datagram));
        assert_eq!(CarriageMode::Auto.choose(1400, Some(1200)), Some(Stream));
        assert_eq!(CarriageMode::Auto.choose(1000, None), Some(Stream));
        assert_eq!("AUTO".parse::<CarriageMode>(), Ok(CarriageMode::Auto));
        assert_eq!(CarriageMode::default(), CarriageMode::Datagram);
    }

    #[test]
    fn decoder_errors() {
        let mut d = StreamDecoder::new(100);
        let got: Vec<_> = d.push(&[0, 0, 1]).collect();
        assert_eq!(got, vec![Err(FrameError::ZeroLength)]);
        // stays failed
        assert_eq!(d.push(&[0, 1, 9]).next(), Some(Err(FrameError::ZeroLength)));
        let mut d = StreamDecoder::new(100);
        let got: Vec<_> = d.push(&[0, 101]).collect();
        assert_eq!(got, vec![Err(FrameError::TooLong { len: 101, max: 100 })]);
        let mut out = BytesMut::new();
        assert_eq!(encode_frame(&[], &mut out), Err(FrameError::ZeroLength));
        assert!(encode_frame(&vec![0; 70000], &mut out).is_err());
    }

    #[test]
    fn undrained_buffer_is_bounded() {
        let mut d = StreamDecoder::new(10);
        let mut frame = BytesMut::new();
        encode_frame(&[1; 10], &mut frame).unwrap();
        for _ in 0..3 {
            let _ = d.push(&frame); // iterator dropped undrained
        }
        assert_eq!(d.error(), Some(FrameError::BufferFull(12)));
    }

    #[test]
    fn flows_spread_and_stick() {
        let a = build::udp(
            "198.19.0.1".parse().unwrap(),
            "198.19.0.2".parse().unwrap(),
            1000,
            53,
            4,
        );
        let a2 = build::udp(
            "198.19.0.1".parse().unwrap(),
            "198.19.0.2".parse().unwrap(),
            1000,
            53,
            90,
        );
        assert_eq!(flow_stream_index(&a, 8), flow_stream_index(&a2, 8));
        let used: std::collections::HashSet<usize> = (0..200u16)
            .map(|port| {
                let p = build::udp(
                    "198.19.0.1".parse().unwrap(),
                    "198.19.0.2".parse().unwrap(),
                    port,
                    53,
                    0,
                );
                flow_stream_index(&p, 8)
            })
            .collect();
        assert!(used.len() > 4, "flows should spread, got {used:?}");
        assert!(used.iter().all(|i| *i < 8));
        assert_eq!(flow_stream_index(b"junk", 8), 0);
        assert_eq!(flow_stream_index(&a, 0), 0);
    }

    proptest! {
        #[test]
        fn round_trip_any_chunking(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20),
            cuts in proptest::collection::vec(1usize..64, 1..50),
        ) {
            let mut wire = BytesMut::new();
            for p in &packets {
                encode_frame(p, &mut wire).unwrap();
            }
            let mut dec = StreamDecoder::new(300);
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                i += 1;
                for item in dec.push(&rest[..n]) {
                    got.push(item.unwrap().to_vec());
                }
                rest = &rest[n..];
            }
            prop_assert_eq!(got, packets);
            prop_assert_eq!(dec.buffered(), 0);
        }

        #[test]
        fn fuzz_body_holds(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_stream_decoder(&data);
        }
    }
}
