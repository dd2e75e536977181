//! Small identifier types used across the crate

use std::fmt;

/// Which end of a connection we are
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum Side {
    /// The end that initiated the connection
    Client = 0,
    /// The end that accepted it
    Server = 1,
}

impl Side {
    /// True for the client
    pub fn is_client(self) -> bool {
        self == Self::Client
    }
    /// True for the server
    pub fn is_server(self) -> bool {
        self == Self::Server
    }
}

impl std::ops::Not for Side {
    type Output = Self;
    fn not(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// Stream direction
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum Dir {
    /// Data flows both ways
    Bi = 0,
    /// Data flows only from the initiator
    Uni = 1,
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bi => "bidirectional",
            Self::Uni => "unidirectional",
        })
    }
}

/// A stream identifier (RFC 9000 §2.1): the two low bits carry initiator and direction
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The `index`th stream of the given initiator and direction
    pub fn new(initiator: Side, dir: Dir, index: u64) -> Self {
        Self((index << 2) | ((dir as u64) << 1) | initiator as u64)
    }
    /// Which side opened the stream
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }
    /// Bidirectional or unidirectional
    pub fn dir(self) -> Dir {
        if self.0 & 2 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }
    /// Position among the streams of the same initiator and direction
    pub fn index(self) -> u64 {
        self.0 >> 2
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let initiator = match self.initiator() {
            Side::Client => "client",
            Side::Server => "server",
        };
        let dir = match self.dir() {
            Dir::Bi => "bi",
            Dir::Uni => "uni",
        };
        write!(
            f,
            "{} {}directional stream {}",
            initiator,
            dir,
            self.index()
        )
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest connection ID that QUIC v1 and v2 allow (RFC 9000 §17.2)
const MAX_CID_LEN: usize = 20;

/// A connection ID, at most 20 bytes (RFC 9000 §17.2), stored inline
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Default)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl ConnectionId {
    /// The largest length RFC 9000 allows for QUIC v1 and v2
    pub const MAX_LEN: usize = MAX_CID_LEN;

    /// A connection ID from bytes; `None` when longer than [`Self::MAX_LEN`]
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > Self::MAX_LEN {
            return None;
        }
        let mut cid = Self {
            len: bytes.len() as u8,
            bytes: [0; Self::MAX_LEN],
        };
        cid.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(cid)
    }

    /// A random connection ID of `len` bytes (clamped to [`Self::MAX_LEN`])
    pub fn random<R: rand::RngCore + ?Sized>(rng: &mut R, len: usize) -> Self {
        let len = len.min(Self::MAX_LEN);
        let mut cid = Self {
            len: len as u8,
            bytes: [0; Self::MAX_LEN],
        };
        rng.fill_bytes(&mut cid.bytes[..len]);
        cid
    }

    /// Length in bytes
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

impl std::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Packet number spaces (RFC 9000 §12.3)
#[derive(Debug, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub enum SpaceId {
    /// Initial packets
    Initial = 0,
    /// Handshake packets
    Handshake = 1,
    /// 0-RTT and 1-RTT packets
    Data = 2,
}

impl SpaceId {
    /// All spaces in order
    pub const ALL: [Self; 3] = [Self::Initial, Self::Handshake, Self::Data];
}

/// The ECN codepoint of an IP packet (RFC 3168)
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
#[repr(u8)]
pub enum EcnCodepoint {
    /// ECT(0)
    Ect0 = 0b10,
    /// ECT(1)
    Ect1 = 0b01,
    /// Congestion experienced
    Ce = 0b11,
}

impl EcnCodepoint {
    /// From the two ECN bits of the IP header; `None` for Not-ECT
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits & 0b11 {
            0b10 => Some(Self::Ect0),
            0b01 => Some(Self::Ect1),
            0b11 => Some(Self::Ce),
            _ => None,
        }
    }
}

/// A UDP datagram (or a GSO batch of same-size datagrams) ready to be sent
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct Transmit {
    /// Where to send it
    pub destination: std::net::SocketAddr,
    /// Total bytes written into the caller's buffer
    pub size: usize,
    /// ECN codepoint to mark the IP header with
    pub ecn: Option<EcnCodepoint>,
    /// With GSO: the size of each segment (the last may be shorter); `None` for one datagram
    pub segment_size: Option<usize>,
    /// The local address to send from, when the path requires one
    pub src_ip: Option<std::net::IpAddr>,
}

/// Facts about a received UDP datagram besides its bytes
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct RecvMeta {
    /// Sender
    pub remote: std::net::SocketAddr,
    /// Local address it arrived on, when known (IP_PKTINFO)
    pub local_ip: Option<std::net::IpAddr>,
    /// ECN codepoint of the IP header
    pub ecn: Option<EcnCodepoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_bits() {
        let id = StreamId::new(Side::Server, Dir::Uni, 5);
        assert_eq!(id.0, 5 << 2 | 0b11);
        assert_eq!(id.initiator(), Side::Server);
        assert_eq!(id.dir(), Dir::Uni);
        assert_eq!(id.index(), 5);
    }

    #[test]
    fn cid_bounds() {
        assert!(ConnectionId::new(&[0; 21]).is_none());
        let cid = ConnectionId::new(&[1, 2, 3]).unwrap();
        assert_eq!(&cid[..], &[1, 2, 3]);
        assert_eq!(format!("{cid}"), "010203");
    }
}
