//! The framed protocol between the C library (`quic-sock`) and the daemon's socket service
//!
//! Transport: one connected `AF_UNIX` `SOCK_SEQPACKET` socket per QUIC socket; that socket
//! *is* the file descriptor the application holds, so poll/select/epoll work on it unchanged.
//! Every datagram is one message:
//!
//! ```text
//! 0      2    3    4        8          10      12            16
//! +------+----+----+--------+----------+-------+-------------+------ body ------+-- payload --+
//! |magic |ver | op |  seq   | body_len | flags | payload_len | fixed fields     | bytes       |
//! +------+----+----+--------+----------+-------+-------------+------------------+-------------+
//! ```
//! All integers little-endian. `magic` is `"QS"`, `ver` is [`VERSION`]. `seq` is chosen by the
//! library and echoed in the response, so a late answer to an interrupted call can be told
//! apart; unsolicited messages ([`Response::Notify`]) use seq 0. The body is the op's fixed
//! fields: a shorter body (older peer) is zero-filled and a longer one (newer peer) is cut,
//! the kernel's own rule for structs, so fields can be appended without a version bump. The
//! payload (stream data, option values) follows in the same datagram, so each side moves it
//! with one `sendmsg`/`recvmsg` using two iovecs: header+body in a small buffer, the payload
//! straight from/into the application's buffer. Data is copied once per hop, never twice.
//!
//! Readiness: the service sends `Notify` when the socket's receive queue becomes non-empty and
//! right after any response that leaves it non-empty, marking that response with
//! [`FLAG_NOTIFY_FOLLOWS`]; the library discards `Notify` messages read while waiting for a
//! response, and before returning a marked response waits until the following `Notify` has
//! arrived (otherwise an application polling right after the call could miss it). The fd is
//! therefore readable exactly when a recvmsg would return something. Blocking calls are emulated by the library: it issues the
//! non-blocking request and, on EAGAIN, polls the fd for the next `Notify`. A blocked send
//! marked [`FLAG_WILL_WAIT`] gets a POLLOUT `Notify` once it may proceed; unmarked refusals get
//! none, so no doorbell is left in the fd for a writer that gave up.

use std::fmt;

use super::types::padded;

/// Protocol version in every header; a peer with another version is refused (EPROTO)
pub const VERSION: u8 = 1;
/// Header magic, bytes `Q`,`S`
pub const MAGIC: u16 = u16::from_le_bytes(*b"QS");
/// Header size
pub const HEADER_LEN: usize = 16;
/// Largest payload of one message: larger writes are split by the library (partial writes)
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest datagram either side needs to receive
pub const MAX_MESSAGE: usize = HEADER_LEN + 64 + MAX_PAYLOAD;
/// Default abstract socket name of the service (Linux scopes it to the network namespace)
pub const DEFAULT_SERVICE_NAME: &str = "quictun-sockd";
/// Environment variable overriding the service name (`@name` or `name` = abstract, `/path`)
pub const SERVICE_ENV: &str = "QUICTUN_SOCKD";
/// Raw sockaddr bytes carried in a body (room for `sockaddr_in6`)
pub const ADDR_LEN: usize = 28;

/// Header flag on a response: a `Notify` follows it (the receive queue is not empty)
pub const FLAG_NOTIFY_FOLLOWS: u16 = 0x1;
/// Header flag on a SendMsg request: if it is refused as blocked (EAGAIN/ENOSPC), the library
/// waits for a POLLOUT `Notify`; the service rings POLLOUT only for such a waiting writer
pub const FLAG_WILL_WAIT: u16 = 0x2;

/// Readiness bits in [`Response::Notify`] (the poll(2) values)
pub mod ready {
    /// POLLIN: something to receive (or a queued connection on a listener)
    pub const IN: u32 = 0x001;
    /// POLLOUT: a previously blocked send may proceed
    pub const OUT: u32 = 0x004;
    /// POLLERR: the connection failed
    pub const ERR: u32 = 0x008;
    /// POLLHUP: the connection is closed
    pub const HUP: u32 = 0x010;
}

/// Why a message could not be decoded; the service answers with EPROTO and drops the client
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header
    #[error("message shorter than its header")]
    Truncated,
    /// Not this protocol
    #[error("bad magic")]
    BadMagic,
    /// A version this side does not speak
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// Unknown op code
    #[error("unknown op {0:#x}")]
    UnknownOp(u8),
    /// body_len + payload_len disagree with the datagram length
    #[error("length fields disagree with the message size")]
    Length,
    /// A field has an impossible value
    #[error("invalid field")]
    Field,
}

/// Op codes
#[allow(missing_docs)]
pub mod op {
    pub const SOCKET: u8 = 1;
    pub const BIND: u8 = 2;
    pub const LISTEN: u8 = 3;
    pub const ACCEPT: u8 = 4;
    pub const CONNECT: u8 = 5;
    pub const SENDMSG: u8 = 6;
    pub const RECVMSG: u8 = 7;
    pub const SETSOCKOPT: u8 = 8;
    pub const GETSOCKOPT: u8 = 9;
    pub const GETSOCKNAME: u8 = 10;
    pub const GETPEERNAME: u8 = 11;
    pub const SHUTDOWN: u8 = 12;
    pub const CLOSE: u8 = 13;
    pub const HANDSHAKE: u8 = 14;
    pub const OK: u8 = 0x80;
    pub const ERR: u8 = 0x81;
    pub const ADDR: u8 = 0x82;
    pub const RECV: u8 = 0x83;
    pub const OPTVAL: u8 = 0x84;
    pub const ACCEPTED: u8 = 0x85;
    pub const NOTIFY: u8 = 0x86;
}

/// A raw Linux sockaddr (`sockaddr_in` or `sockaddr_in6` bytes, as the application passed it)
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawAddr {
    len: u8,
    bytes: [u8; ADDR_LEN],
}

impl RawAddr {
    /// Wrap raw bytes; None if longer than a `sockaddr_in6`
    pub fn new(raw: &[u8]) -> Option<Self> {
        if raw.len() > ADDR_LEN {
            return None;
        }
        Some(Self {
            len: raw.len() as u8,
            bytes: padded(raw),
        })
    }
    /// The raw bytes
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(ADDR_LEN)]
    }
    /// Parse into a std address (EINVAL / EAFNOSUPPORT as the kernel)
    pub fn to_socket_addr(&self) -> Result<std::net::SocketAddr, super::Errno> {
        super::types::sockaddr_decode(self.as_bytes())
    }
    /// From a std address
    pub fn from_socket_addr(a: &std::net::SocketAddr) -> Self {
        let raw = super::types::sockaddr_encode(a);
        Self {
            len: raw.len() as u8,
            bytes: padded(&raw),
        }
    }
    fn put(&self, b: &mut Vec<u8>) {
        b.push(self.len);
        b.extend_from_slice(&[0; 3]);
        b.extend_from_slice(&self.bytes);
    }
    fn get(b: &[u8]) -> Result<Self, DecodeError> {
        let b = padded::<{ 4 + ADDR_LEN }>(b);
        if usize::from(b[0]) > ADDR_LEN {
            return Err(DecodeError::Field);
        }
        Ok(Self {
            len: b[0],
            bytes: padded(&b[4..]),
        })
    }
}

impl fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_socket_addr() {
            Ok(a) => write!(f, "{a}"),
            Err(_) => write!(f, "RawAddr({:?})", self.as_bytes()),
        }
    }
}

/// Strings of a libquic-style handshake request
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeArgs<'a> {
    /// Server role (quic_server_handshake) vs client
    pub server: bool,
    /// Client: SNI / peer name
    pub hostname: Option<&'a [u8]>,
    /// Comma-separated ALPN list
    pub alpns: Option<&'a [u8]>,
    /// Client PSK file contents (`identity:hexkey` lines), or server key PEM
    pub pkey: Option<&'a [u8]>,
    /// Server certificate chain PEM (None = PSK mode)
    pub cert: Option<&'a [u8]>,
}

const TAG_HOSTNAME: u8 = 1;
const TAG_ALPNS: u8 = 2;
const TAG_PKEY: u8 = 3;
const TAG_CERT: u8 = 4;

impl<'a> HandshakeArgs<'a> {
    /// The TLV payload: (tag u8, len u32, bytes)*
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (tag, f) in [
            (TAG_HOSTNAME, self.hostname),
            (TAG_ALPNS, self.alpns),
            (TAG_PKEY, self.pkey),
            (TAG_CERT, self.cert),
        ] {
            if let Some(f) = f {
                v.push(tag);
                v.extend_from_slice(&(f.len() as u32).to_le_bytes());
                v.extend_from_slice(f);
            }
        }
        v
    }
    fn decode_payload(server: bool, mut p: &'a [u8]) -> Result<Self, DecodeError> {
        let mut a = Self {
            server,
            ..Self::default()
        };
        while let Some((&tag, rest)) = p.split_first() {
            let len_bytes = rest.get(..4).ok_or(DecodeError::Length)?;
            let len = u32::from_le_bytes(padded(len_bytes)) as usize;
            let val = rest
                .get(4..4usize.saturating_add(len))
                .ok_or(DecodeError::Length)?;
            match tag {
                TAG_HOSTNAME => a.hostname = Some(val),
                TAG_ALPNS => a.alpns = Some(val),
                TAG_PKEY => a.pkey = Some(val),
                TAG_CERT => a.cert = Some(val),
                // Unknown tags come from newer libraries; skip them.
                _ => {}
            }
            p = &rest[4 + len..];
        }
        Ok(a)
    }
}

/// A request from the library to the service
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// First message on a new connection: `socket(family, type, protocol)`
    Socket {
        /// AF_INET / AF_INET6
        family: u16,
        /// SOCK_DGRAM / SOCK_STREAM (flags stripped)
        sock_type: i32,
        /// IPPROTO_QUIC
        protocol: i32,
    },
    /// bind()
    Bind(RawAddr),
    /// listen()
    Listen {
        /// backlog; 0 stops listening
        backlog: i32,
    },
    /// accept(); the answer is [`Response::Accepted`] with the new socket's fd in SCM_RIGHTS
    Accept {
        /// SOCK_NONBLOCK / SOCK_CLOEXEC are applied by the library; kept for the service's log
        flags: i32,
    },
    /// connect()
    Connect(RawAddr),
    /// sendmsg(); `payload` is the data
    SendMsg {
        /// sendmsg flags
        flags: u32,
        /// QUIC_STREAM_INFO cmsg, if given
        stream_info: Option<super::types::StreamInfo>,
        /// QUIC_HANDSHAKE_INFO cmsg level, if given
        handshake_level: Option<u8>,
        /// Data
        payload: &'a [u8],
    },
    /// recvmsg() of at most `max_len` bytes
    RecvMsg {
        /// recvmsg flags (MSG_PEEK honoured; the library always adds MSG_DONTWAIT)
        flags: u32,
        /// Caller's buffer size
        max_len: u32,
    },
    /// setsockopt()
    SetSockOpt {
        /// Level (SOL_QUIC, SOL_SOCKET, ...)
        level: i32,
        /// Option name
        optname: i32,
        /// Option value
        optval: &'a [u8],
    },
    /// getsockopt(); `input` is the optval on entry (in/out options)
    GetSockOpt {
        /// Level
        level: i32,
        /// Option name
        optname: i32,
        /// Caller's buffer size
        optlen: u32,
        /// Caller's buffer contents on entry
        input: &'a [u8],
    },
    /// getsockname()
    GetSockName,
    /// getpeername()
    GetPeerName,
    /// shutdown()
    Shutdown {
        /// SHUT_RD / SHUT_WR / SHUT_RDWR
        how: i32,
    },
    /// close(): the service sends CONNECTION_CLOSE and forgets the socket
    Close,
    /// libquic-compatible quic_{client,server}_handshake with built-in TLS
    Handshake(HandshakeArgs<'a>),
}

/// A response from the service (or an unsolicited [`Response::Notify`])
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// Success with an integer (bytes sent, 0, ...)
    Ok(i64),
    /// Failure with an errno
    Err(i32),
    /// getsockname/getpeername answer
    Addr(RawAddr),
    /// recvmsg answer; `payload` is the data
    Recv {
        /// msg_flags (MSG_EOR, MSG_QUIC_NOTIFICATION, MSG_QUIC_DATAGRAM, MSG_QUIC_STREAM_FIN
        /// when the cmsg can't be delivered)
        msg_flags: u32,
        /// QUIC_STREAM_INFO for stream data
        stream_info: Option<super::types::StreamInfo>,
        /// QUIC_HANDSHAKE_INFO level for handshake bytes
        handshake_level: Option<u8>,
        /// Data
        payload: &'a [u8],
    },
    /// getsockopt answer (already truncated to optlen)
    OptVal(&'a [u8]),
    /// accept answer; the fd travels as SCM_RIGHTS ancillary data of this message
    Accepted(RawAddr),
    /// Readiness doorbell (seq 0), `ready::*` bits
    Notify(u32),
}

/// The decoded fixed header
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Op code
    pub op: u8,
    /// Sequence number
    pub seq: u32,
    /// Fixed body length
    pub body_len: u16,
    /// `FLAG_*` bits (unknown bits are ignored)
    pub flags: u16,
    /// Payload length
    pub payload_len: u32,
}

impl Header {
    /// Split a datagram into header, body and payload
    pub fn split(msg: &[u8]) -> Result<(Self, &[u8], &[u8]), DecodeError> {
        let h = msg.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
        let h = padded::<HEADER_LEN>(h);
        if u16::from_le_bytes([h[0], h[1]]) != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if h[2] != VERSION {
            return Err(DecodeError::Version(h[2]));
        }
        let hdr = Self {
            op: h[3],
            seq: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
            body_len: u16::from_le_bytes([h[8], h[9]]),
            flags: u16::from_le_bytes([h[10], h[11]]),
            payload_len: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
        };
        let rest = &msg[HEADER_LEN..];
        let body_len = usize::from(hdr.body_len);
        if rest.len() != body_len.saturating_add(hdr.payload_len as usize) {
            return Err(DecodeError::Length);
        }
        let (body, payload) = rest.split_at(body_len);
        Ok((hdr, body, payload))
    }

    /// Parse only the fixed header (the library peeks it to size its receive buffers)
    pub fn peek(head: &[u8]) -> Result<Self, DecodeError> {
        let h = head.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
        let mut whole = h.to_vec();
        // Pretend body and payload are absent so `split` checks only magic and version.
        whole[8..10].fill(0);
        whole[12..16].fill(0);
        Self::split(&whole)?;
        let b = padded::<HEADER_LEN>(h);
        Ok(Self {
            op: b[3],
            seq: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            body_len: u16::from_le_bytes([b[8], b[9]]),
            flags: u16::from_le_bytes([b[10], b[11]]),
            payload_len: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    /// Set `FLAG_*` bits in an encoded head; no-op on a buffer shorter than a header
    pub fn set_flags(head: &mut [u8], flags: u16) {
        if let Some(f) = head.get_mut(10..12) {
            f.copy_from_slice(&flags.to_le_bytes());
        }
    }

    /// Rewrite the payload length of an encoded head (for a payload sent from several
    /// iovecs, or received separately); no-op on a buffer shorter than a header
    pub fn set_payload_len(head: &mut [u8], len: u32) {
        if let Some(f) = head.get_mut(12..16) {
            f.copy_from_slice(&len.to_le_bytes());
        }
    }

    fn write(op: u8, seq: u32, body: &[u8], payload_len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(VERSION);
        out.push(op);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(payload_len as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
}

fn le_i32(b: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(padded(b.get(off..).unwrap_or(&[])))
}
fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(padded(b.get(off..).unwrap_or(&[])))
}
fn le_i64(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(padded(b.get(off..).unwrap_or(&[])))
}

// Body layout shared by SendMsg and Recv: flags u32@0, has_stream u8@4, has_hs u8@5,
// level u8@6, pad, stream_id i64@8, stream_flags u32@16, pad → 24 bytes.
const INFO_BODY_LEN: usize = 24;

fn put_info_body(
    flags: u32,
    si: Option<super::types::StreamInfo>,
    hs: Option<u8>,
    b: &mut Vec<u8>,
) {
    b.extend_from_slice(&flags.to_le_bytes());
    b.push(u8::from(si.is_some()));
    b.push(u8::from(hs.is_some()));
    b.push(hs.unwrap_or(0));
    b.push(0);
    let si = si.unwrap_or_default();
    b.extend_from_slice(&si.stream_id.to_le_bytes());
    b.extend_from_slice(&si.stream_flags.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
}

type InfoBody = (u32, Option<super::types::StreamInfo>, Option<u8>);

fn get_info_body(body: &[u8]) -> InfoBody {
    let b = padded::<INFO_BODY_LEN>(body);
    let si = (b[4] != 0).then(|| super::types::StreamInfo {
        stream_id: le_i64(&b, 8),
        stream_flags: le_u32(&b, 16),
    });
    let hs = (b[5] != 0).then_some(b[6]);
    (le_u32(&b, 0), si, hs)
}

impl<'a> Request<'a> {
    /// Op code
    pub fn op(&self) -> u8 {
        match self {
            Self::Socket { .. } => op::SOCKET,
            Self::Bind(_) => op::BIND,
            Self::Listen { .. } => op::LISTEN,
            Self::Accept { .. } => op::ACCEPT,
            Self::Connect(_) => op::CONNECT,
            Self::SendMsg { .. } => op::SENDMSG,
            Self::RecvMsg { .. } => op::RECVMSG,
            Self::SetSockOpt { .. } => op::SETSOCKOPT,
            Self::GetSockOpt { .. } => op::GETSOCKOPT,
            Self::GetSockName => op::GETSOCKNAME,
            Self::GetPeerName => op::GETPEERNAME,
            Self::Shutdown { .. } => op::SHUTDOWN,
            Self::Close => op::CLOSE,
            Self::Handshake(_) => op::HANDSHAKE,
        }
    }

    /// Header and body into `out`; the caller sends [`Self::payload`] as the second iovec
    /// (Handshake builds its payload: use [`Self::encode`] for it)
    pub fn encode_head(&self, seq: u32, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(32);
        match self {
            Self::Socket {
                family,
                sock_type,
                protocol,
            } => {
                body.extend_from_slice(&family.to_le_bytes());
                body.extend_from_slice(&[0, 0]);
                body.extend_from_slice(&sock_type.to_le_bytes());
                body.extend_from_slice(&protocol.to_le_bytes());
            }
            Self::Bind(a) | Self::Connect(a) => a.put(&mut body),
            Self::Listen { backlog: v } | Self::Accept { flags: v } | Self::Shutdown { how: v } => {
                body.extend_from_slice(&v.to_le_bytes())
            }
            Self::SendMsg {
                flags,
                stream_info,
                handshake_level,
                ..
            } => put_info_body(*flags, *stream_info, *handshake_level, &mut body),
            Self::RecvMsg { flags, max_len } => {
                body.extend_from_slice(&flags.to_le_bytes());
                body.extend_from_slice(&max_len.to_le_bytes());
            }
            Self::SetSockOpt { level, optname, .. } => {
                body.extend_from_slice(&level.to_le_bytes());
                body.extend_from_slice(&optname.to_le_bytes());
            }
            Self::GetSockOpt {
                level,
                optname,
                optlen,
                ..
            } => {
                body.extend_from_slice(&level.to_le_bytes());
                body.extend_from_slice(&optname.to_le_bytes());
                body.extend_from_slice(&optlen.to_le_bytes());
            }
            Self::GetSockName | Self::GetPeerName | Self::Close => {}
            Self::Handshake(a) => body.extend_from_slice(&[u8::from(a.server), 0, 0, 0]),
        }
        let plen = match self {
            Self::Handshake(a) => a.encode_payload().len(),
            _ => self.payload().len(),
        };
        Header::write(self.op(), seq, &body, plen, out);
    }

    /// The payload bytes that follow the head (empty for most ops; built for Handshake)
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Self::SendMsg { payload, .. } => payload,
            Self::SetSockOpt { optval, .. } => optval,
            Self::GetSockOpt { input, .. } => input,
            _ => &[],
        }
    }

    /// The whole message in one buffer (tests, small messages)
    pub fn encode(&self, seq: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_head(seq, &mut out);
        match self {
            Self::Handshake(a) => out.extend_from_slice(&a.encode_payload()),
            _ => out.extend_from_slice(self.payload()),
        }
        out
    }

    /// Parse one datagram
    pub fn decode(msg: &'a [u8]) -> Result<(u32, Self), DecodeError> {
        let (h, body, payload) = Header::split(msg)?;
        let no_payload = |r: Self| {
            if payload.is_empty() {
                Ok(r)
            } else {
                Err(DecodeError::Length)
            }
        };
        let r = match h.op {
            op::SOCKET => {
                let b = padded::<12>(body);
                no_payload(Self::Socket {
                    family: u16::from_le_bytes([b[0], b[1]]),
                    sock_type: le_i32(&b, 4),
                    protocol: le_i32(&b, 8),
                })?
            }
            op::BIND => no_payload(Self::Bind(RawAddr::get(body)?))?,
            op::CONNECT => no_payload(Self::Connect(RawAddr::get(body)?))?,
            op::LISTEN => no_payload(Self::Listen {
                backlog: le_i32(body, 0),
            })?,
            op::ACCEPT => no_payload(Self::Accept {
                flags: le_i32(body, 0),
            })?,
            op::SHUTDOWN => no_payload(Self::Shutdown {
                how: le_i32(body, 0),
            })?,
            op::SENDMSG => {
                let (flags, stream_info, handshake_level) = get_info_body(body);
                Self::SendMsg {
                    flags,
                    stream_info,
                    handshake_level,
                    payload,
                }
            }
            op::RECVMSG => no_payload(Self::RecvMsg {
                flags: le_u32(body, 0),
                max_len: le_u32(body, 4),
            })?,
            op::SETSOCKOPT => Self::SetSockOpt {
                level: le_i32(body, 0),
                optname: le_i32(body, 4),
                optval: payload,
            },
            op::GETSOCKOPT => Self::GetSockOpt {
                level: le_i32(body, 0),
                optname: le_i32(body, 4),
                optlen: le_u32(body, 8),
                input: payload,
            },
            op::GETSOCKNAME => no_payload(Self::GetSockName)?,
            op::GETPEERNAME => no_payload(Self::GetPeerName)?,
            op::CLOSE => no_payload(Self::Close)?,
            op::HANDSHAKE => {
                let server = body.first().is_some_and(|&b| b != 0);
                Self::Handshake(HandshakeArgs::decode_payload(server, payload)?)
            }
            other => return Err(DecodeError::UnknownOp(other)),
        };
        Ok((h.seq, r))
    }
}

impl<'a> Response<'a> {
    /// Op code
    pub fn op(&self) -> u8 {
        match self {
            Self::Ok(_) => op::OK,
            Self::Err(_) => op::ERR,
            Self::Addr(_) => op::ADDR,
            Self::Recv { .. } => op::RECV,
            Self::OptVal(_) => op::OPTVAL,
            Self::Accepted(_) => op::ACCEPTED,
            Self::Notify(_) => op::NOTIFY,
        }
    }

    /// The payload that follows the head
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Self::Recv { payload, .. } => payload,
            Self::OptVal(v) => v,
            _ => &[],
        }
    }

    /// Header and body into `out`; the payload goes as the second iovec
    pub fn encode_head(&self, seq: u32, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(32);
        match self {
            Self::Ok(v) => body.extend_from_slice(&v.to_le_bytes()),
            Self::Err(e) => body.extend_from_slice(&e.to_le_bytes()),
            Self::Addr(a) | Self::Accepted(a) => a.put(&mut body),
            Self::Recv {
                msg_flags,
                stream_info,
                handshake_level,
                ..
            } => put_info_body(*msg_flags, *stream_info, *handshake_level, &mut body),
            Self::OptVal(_) => {}
            Self::Notify(bits) => body.extend_from_slice(&bits.to_le_bytes()),
        }
        Header::write(self.op(), seq, &body, self.payload().len(), out);
    }

    /// The whole message in one buffer
    pub fn encode(&self, seq: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_head(seq, &mut out);
        out.extend_from_slice(self.payload());
        out
    }

    /// Parse one datagram
    pub fn decode(msg: &'a [u8]) -> Result<(u32, Self), DecodeError> {
        let (h, body, payload) = Header::split(msg)?;
        let no_payload = |r: Self| {
            if payload.is_empty() {
                Ok(r)
            } else {
                Err(DecodeError::Length)
            }
        };
        let r = match h.op {
            op::OK => no_payload(Self::Ok(le_i64(body, 0)))?,
            op::ERR => no_payload(Self::Err(le_i32(body, 0)))?,
            op::ADDR => no_payload(Self::Addr(RawAddr::get(body)?))?,
            op::ACCEPTED => no_payload(Self::Accepted(RawAddr::get(body)?))?,
            op::NOTIFY => no_payload(Self::Notify(le_u32(body, 0)))?,
            op::OPTVAL => Self::OptVal(payload),
            op::RECV => {
                let (msg_flags, stream_info, handshake_level) = get_info_body(body);
                Self::Recv {
                    msg_flags,
                    stream_info,
                    handshake_level,
                    payload,
                }
            }
            other => return Err(DecodeError::UnknownOp(other)),
        };
        Ok((h.seq, r))
    }
}

/// Fuzz body: decoding arbitrary bytes never panics, and whatever decodes re-encodes to a
/// message that decodes to the same value
pub fn fuzz_sockapi_msg(data: &[u8]) {
    if let Ok((seq, r)) = Request::decode(data) {
        let again = r.encode(seq);
        assert_eq!(Request::decode(&again), Ok((seq, r)));
    }
    if let Ok((seq, r)) = Response::decode(data) {
        let again = r.encode(seq);
        assert_eq!(Response::decode(&again), Ok((seq, r)));
    }
    let _ = super::events::Event::decode(data);
    let mut o = super::options::SockOptions::new();
    if let Some((&name, val)) = data.split_first() {
        let name = i32::from(name % 16);
        let _ = o.set(name, val);
        let _ = o.get(name, val, val.len());
    }
}

#[cfg(test)]
mod tests;
