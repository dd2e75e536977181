//! Events (MSG_QUIC_NOTIFICATION) and the receive queue's delivery order
//!
//! recvmsg on a kernel QUIC socket returns, in this order: queued TLS handshake messages
//! (with a QUIC_HANDSHAKE_INFO cmsg), then events (byte 0 = type, then the payload), then
//! stream data and datagrams in arrival order. [`RecvQueue`] reproduces that, including the
//! partial-read rules: a too-small buffer leaves the rest of a message queued (no MSG_TRUNC,
//! no MSG_EOR until the last piece), and one call returns data of a single stream, merging
//! contiguous chunks of it until the buffer fills or FIN.

use std::collections::VecDeque;

use super::consts::*;
use super::types::*;
use super::{Errno, SockResult};

/// Which event types the application enabled (QUIC_SOCKOPT_EVENT); all off by default
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventMask(u16);

impl EventMask {
    fn bit(event_type: u8) -> SockResult<u16> {
        if event_type == QUIC_EVENT_NONE || event_type >= QUIC_EVENT_MAX {
            return Err(Errno::EINVAL);
        }
        Ok(1 << event_type)
    }
    /// Enable or disable one type; EINVAL outside 1..=9
    pub fn set(&mut self, event_type: u8, on: bool) -> SockResult<()> {
        let b = Self::bit(event_type)?;
        if on {
            self.0 |= b;
        } else {
            self.0 &= !b;
        }
        Ok(())
    }
    /// Whether a type is enabled; EINVAL outside 1..=9
    pub fn get(self, event_type: u8) -> SockResult<bool> {
        Ok(self.0 & Self::bit(event_type)? != 0)
    }
    /// Whether an event of this type would be delivered (false for invalid types)
    pub fn enabled(self, event_type: u8) -> bool {
        self.get(event_type).unwrap_or(false)
    }
}

/// One event as the kernel queues it
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// QUIC_EVENT_STREAM_UPDATE
    StreamUpdate(StreamUpdate),
    /// QUIC_EVENT_STREAM_MAX_DATA
    StreamMaxData(StreamMaxData),
    /// QUIC_EVENT_STREAM_MAX_STREAM: highest stream id now openable
    MaxStream(u64),
    /// QUIC_EVENT_CONNECTION_ID
    ConnectionId(ConnectionIdInfo),
    /// QUIC_EVENT_CONNECTION_CLOSE (all zero for idle timeout / stateless reset)
    ConnectionClose(ConnectionClose),
    /// QUIC_EVENT_CONNECTION_MIGRATION: true = our address changed
    Migration(bool),
    /// QUIC_EVENT_KEY_UPDATE: the new key phase
    KeyUpdate(u8),
    /// QUIC_EVENT_NEW_TOKEN: token bytes
    NewToken(Vec<u8>),
    /// QUIC_EVENT_NEW_SESSION_TICKET: TLS NewSessionTicket message bytes
    NewSessionTicket(Vec<u8>),
}

impl Event {
    /// QUIC_EVENT_* type
    pub fn event_type(&self) -> u8 {
        match self {
            Self::StreamUpdate(_) => QUIC_EVENT_STREAM_UPDATE,
            Self::StreamMaxData(_) => QUIC_EVENT_STREAM_MAX_DATA,
            Self::MaxStream(_) => QUIC_EVENT_STREAM_MAX_STREAM,
            Self::ConnectionId(_) => QUIC_EVENT_CONNECTION_ID,
            Self::ConnectionClose(_) => QUIC_EVENT_CONNECTION_CLOSE,
            Self::Migration(_) => QUIC_EVENT_CONNECTION_MIGRATION,
            Self::KeyUpdate(_) => QUIC_EVENT_KEY_UPDATE,
            Self::NewToken(_) => QUIC_EVENT_NEW_TOKEN,
            Self::NewSessionTicket(_) => QUIC_EVENT_NEW_SESSION_TICKET,
        }
    }

    /// The recvmsg buffer: type byte, then the type's payload struct (not the whole union)
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.event_type()];
        match self {
            Self::StreamUpdate(u) => v.extend_from_slice(&u.encode()),
            Self::StreamMaxData(m) => v.extend_from_slice(&m.encode()),
            Self::MaxStream(n) => v.extend_from_slice(&n.to_le_bytes()),
            Self::ConnectionId(c) => v.extend_from_slice(&c.encode()),
            Self::ConnectionClose(c) => v.extend_from_slice(&c.encode()),
            Self::Migration(local) => v.push(u8::from(*local)),
            Self::KeyUpdate(phase) => v.push(*phase),
            Self::NewToken(b) | Self::NewSessionTicket(b) => v.extend_from_slice(b),
        }
        v
    }

    /// Parse a notification buffer (short payloads zero-filled); None for an unknown type
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let (&t, p) = buf.split_first()?;
        Some(match t {
            QUIC_EVENT_STREAM_UPDATE => Self::StreamUpdate(StreamUpdate::decode(p)),
            QUIC_EVENT_STREAM_MAX_DATA => Self::StreamMaxData(StreamMaxData::decode(p)),
            QUIC_EVENT_STREAM_MAX_STREAM => Self::MaxStream(u64::from_le_bytes(padded::<8>(p))),
            QUIC_EVENT_CONNECTION_ID => Self::ConnectionId(ConnectionIdInfo::decode(p)),
            QUIC_EVENT_CONNECTION_CLOSE => Self::ConnectionClose(ConnectionClose::decode(p)),
            QUIC_EVENT_CONNECTION_MIGRATION => Self::Migration(p.first().is_some_and(|&b| b != 0)),
            QUIC_EVENT_KEY_UPDATE => Self::KeyUpdate(p.first().copied().unwrap_or(0)),
            QUIC_EVENT_NEW_TOKEN => Self::NewToken(p.to_vec()),
            QUIC_EVENT_NEW_SESSION_TICKET => Self::NewSessionTicket(p.to_vec()),
            _ => return None,
        })
    }
}

/// What one recvmsg call returned
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvKind {
    /// TLS handshake bytes: cmsg QUIC_HANDSHAKE_INFO{level}
    Handshake {
        /// QUIC_CRYPTO_* level
        level: u8,
    },
    /// An event: msg_flags has MSG_QUIC_NOTIFICATION
    Notification,
    /// Stream data: cmsg QUIC_STREAM_INFO{id, FIN if the end was reached}
    Stream {
        /// Stream id
        id: i64,
        /// The last byte of the stream was delivered
        fin: bool,
    },
    /// An RFC 9221 datagram: msg_flags has MSG_QUIC_DATAGRAM
    Datagram,
}

/// Result of [`RecvQueue::recv`]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// What was returned
    pub kind: RecvKind,
    /// Bytes written into the buffer
    pub len: usize,
    /// msg_flags bits this call sets (MSG_EOR, MSG_QUIC_NOTIFICATION, MSG_QUIC_DATAGRAM)
    pub msg_flags: u32,
}

impl Received {
    /// The QUIC_STREAM_INFO cmsg for a stream read
    pub fn stream_info(&self) -> Option<StreamInfo> {
        match self.kind {
            RecvKind::Stream { id, fin } => Some(StreamInfo {
                stream_id: id,
                stream_flags: if fin { MSG_QUIC_STREAM_FIN } else { 0 },
            }),
            _ => None,
        }
    }
}

/// QUIC_EVENT_STREAM_UPDATE with RECV_SIZE_KNOWN for stream `id`, if its FIN (final size)
/// arrived while data below it is still missing (reference §1.6; the service reports RECV and
/// RECVD from its reads, this state only the connection knows)
pub fn recv_size_known(c: &crate::connection::Connection, id: u64) -> Option<Event> {
    match c.stream_recv_final_size(crate::StreamId(id))? {
        (size, false) => Some(Event::StreamUpdate(StreamUpdate {
            id: id as i64,
            state: stream_state::RECV_SIZE_KNOWN,
            errcode: 0,
            finalsz: size,
        })),
        (_, true) => None,
    }
}

#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    /// Bytes already delivered
    off: usize,
}

impl Chunk {
    fn rest(&self) -> &[u8] {
        self.data.get(self.off..).unwrap_or(&[])
    }
}

#[derive(Debug)]
enum DataItem {
    Stream { id: i64, fin: bool, chunk: Chunk },
    Datagram(Chunk),
}

/// A socket's receive queue with the kernel's ordering and partial-read rules
#[derive(Debug, Default)]
pub struct RecvQueue {
    handshake: VecDeque<(u8, Chunk)>,
    events: VecDeque<Chunk>,
    data: VecDeque<DataItem>,
    bytes: usize,
}

impl RecvQueue {
    /// An empty queue
    pub fn new() -> Self {
        Self::default()
    }
    /// Nothing to read (poll would not report EPOLLIN)
    pub fn is_empty(&self) -> bool {
        self.handshake.is_empty() && self.events.is_empty() && self.data.is_empty()
    }
    /// Bytes queued and not yet read (SIOCINQ-like accounting for rcvbuf limits)
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }
    /// Queue TLS handshake bytes received at `level` (external TLS mode)
    pub fn push_handshake(&mut self, level: u8, data: Vec<u8>) {
        self.bytes += data.len();
        self.handshake.push_back((level, Chunk { data, off: 0 }));
    }
    /// Forget the handshake bytes not yet read: the service's own TLS took the handshake over
    /// (an accepted socket whose application chose `quic_server_handshake`)
    pub fn clear_handshake(&mut self) {
        for (_, chunk) in self.handshake.drain(..) {
            self.bytes -= chunk.rest().len();
        }
    }
    /// Queue an event if the application enabled its type; returns whether it was queued
    pub fn push_event(&mut self, mask: EventMask, event: &Event) -> bool {
        if !mask.enabled(event.event_type()) {
            return false;
        }
        let data = event.encode();
        self.bytes += data.len();
        self.events.push_back(Chunk { data, off: 0 });
        true
    }
    /// Queue in-order stream data (`fin`: these are the last bytes of the stream)
    pub fn push_stream(&mut self, id: i64, data: Vec<u8>, fin: bool) {
        self.bytes += data.len();
        self.data.push_back(DataItem::Stream {
            id,
            fin,
            chunk: Chunk { data, off: 0 },
        });
    }
    /// Queue a received datagram
    pub fn push_datagram(&mut self, data: Vec<u8>) {
        self.bytes += data.len();
        self.data
            .push_back(DataItem::Datagram(Chunk { data, off: 0 }));
    }

    /// One recvmsg: fill `buf` from the head of the queue; `peek` leaves the queue unchanged
    pub fn recv(&mut self, buf: &mut [u8], peek: bool) -> Option<Received> {
        if let Some((level, chunk)) = self.handshake.front_mut() {
            let kind = RecvKind::Handshake { level: *level };
            let (r, done) = Self::take_message(chunk, buf, peek, kind, 0);
            self.bytes -= if peek { 0 } else { r.len };
            if done {
                self.handshake.pop_front();
            }
            return Some(r);
        }
        if let Some(chunk) = self.events.front_mut() {
            let (r, done) = Self::take_message(
                chunk,
                buf,
                peek,
                RecvKind::Notification,
                MSG_QUIC_NOTIFICATION,
            );
            self.bytes -= if peek { 0 } else { r.len };
            if done {
                self.events.pop_front();
            }
            return Some(r);
        }
        match self.data.front_mut()? {
            DataItem::Datagram(chunk) => {
                let (r, done) =
                    Self::take_message(chunk, buf, peek, RecvKind::Datagram, MSG_QUIC_DATAGRAM);
                self.bytes -= if peek { 0 } else { r.len };
                if done {
                    self.data.pop_front();
                }
                Some(r)
            }
            DataItem::Stream { id, .. } => {
                let id = *id;
                Some(self.take_stream(id, buf, peek))
            }
        }
    }

    /// Non-stream messages: copy what fits; MSG_EOR only once the message is fully consumed
    fn take_message(
        chunk: &mut Chunk,
        buf: &mut [u8],
        peek: bool,
        kind: RecvKind,
        flags: u32,
    ) -> (Received, bool) {
        let rest = chunk.rest();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        let done = n == rest.len();
        if !peek {
            chunk.off += n;
        }
        let eor = if done { msg::EOR } else { 0 };
        let r = Received {
            kind,
            len: n,
            msg_flags: flags | eor,
        };
        (r, done && !peek)
    }

    /// Stream data: merge consecutive chunks of the same stream until full or FIN
    fn take_stream(&mut self, id: i64, buf: &mut [u8], peek: bool) -> Received {
        let mut copied = 0;
        let mut fin_reached = false;
        let mut consumed_items = 0;
        for item in self.data.iter_mut() {
            let DataItem::Stream {
                id: iid,
                fin,
                chunk,
            } = item
            else {
                break;
            };
            if *iid != id {
                break;
            }
            let rest = chunk.rest();
            let n = rest.len().min(buf.len() - copied);
            buf[copied..copied + n].copy_from_slice(&rest[..n]);
            copied += n;
            let whole = n == rest.len();
            if !peek {
                chunk.off += n;
            }
            if whole {
                consumed_items += 1;
                if *fin {
                    fin_reached = true;
                    break;
                }
            }
            if !whole || copied == buf.len() {
                break;
            }
        }
        if !peek {
            self.bytes -= copied;
            for _ in 0..consumed_items {
                self.data.pop_front();
            }
        }
        Received {
            kind: RecvKind::Stream {
                id,
                fin: fin_reached,
            },
            len: copied,
            msg_flags: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_rules() {
        let mut m = EventMask::default();
        for t in 1..QUIC_EVENT_MAX {
            assert_eq!(m.get(t), Ok(false));
        }
        assert_eq!(m.set(0, true), Err(Errno::EINVAL));
        assert_eq!(m.set(10, true), Err(Errno::EINVAL));
        m.set(QUIC_EVENT_STREAM_UPDATE, true).unwrap();
        assert!(m.enabled(1));
        m.set(1, false).unwrap();
        assert!(!m.enabled(1));
    }

    #[test]
    fn event_encoding() {
        let u = StreamUpdate {
            id: 5,
            state: stream_state::RECV_RECVD,
            errcode: 0,
            finalsz: 11,
        };
        let cases = [
            (Event::StreamUpdate(u), 1 + 24),
            (
                Event::StreamMaxData(StreamMaxData { id: 0, max_data: 9 }),
                17,
            ),
            (Event::MaxStream(40), 9),
            (Event::ConnectionId(ConnectionIdInfo::default()), 13),
            (Event::ConnectionClose(ConnectionClose::new(1, 2, b"x")), 73),
            (Event::Migration(true), 2),
            (Event::KeyUpdate(1), 2),
            (Event::NewToken(vec![1, 2, 3]), 4),
            (Event::NewSessionTicket(vec![4; 10]), 11),
        ];
        for (e, len) in cases {
            let b = e.encode();
            assert_eq!(b.len(), len, "{e:?}");
            assert_eq!(b[0], e.event_type());
            assert_eq!(Event::decode(&b), Some(e));
        }
        assert_eq!(Event::decode(&[0]), None);
        assert_eq!(Event::decode(&[]), None);
    }

    #[test]
    fn clearing_handshake_bytes_keeps_the_rest() {
        let mut q = RecvQueue::new();
        q.push_handshake(QUIC_CRYPTO_INITIAL, vec![1; 10]);
        q.push_datagram(b"dg".to_vec());
        let mut buf = [0u8; 4];
        let r = q.recv(&mut buf, false).expect("part of the hello");
        assert_eq!(r.len, 4);
        assert_eq!(q.queued_bytes(), 8);
        q.clear_handshake();
        assert_eq!(q.queued_bytes(), 2, "only the datagram is left");
        let r = q.recv(&mut buf, false).expect("datagram");
        assert!(matches!(r.kind, RecvKind::Datagram));
        assert!(q.is_empty());
    }

    #[test]
    fn order_is_handshake_events_data() {
        let mut mask = EventMask::default();
        mask.set(QUIC_EVENT_KEY_UPDATE, true).unwrap();
        let mut q = RecvQueue::new();
        q.push_stream(0, b"abc".to_vec(), false);
        assert!(q.push_event(mask, &Event::KeyUpdate(1)));
        assert!(
            !q.push_event(mask, &Event::MaxStream(4)),
            "disabled: dropped"
        );
        q.push_handshake(QUIC_CRYPTO_HANDSHAKE, b"hs".to_vec());
        q.push_datagram(b"dg".to_vec());
        let mut buf = [0u8; 64];
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!(r.kind, RecvKind::Handshake { level: 2 });
        assert_eq!(r.msg_flags, msg::EOR);
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!(r.kind, RecvKind::Notification);
        assert_eq!(r.msg_flags, MSG_QUIC_NOTIFICATION | msg::EOR);
        assert_eq!(&buf[..2], &[QUIC_EVENT_KEY_UPDATE, 1]);
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!(r.kind, RecvKind::Stream { id: 0, fin: false });
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!(r.kind, RecvKind::Datagram);
        assert_eq!(r.msg_flags, MSG_QUIC_DATAGRAM | msg::EOR);
        assert!(q.recv(&mut buf, false).is_none());
        assert!(q.is_empty());
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn partial_messages_stay_queued() {
        let mut q = RecvQueue::new();
        q.push_datagram(b"hello".to_vec());
        let mut buf = [0u8; 3];
        let r = q.recv(&mut buf, true).unwrap();
        assert_eq!((r.len, r.msg_flags), (3, MSG_QUIC_DATAGRAM));
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!((r.len, r.msg_flags, &buf), (3, MSG_QUIC_DATAGRAM, b"hel"));
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!((r.len, r.msg_flags), (2, MSG_QUIC_DATAGRAM | msg::EOR));
        assert_eq!(&buf[..2], b"lo");
        assert!(q.is_empty());
    }

    #[test]
    fn stream_reads_merge_one_stream_until_fin() {
        let mut q = RecvQueue::new();
        q.push_stream(4, b"ab".to_vec(), false);
        q.push_stream(4, b"cd".to_vec(), true);
        q.push_stream(4, b"zz".to_vec(), false); // impossible after FIN, but must not merge
        q.push_stream(8, b"ef".to_vec(), false);
        let mut buf = [0u8; 16];
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!(r.kind, RecvKind::Stream { id: 4, fin: true });
        assert_eq!(&buf[..r.len], b"abcd");
        assert_eq!(r.stream_info().unwrap().stream_flags, MSG_QUIC_STREAM_FIN);
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!((r.kind, r.len), (RecvKind::Stream { id: 4, fin: false }, 2));
        let mut small = [0u8; 1];
        let r = q.recv(&mut small, false).unwrap();
        assert_eq!((r.kind, r.len), (RecvKind::Stream { id: 8, fin: false }, 1));
        let r = q.recv(&mut small, false).unwrap();
        assert_eq!((r.len, small[0]), (1, b'f'));
        assert!(q.is_empty());
    }

    #[test]
    fn fin_only_when_last_byte_delivered() {
        let mut q = RecvQueue::new();
        q.push_stream(0, b"xyz".to_vec(), true);
        let mut buf = [0u8; 2];
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!(r.kind, RecvKind::Stream { id: 0, fin: false });
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!((r.kind, r.len), (RecvKind::Stream { id: 0, fin: true }, 1));
        // A bare FIN (0 bytes) is delivered too.
        q.push_stream(4, Vec::new(), true);
        let r = q.recv(&mut buf, false).unwrap();
        assert_eq!((r.kind, r.len), (RecvKind::Stream { id: 4, fin: true }, 0));
    }
}
