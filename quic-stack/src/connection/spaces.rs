//! Packet number spaces (RFC 9000 §12.3): packet numbers, received-packet tracking and ACK
//! generation, the CRYPTO stream of each encryption level, and what each sent packet carried

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::crypto::Keys;
use crate::error::TransportError;
use crate::range_set::RangeSet;
use crate::recovery::SentPackets;
use crate::stream;

/// Received packet-number ranges we keep; older ranges are forgotten (and their packets then
/// treated as duplicates), which bounds both memory and the ACK frame size
const MAX_ACK_RANGES: usize = 64;

/// CRYPTO bytes buffered beyond the read offset before the peer is misbehaving
/// (RFC 9000 §7.5 requires at least 4096)
const MAX_CRYPTO_BUFFER: u64 = 64 * 1024;

/// What one sent packet carried that must be resent if it is lost
#[derive(Debug, Default)]
pub(crate) struct SentRecord {
    /// CRYPTO stream range of this space
    pub(crate) crypto: Option<Range<u64>>,
    /// Stream-layer frames (STREAM, MAX_*, RESET_STREAM, ...)
    pub(crate) stream: stream::SentFrames,
    /// HANDSHAKE_DONE
    pub(crate) handshake_done: bool,
    /// Sequence numbers of NEW_CONNECTION_ID frames
    pub(crate) new_cids: Vec<u64>,
    /// Sequence numbers of RETIRE_CONNECTION_ID frames
    pub(crate) retire_cids: Vec<u64>,
    /// Largest packet number acknowledged by an ACK frame in this packet: once this packet is
    /// acknowledged, the peer knows about everything up to it (RFC 9000 §13.2.4)
    pub(crate) ack_largest: Option<u64>,
    /// This packet was a path MTU probe of this size
    pub(crate) mtu_probe: Option<u16>,
    /// Sent with ECT(0)
    pub(crate) ecn: bool,
    /// Carried our NEW_TOKEN frame
    pub(crate) new_token: bool,
}

/// Reassembles the peer's CRYPTO stream of one encryption level
///
/// Handshake data is small and arrives once per connection, so a map of owned chunks is enough.
#[derive(Debug, Default)]
pub(crate) struct CryptoRecv {
    /// Bytes delivered to TLS so far
    offset: u64,
    chunks: BTreeMap<u64, Vec<u8>>,
}

impl CryptoRecv {
    pub(crate) fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), TransportError> {
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.offset {
            return Ok(()); // already delivered (a retransmission)
        }
        // RFC 9000 §7.5: an endpoint may close with CRYPTO_BUFFER_EXCEEDED instead of buffering
        // without limit
        if end > self.offset + MAX_CRYPTO_BUFFER {
            return Err(TransportError::CRYPTO_BUFFER_EXCEEDED(
                "crypto data too far ahead",
            ));
        }
        let (offset, data) = if offset < self.offset {
            let skip = (self.offset - offset) as usize;
            (self.offset, &data[skip..])
        } else {
            (offset, data)
        };
        match self.chunks.get(&offset) {
            Some(existing) if existing.len() >= data.len() => {}
            _ => {
                self.chunks.insert(offset, data.to_vec());
            }
        }
        Ok(())
    }

    /// True if received bytes wait here (contiguous or not)
    pub(crate) fn has_data(&self) -> bool {
        !self.chunks.is_empty()
    }

    /// Append the contiguous bytes available at the read offset to `out`
    pub(crate) fn read(&mut self, out: &mut Vec<u8>) {
        while let Some(entry) = self.chunks.first_entry() {
            let start = *entry.key();
            if start > self.offset {
                break;
            }
            let chunk = entry.remove();
            let end = start + chunk.len() as u64;
            if end > self.offset {
                out.extend_from_slice(&chunk[(self.offset - start) as usize..]);
                self.offset = end;
            }
        }
    }
}

/// Our CRYPTO stream of one encryption level: everything written, and what still needs sending
#[derive(Debug, Default)]
pub(crate) struct CryptoSend {
    /// All bytes TLS produced at this level (a few KiB at most)
    pub(crate) data: Vec<u8>,
    /// Offsets not yet sent, or lost
    pub(crate) pending: RangeSet,
    /// Offsets the peer acknowledged
    pub(crate) acked: RangeSet,
}

impl CryptoSend {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let start = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.pending.insert(start..self.data.len() as u64);
    }

    /// Queue everything not yet acknowledged again (a PTO probe)
    pub(crate) fn requeue_unacked(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let mut all = RangeSet::new();
        all.insert(0..self.data.len() as u64);
        all.subtract(&self.acked);
        for r in all.iter() {
            self.pending.insert(r);
        }
    }

    pub(crate) fn on_lost(&mut self, range: Range<u64>) {
        let mut r = RangeSet::new();
        r.insert(range);
        r.subtract(&self.acked);
        for r in r.iter() {
            self.pending.insert(r);
        }
    }
}

/// One packet number space
pub(crate) struct PacketSpace {
    /// Keys of this encryption level; `None` before they exist and after they are discarded
    pub(crate) keys: Option<Keys>,
    /// Set once keys were installed and then discarded
    pub(crate) discarded: bool,
    pub(crate) next_pn: u64,
    pub(crate) largest_acked: Option<u64>,
    pub(crate) largest_acked_sent_time: Option<Instant>,
    pub(crate) sent: SentPackets<SentRecord>,
    /// Earliest time a packet in flight would be declared lost by the time threshold
    pub(crate) loss_time: Option<Instant>,
    pub(crate) time_of_last_ack_eliciting: Option<Instant>,
    /// PTO probes still to send in this space
    pub(crate) probes: u8,
    /// A PING was asked for (keep-alive, probe)
    pub(crate) ping_pending: bool,

    // Receive side
    /// Packet numbers received and not yet known to be acknowledged by the peer
    pub(crate) rx_pns: RangeSet,
    /// Lowest packet number we still remember; anything below is a duplicate for us
    pub(crate) rx_floor: u64,
    /// Largest received packet number and when it arrived (for the ACK Delay field)
    pub(crate) largest_rx: Option<(u64, Instant)>,
    /// Ack-eliciting packets received since our last ACK
    pub(crate) unacked_eliciting: u32,
    /// An ACK should go out now rather than after max_ack_delay
    pub(crate) immediate_ack: bool,
    /// Something arrived since the last ACK we sent
    pub(crate) ack_pending: bool,
    /// ECN counts of received packets
    pub(crate) ecn: crate::frame::EcnCounts,
    pub(crate) crypto_rx: CryptoRecv,
    pub(crate) crypto_tx: CryptoSend,
}

impl PacketSpace {
    pub(crate) fn new() -> Self {
        Self {
            keys: None,
            discarded: false,
            next_pn: 0,
            largest_acked: None,
            largest_acked_sent_time: None,
            sent: SentPackets::new(),
            loss_time: None,
            time_of_last_ack_eliciting: None,
            probes: 0,
            ping_pending: false,
            rx_pns: RangeSet::new(),
            rx_floor: 0,
            largest_rx: None,
            unacked_eliciting: 0,
            immediate_ack: false,
            ack_pending: false,
            ecn: Default::default(),
            crypto_rx: CryptoRecv::default(),
            crypto_tx: CryptoSend::default(),
        }
    }

    /// True if `pn` was already received (or is too old to tell)
    pub(crate) fn is_duplicate(&self, pn: u64) -> bool {
        pn < self.rx_floor || self.rx_pns.contains(pn)
    }

    /// Record a successfully decrypted packet; decides how soon to acknowledge it
    /// (RFC 9000 §13.2.1: Initial and Handshake at once; 1-RTT after two ack-eliciting packets,
    /// on reordering, or within max_ack_delay)
    pub(crate) fn on_packet_received(
        &mut self,
        now: Instant,
        pn: u64,
        ack_eliciting: bool,
        immediate_space: bool,
    ) {
        let largest_before = self.largest_rx.map(|(l, _)| l);
        self.rx_pns.insert_one(pn);
        while self.rx_pns.len() > MAX_ACK_RANGES {
            if let Some(r) = self.rx_pns.pop_min() {
                self.rx_floor = r.end;
            }
        }
        if self.largest_rx.is_none_or(|(l, _)| pn > l) {
            self.largest_rx = Some((pn, now));
        }
        self.ack_pending = true;
        if ack_eliciting {
            self.unacked_eliciting += 1;
            // RFC 9000 §13.2.1: out-of-order arrival (a gap below, or a packet filling a gap)
            // is acknowledged at once to speed up loss detection
            let reordered = match largest_before {
                Some(l) => pn < l || pn > l + 1,
                None => false,
            };
            if immediate_space || self.unacked_eliciting >= 2 || reordered {
                self.immediate_ack = true;
            }
        }
    }

    /// The peer acknowledged one of our ACK frames covering up to `largest`: stop repeating
    /// ranges at or below it (RFC 9000 §13.2.4)
    pub(crate) fn on_ack_of_ack(&mut self, largest: u64) {
        let floor = largest.saturating_add(1);
        if floor > self.rx_floor {
            self.rx_pns.remove(0..floor);
            self.rx_floor = floor;
        }
    }

    /// ACK ranges to send, descending
    pub(crate) fn ack_ranges(&self) -> impl Iterator<Item = Range<u64>> + Clone + '_ {
        self.rx_pns.iter().rev()
    }

    /// The ACK Delay field value for `now`, scaled by our ack_delay_exponent
    pub(crate) fn ack_delay(&self, now: Instant, exponent: u8) -> u64 {
        let delay = self
            .largest_rx
            .map_or(Duration::ZERO, |(_, t)| now.saturating_duration_since(t));
        (delay.as_micros() as u64) >> exponent
    }

    pub(crate) fn on_ack_sent(&mut self) {
        self.ack_pending = false;
        self.immediate_ack = false;
        self.unacked_eliciting = 0;
    }

    /// Something other than an ACK is waiting in this space
    pub(crate) fn has_crypto_or_ping(&self) -> bool {
        !self.crypto_tx.pending.is_empty() || self.ping_pending || self.probes > 0
    }

    /// Forget everything about this space once its keys are gone (RFC 9002 §6.4)
    pub(crate) fn discard(&mut self) {
        self.keys = None;
        self.discarded = true;
        self.loss_time = None;
        self.time_of_last_ack_eliciting = None;
        self.probes = 0;
        self.ping_pending = false;
        self.ack_pending = false;
        self.immediate_ack = false;
        self.crypto_tx.pending = RangeSet::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_reassembly_out_of_order() {
        let mut c = CryptoRecv::default();
        let mut out = Vec::new();
        c.insert(3, b"def").unwrap();
        c.read(&mut out);
        assert!(out.is_empty());
        c.insert(0, b"abc").unwrap();
        c.insert(1, b"bcd").unwrap();
        c.read(&mut out);
        assert_eq!(out, b"abcdef");
        c.insert(0, b"abcdefg").unwrap();
        c.read(&mut out);
        assert_eq!(out, b"abcdefg");
        assert!(c.insert(1 << 20, b"x").is_err());
    }

    #[test]
    fn crypto_send_requeue() {
        let mut s = CryptoSend::default();
        s.write(b"hello world");
        s.pending = RangeSet::new();
        s.acked.insert(0..5);
        s.requeue_unacked();
        assert_eq!(s.pending.iter().collect::<Vec<_>>(), vec![5..11]);
    }

    #[test]
    fn ack_policy() {
        let now = Instant::now();
        let mut s = PacketSpace::new();
        s.on_packet_received(now, 0, true, false);
        assert!(!s.immediate_ack);
        s.on_packet_received(now, 1, true, false);
        assert!(s.immediate_ack);
        s.on_ack_sent();
        s.on_packet_received(now, 3, true, false);
        assert!(s.immediate_ack, "gap must be acked at once");
        assert!(s.is_duplicate(1));
        assert!(!s.is_duplicate(2));
        assert_eq!(s.ack_ranges().collect::<Vec<_>>(), vec![3..4, 0..2]);
    }
}
