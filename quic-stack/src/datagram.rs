//! Unreliable datagrams (RFC 9221): bounded send and receive queues and size limits
//!
//! Datagrams are never retransmitted, so nothing here looks at acks or losses. Both queues are
//! bounded and every datagram dropped for lack of room is counted in [`DatagramStats`]. Rules
//! a caller can rely on:
//! - every datagram accepted by [`DatagramState::send`] fits a DATAGRAM frame with a length
//!   field within the peer's `max_datagram_frame_size` (and the configured packet payload);
//! - [`DatagramState::write_frames`] never writes more than `max_len` bytes, and omits a length
//!   field only on a frame that exactly fills the space, so anything the caller appends after
//!   (e.g. PADDING) stays parseable;
//! - no method panics on peer input.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::error::TransportError;
use crate::stream::deps;
use crate::varint;

/// Size of the blocks received datagrams are carved from
const RECV_POOL_BLOCK: usize = 64 * 1024;

/// DATAGRAM frame type with a length field, for blaming errors
const DATAGRAM_LEN: u64 = 0x31;

/// Why a datagram could not be queued for sending
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendDatagramError {
    /// The peer did not advertise max_datagram_frame_size
    #[error("datagrams not supported by peer")]
    UnsupportedByPeer,
    /// Datagram sending is disabled locally (send queue of length 0)
    #[error("datagram support disabled")]
    Disabled,
    /// Larger than `max_size`
    #[error("datagram too large")]
    TooLarge,
    /// The send queue is full and dropping the oldest was not allowed
    #[error("datagram send queue full")]
    Blocked,
}

/// Counters for datagram traffic
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
pub struct DatagramStats {
    /// DATAGRAM frames written into packets
    pub sent: u64,
    /// DATAGRAM frames received from the peer
    pub received: u64,
    /// Queued datagrams dropped to make room for newer ones (drop-oldest)
    pub dropped_send_queue_full: u64,
    /// Queued datagrams dropped because they no longer fit a packet (e.g. the path MTU fell)
    pub dropped_too_large: u64,
    /// Received datagrams dropped because the application did not read them in time
    pub dropped_recv_buffer_full: u64,
}

/// Datagram queues and limits for one connection
#[derive(Debug)]
pub struct DatagramState {
    /// What we advertise; `None` when we do not accept datagrams
    local_max_frame_size: Option<u64>,
    peer_max_frame_size: Option<u64>,
    /// Largest payload of a packet, when the caller has told us
    max_packet_payload: usize,
    recv: VecDeque<Bytes>,
    /// Received datagrams are copied into this block and split off, so a burst costs one
    /// allocation per block instead of one per datagram (a tunnel receives ~100k a second)
    recv_pool: BytesMut,
    recv_bytes: usize,
    recv_buffer_bytes: usize,
    send: VecDeque<Bytes>,
    send_queue_len: usize,
    stats: DatagramStats,
}

/// Largest payload of a DATAGRAM frame with a length field that fits `limit` bytes
fn payload_within(limit: u64) -> u64 {
    // The length field shrinks as the payload shrinks; the type byte is 1.
    // Nothing on the wire can be longer than a varint can count.
    let limit = limit.min(varint::VarInt::MAX.into_inner());
    let mut n = limit.saturating_sub(1);
    while n > 0 && 1 + varint::size(n) as u64 + n > limit {
        n -= 1;
    }
    n
}

impl DatagramState {
    /// Queues with our advertised limit (`None`: we do not accept), a receive buffer of
    /// `recv_buffer_bytes` and room for `send_queue_len` outgoing datagrams
    pub fn new(
        local_max_frame_size: Option<u64>,
        recv_buffer_bytes: usize,
        send_queue_len: usize,
    ) -> Self {
        Self {
            // RFC 9221 §3: a value of 0 means datagrams are not supported.
            local_max_frame_size: local_max_frame_size.filter(|&v| v > 0),
            peer_max_frame_size: None,
            max_packet_payload: usize::MAX,
            recv: VecDeque::new(),
            recv_pool: BytesMut::new(),
            recv_bytes: 0,
            recv_buffer_bytes,
            send: VecDeque::new(),
            send_queue_len,
            stats: DatagramStats::default(),
        }
    }

    /// Apply the peer's max_datagram_frame_size transport parameter
    pub fn set_peer_max_frame_size(&mut self, v: Option<u64>) {
        self.peer_max_frame_size = v.filter(|&v| v > 0);
    }

    /// Tell the queue the current largest packet payload (after a path MTU change)
    ///
    /// Queued datagrams that no longer fit are dropped when next written, and counted.
    pub fn set_max_packet_payload(&mut self, n: usize) {
        self.max_packet_payload = n;
    }

    /// Largest datagram payload that fits one packet given the peer's limit
    pub fn max_size(&self, max_packet_payload: usize) -> Option<usize> {
        let peer = self.peer_max_frame_size?;
        let n = payload_within(peer).min(payload_within(max_packet_payload as u64));
        Some(n as usize)
    }

    /// Queue a datagram; with `drop_oldest`, a full queue drops its oldest entry (counted)
    pub fn send(&mut self, data: Bytes, drop_oldest: bool) -> Result<(), SendDatagramError> {
        if self.peer_max_frame_size.is_none() {
            return Err(SendDatagramError::UnsupportedByPeer);
        }
        if self.send_queue_len == 0 {
            return Err(SendDatagramError::Disabled);
        }
        if self
            .max_size(self.max_packet_payload)
            .is_some_and(|max| data.len() > max)
        {
            return Err(SendDatagramError::TooLarge);
        }
        if self.send.len() >= self.send_queue_len {
            if !drop_oldest {
                return Err(SendDatagramError::Blocked);
            }
            while self.send.len() >= self.send_queue_len {
                self.send.pop_front();
                self.stats.dropped_send_queue_full += 1;
            }
        }
        self.send.push_back(data);
        Ok(())
    }

    /// The oldest received datagram
    pub fn recv(&mut self) -> Option<Bytes> {
        let d = self.recv.pop_front()?;
        self.recv_bytes -= d.len();
        Some(d)
    }

    /// A DATAGRAM frame from the peer; `Ok(true)` when a datagram was queued for the app
    pub fn on_frame(&mut self, data: &[u8]) -> Result<bool, TransportError> {
        // RFC 9221 §3: receiving DATAGRAM without having advertised support, or larger than
        // advertised, MUST be a PROTOCOL_VIOLATION. The frame is at least 1 byte of type plus
        // the data.
        let Some(max) = self.local_max_frame_size else {
            return Err(
                TransportError::PROTOCOL_VIOLATION("DATAGRAM frame not negotiated")
                    .with_frame(DATAGRAM_LEN),
            );
        };
        if data.len() as u64 + 1 > max {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "DATAGRAM frame above max_datagram_frame_size",
            )
            .with_frame(DATAGRAM_LEN));
        }
        self.stats.received += 1;
        if data.len() > self.recv_buffer_bytes {
            // Could never be buffered; keep what the app has.
            self.stats.dropped_recv_buffer_full += 1;
            return Ok(false);
        }
        // Make room by dropping the oldest: fresh datagrams are usually worth more.
        while self.recv_bytes + data.len() > self.recv_buffer_bytes {
            let Some(old) = self.recv.pop_front() else {
                break;
            };
            self.recv_bytes -= old.len();
            self.stats.dropped_recv_buffer_full += 1;
        }
        self.recv_bytes += data.len();
        if self.recv_pool.capacity() < data.len() {
            // A fresh block; the previous one lives on until its last datagram is dropped
            self.recv_pool = BytesMut::with_capacity(RECV_POOL_BLOCK.max(data.len()));
        }
        self.recv_pool.extend_from_slice(data);
        self.recv.push_back(self.recv_pool.split().freeze());
        Ok(true)
    }

    /// Append queued datagrams as DATAGRAM frames, at most `max_len` bytes; returns the count
    ///
    /// Several datagrams share a packet. Each frame carries a length field, except one that
    /// exactly fills the remaining space.
    pub fn write_frames(&mut self, buf: &mut Vec<u8>, max_len: usize) -> usize {
        let limit = buf.len() + max_len;
        let mut count = 0;
        while let Some(d) = self.send.front() {
            let len = d.len();
            if self
                .max_size(self.max_packet_payload)
                .is_some_and(|max| len > max)
            {
                // The packet size shrank since it was queued: it can never be sent.
                self.send.pop_front();
                self.stats.dropped_too_large += 1;
                continue;
            }
            let space = limit - buf.len();
            let with_len = deps::datagram_header_len(len, false) + len != space;
            if deps::datagram_header_len(len, with_len) + len > space {
                break;
            }
            deps::encode_datagram_header(buf, len, with_len);
            buf.extend_from_slice(d);
            self.send.pop_front();
            self.stats.sent += 1;
            count += 1;
        }
        count
    }

    /// Whether datagrams are waiting to be sent
    pub fn has_pending(&self) -> bool {
        !self.send.is_empty()
    }

    /// Counters so far
    pub fn stats(&self) -> DatagramStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> DatagramState {
        let mut d = DatagramState::new(Some(1200), 100, 3);
        d.set_peer_max_frame_size(Some(1200));
        d
    }

    /// Parse DATAGRAM frames back out of a buffer with the wire module's parser
    fn parse(b: &[u8]) -> Vec<Vec<u8>> {
        crate::frame::Iter::new(b)
            .map(|f| match f.expect("well-formed") {
                crate::frame::Frame::Datagram { data } => data.to_vec(),
                other => panic!("unexpected frame {other:?}"),
            })
            .collect()
    }

    #[test]
    fn send_errors() {
        let mut d = DatagramState::new(Some(1200), 100, 3);
        assert_eq!(
            d.send(Bytes::from_static(b"x"), false),
            Err(SendDatagramError::UnsupportedByPeer)
        );
        d.set_peer_max_frame_size(Some(0));
        assert_eq!(
            d.send(Bytes::from_static(b"x"), false),
            Err(SendDatagramError::UnsupportedByPeer)
        );
        d.set_peer_max_frame_size(Some(100));
        let max = d.max_size(1200).unwrap();
        assert_eq!(max, 100 - 1 - 2);
        assert_eq!(
            d.send(Bytes::from(vec![0; max + 1]), false),
            Err(SendDatagramError::TooLarge)
        );
        assert!(d.send(Bytes::from(vec![0; max]), false).is_ok());
        let mut off = DatagramState::new(None, 100, 0);
        off.set_peer_max_frame_size(Some(100));
        assert_eq!(
            off.send(Bytes::from_static(b"x"), false),
            Err(SendDatagramError::Disabled)
        );
    }

    #[test]
    fn max_size_bounded_by_packet() {
        let d = state();
        assert_eq!(d.max_size(100), Some(100 - 1 - 2));
        assert_eq!(d.max_size(5000), Some(1200 - 1 - 2));
        assert_eq!(DatagramState::new(None, 0, 1).max_size(1200), None);
    }

    #[test]
    fn send_queue_drop_oldest_is_counted() {
        let mut d = state();
        for i in 0..3u8 {
            d.send(Bytes::from(vec![i]), false).unwrap();
        }
        assert_eq!(
            d.send(Bytes::from_static(b"x"), false),
            Err(SendDatagramError::Blocked)
        );
        d.send(Bytes::from_static(b"y"), true).unwrap();
        assert_eq!(d.stats().dropped_send_queue_full, 1);
        let mut buf = Vec::new();
        assert_eq!(d.write_frames(&mut buf, 1200), 3);
        assert_eq!(parse(&buf), [vec![1], vec![2], b"y".to_vec()]);
        assert_eq!(d.stats().sent, 3);
        assert!(!d.has_pending());
    }

    #[test]
    fn recv_buffer_drops_oldest_and_counts() {
        let mut d = state();
        assert!(d.on_frame(&[1; 40]).unwrap());
        assert!(d.on_frame(&[2; 40]).unwrap());
        assert!(d.on_frame(&[3; 40]).unwrap());
        // 120 bytes > 100: the oldest went.
        assert_eq!(d.stats().dropped_recv_buffer_full, 1);
        assert_eq!(d.recv().unwrap()[0], 2);
        assert_eq!(d.recv().unwrap()[0], 3);
        assert!(d.recv().is_none());
        // A datagram larger than the whole buffer is dropped itself.
        assert!(!d.on_frame(&[4; 101]).unwrap());
        assert_eq!(d.stats().dropped_recv_buffer_full, 2);
        assert_eq!(d.stats().received, 4);
    }

    #[test]
    fn unsolicited_or_oversized_frames_are_protocol_violations() {
        let mut d = DatagramState::new(None, 100, 3);
        let e = d.on_frame(b"x").unwrap_err();
        assert_eq!(e.code, crate::TransportErrorCode::PROTOCOL_VIOLATION);
        let mut d = DatagramState::new(Some(10), 100, 3);
        assert!(d.on_frame(&[0; 9]).is_ok());
        let e = d.on_frame(&[0; 10]).unwrap_err();
        assert_eq!(e.code, crate::TransportErrorCode::PROTOCOL_VIOLATION);
    }

    #[test]
    fn several_per_packet_and_never_over_max_len() {
        let mut d = DatagramState::new(Some(1200), 100, 10);
        d.set_peer_max_frame_size(Some(1200));
        for _ in 0..5 {
            d.send(Bytes::from(vec![9; 10]), false).unwrap();
        }
        let mut buf = vec![0xaa; 3];
        // 12 bytes per frame with length: two fit in 30, the third does not.
        assert_eq!(d.write_frames(&mut buf, 30), 2);
        assert_eq!(buf.len(), 3 + 24);
        // Exactly 11 bytes left: the frame omits its length.
        let mut buf = Vec::new();
        assert_eq!(d.write_frames(&mut buf, 11), 1);
        assert_eq!(buf[0], 0x30);
        assert_eq!(parse(&buf), [vec![9; 10]]);
    }

    #[test]
    fn mtu_shrink_drops_too_large() {
        let mut d = state();
        d.send(Bytes::from(vec![0; 500]), false).unwrap();
        d.send(Bytes::from(vec![0; 50]), false).unwrap();
        d.set_max_packet_payload(200);
        let mut buf = Vec::new();
        assert_eq!(d.write_frames(&mut buf, 200), 1);
        assert_eq!(d.stats().dropped_too_large, 1);
        assert_eq!(
            d.send(Bytes::from(vec![0; 300]), false),
            Err(SendDatagramError::TooLarge)
        );
    }
}
