//! The send path: what goes into the next datagram, packet protection, coalescing and GSO
//! batching
//!
//! Packets are built straight into the caller's buffer and sealed in place; nothing is
//! allocated per packet except what a sent-packet record needs for retransmission.

use std::time::Instant;

use super::spaces::SentRecord;
use super::{Connection, State, Timer};
use crate::frame::{self, Frame};
use crate::packet;
use crate::recovery::SentPacket;
use crate::shared::{SpaceId, Transmit};

/// RFC 9000 §14.1: datagrams carrying Initial packets from a client (or ack-eliciting Initial
/// packets from a server) are padded to at least this size
const MIN_INITIAL_DATAGRAM: usize = 1200;

/// Header bytes to reserve before deciding a packet is worth starting: a long header with two
/// 20-byte CIDs, an empty token, a 2-byte Length and a 4-byte packet number
const MAX_HEADER_OVERHEAD: usize = 1 + 4 + 1 + 20 + 1 + 20 + 1 + 2 + 4;

/// A datagram this close to full is padded to full size so GSO batches stay uniform
const GSO_PAD_SLACK: usize = 32;

/// Smallest useful frame payload
const MIN_PAYLOAD: usize = 8;

/// A packet whose header is written and whose frames are being appended
pub(super) struct PacketInProgress {
    pub(super) space: SpaceId,
    /// Offset of the first header byte in the buffer
    pub(super) start: usize,
    pub(super) long: Option<packet::LongHeaderOffsets>,
    pub(super) pn_offset: usize,
    pub(super) pn: u64,
    pub(super) pn_len: usize,
    pub(super) ack_eliciting: bool,
    /// Contains PADDING (counts as in flight, RFC 9002 §2)
    pub(super) padded: bool,
    /// The datagram carrying this packet must reach 1200 bytes
    pub(super) pad_datagram: bool,
    /// Set by `close_packet`: where the payload ends and the AEAD tag goes
    pub(super) payload_end: Option<usize>,
    pub(super) record: SentRecord,
    /// A client's 0-RTT packet (Data space, long header, 0-RTT keys)
    pub(super) zero_rtt: bool,
}

impl Connection {
    /// Write the next datagram (or GSO batch) into `buf`
    ///
    /// `buf` is cleared first. With `max_datagrams > 1`, several datagrams of the same size may be
    /// written back to back; [`Transmit::segment_size`] then gives their size.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        match self.state {
            State::Drained | State::Draining => return None,
            State::Closing => return self.poll_transmit_close(now, buf),
            State::Handshake | State::Established => {}
        }
        self.tx_ecn = None;
        if let Some((data, to)) = self.path.pending_response {
            if to != self.path.remote {
                self.path.pending_response = None;
                return self.build_off_path_response(now, buf, data, to);
            }
        }
        if let Some(t) = self.poll_preferred(now, buf) {
            return Some(t);
        }
        self.tx_ecn = self.ecn.codepoint();
        if let Some(size) = self.mtu_probe_due() {
            let cc_ok = self.bytes_in_flight() + u64::from(size) <= self.cc.window();
            if cc_ok && self.build_mtu_probe(now, buf, size) {
                self.stats.udp_tx_datagrams += 1;
                self.stats.udp_tx_bytes += buf.len() as u64;
                self.path.bytes_sent += buf.len() as u64;
                return Some(Transmit {
                    destination: self.path.remote,
                    size: buf.len(),
                    ecn: self.tx_ecn,
                    segment_size: None,
                    src_ip: self.preferred_src_ip(),
                });
            }
        }
        let mtu = usize::from(self.path.mtu);
        let mut segment_size: Option<usize> = None;
        let mut count = 0;
        while count < max_datagrams.max(1) {
            let start = buf.len();
            let limit = segment_size.unwrap_or(mtu);
            if !self.build_datagram(now, buf, limit) {
                break;
            }
            let size = buf.len() - start;
            count += 1;
            self.stats.udp_tx_datagrams += 1;
            self.stats.udp_tx_bytes += size as u64;
            self.path.bytes_sent += size as u64;
            match segment_size {
                None => {
                    // A small first datagram (a lone ACK, the tail of a burst) ends the batch.
                    // A large one sets the segment size even below the path MTU: a tunnel's
                    // one-packet DATAGRAMs are sized by the inner MTU, and without this every
                    // one of them would cost its own system call once PMTUD raises the MTU.
                    if size < mtu && size * 2 < mtu {
                        break;
                    }
                    segment_size = Some(size);
                }
                Some(s) if size < s => break,
                Some(_) => {}
            }
        }
        if count == 0 {
            return None;
        }
        Some(Transmit {
            destination: self.path.remote,
            size: buf.len(),
            ecn: self.tx_ecn,
            segment_size: if count > 1 { segment_size } else { None },
            src_ip: self.preferred_src_ip(),
        })
    }

    /// A PATH_RESPONSE for a challenge that arrived from another address than the current
    /// path's, sent back to that address in its own datagram (RFC 9000 §8.2.2)
    fn build_off_path_response(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        data: [u8; 8],
        to: std::net::SocketAddr,
    ) -> Option<Transmit> {
        self.space(SpaceId::Data).keys.as_ref()?;
        let mut p = self.start_packet(now, buf, SpaceId::Data);
        Frame::PathResponse(data).encode(buf);
        p.ack_eliciting = true;
        self.space_mut(SpaceId::Data).next_pn += 1;
        // The challenge came in a datagram of at least 1200 bytes (RFC 9000 §8.2.1), so this
        // padding stays within three times what that address sent
        self.finish_packet(now, buf, p, Some(MIN_INITIAL_DATAGRAM));
        self.stats.udp_tx_datagrams += 1;
        self.stats.udp_tx_bytes += buf.len() as u64;
        Some(Transmit {
            destination: to,
            size: buf.len(),
            ecn: None,
            segment_size: None,
            src_ip: self.preferred_src_ip(),
        })
    }

    /// True if `space` holds something ack-eliciting to send
    fn wants_to_send(&self, space_id: SpaceId) -> bool {
        let space = self.space(space_id);
        if space.has_crypto_or_ping() {
            return true;
        }
        if space_id != SpaceId::Data {
            return false;
        }
        self.handshake_done_pending
            || (self.new_token_pending && self.state == State::Established)
            || self.path.response_on_path().is_some()
            || self.path.challenge_pending()
            || !self.cids.pending_new.is_empty()
            || !self.cids.pending_retire.is_empty()
            || self.datagrams.has_pending()
            || self.streams.has_pending()
    }

    /// An ACK should go out in `space` even without other frames
    fn ack_due(&self, space_id: SpaceId) -> bool {
        let space = self.space(space_id);
        space.ack_pending && space.immediate_ack
    }

    /// Build one datagram of at most `limit` bytes at the end of `buf`; false if nothing to send
    fn build_datagram(&mut self, now: Instant, buf: &mut Vec<u8>, limit: usize) -> bool {
        let datagram_start = buf.len();
        // RFC 9000 §8.1: an unvalidated server sends at most three times what it received
        let budget = self.path.amplification_budget();
        let limit = (limit as u64).min(budget) as usize;
        if limit < MAX_HEADER_OVERHEAD + 16 + MIN_PAYLOAD {
            return false;
        }
        let datagram_end = datagram_start + limit;

        // Congestion control and pacing gate new ack-eliciting data; ACKs and probes pass
        let in_flight = self.bytes_in_flight();
        let window = self.cc.window();
        let cc_blocked = in_flight + usize::from(self.path.mtu) as u64 > window;
        let pacing_delay = if self.config.pacing && !cc_blocked {
            let srtt = self.rtt.smoothed();
            // A model-based controller (BBR) sets the rate itself, not through the window
            let pacing_window = self.cc.pacing_rate().map_or(window, |rate| {
                crate::recovery::pacing::window_for_rate(rate, srtt)
            });
            self.pacer
                .delay(srtt, limit as u64, self.path.mtu, pacing_window, now)
        } else {
            None
        };

        let mut current: Option<PacketInProgress> = None;
        let mut pad_datagram = false;
        let mut blocked_by_pacing = false;
        for space_id in SpaceId::ALL {
            if self.space(space_id).keys.is_none()
                && !(space_id == SpaceId::Data && self.may_seal_zero_rtt())
            {
                continue;
            }
            let probing = self.space(space_id).probes > 0;
            let may_send_data = probing || (!cc_blocked && pacing_delay.is_none());
            let wants_data = self.wants_to_send(space_id);
            if wants_data && !may_send_data && pacing_delay.is_some() {
                blocked_by_pacing = true;
            }
            let path_frames = space_id == SpaceId::Data
                && (self.path.challenge_pending() || self.path.response_on_path().is_some());
            if !(self.ack_due(space_id) || path_frames || (may_send_data && wants_data)) {
                continue;
            }
            let tag_len = self.tag_len(space_id);
            // The previous packet's tag is still to come
            let reserved = current.as_ref().map_or(0, |p| self.tag_len(p.space));
            let room = datagram_end.saturating_sub(buf.len() + reserved);
            if room < MAX_HEADER_OVERHEAD + tag_len + MIN_PAYLOAD {
                break;
            }
            // Reserve the previous packet's tag so this one can follow it; it is sealed once
            // this one proves non-empty
            if let Some(prev) = current.as_mut() {
                self.close_packet(buf, prev, None);
            }
            let mut p = self.start_packet(now, buf, space_id);
            let frames_end = datagram_end - tag_len;
            self.write_frames(now, buf, &mut p, frames_end, may_send_data);
            if buf.len() == p.pn_offset + p.pn_len {
                // Nothing fitted after all: take the header back (the packet number is unused)
                // and leave the previous packet open for padding
                buf.truncate(p.start);
                if let Some(prev) = current.as_mut() {
                    Self::reopen_packet(buf, prev);
                }
                continue;
            }
            if let Some(prev) = current.take() {
                self.seal_packet(now, buf, prev);
            }
            self.space_mut(space_id).next_pn += 1;
            if space_id == SpaceId::Initial && (self.side.is_client() || p.ack_eliciting) {
                pad_datagram = true;
            }
            pad_datagram |= p.pad_datagram;
            current = Some(p);
        }
        if blocked_by_pacing {
            // Come back when the pacer has tokens again
            self.timers.set_or_stop(Timer::Pacing, pacing_delay);
        }
        let Some(last) = current else {
            return false;
        };
        let mut pad_to =
            pad_datagram.then(|| (datagram_start + MIN_INITIAL_DATAGRAM).min(datagram_end));
        // A nearly full datagram is topped up to the limit: the few PADDING bytes let the next
        // datagrams join it in one GSO batch, which needs equal sizes
        let tag_len = self.tag_len(last.space);
        if pad_to.is_none()
            && last.ack_eliciting
            && datagram_end.saturating_sub(buf.len() + tag_len) < GSO_PAD_SLACK
        {
            pad_to = Some(datagram_end);
        }
        self.finish_packet(now, buf, last, pad_to);
        true
    }

    fn tag_len(&self, space_id: SpaceId) -> usize {
        self.local_keys(space_id)
            .map_or(16, |(_, packet)| packet.tag_len())
    }

    /// The keys that seal packets of `space_id` now: the Data space uses 0-RTT keys until a
    /// client has 1-RTT keys
    fn local_keys(
        &self,
        space_id: SpaceId,
    ) -> Option<(&dyn crate::crypto::HeaderKey, &dyn crate::crypto::PacketKey)> {
        match self.spaces[space_id as usize].keys.as_ref() {
            Some(k) => Some((&*k.header.local, &*k.packet.local)),
            None if space_id == SpaceId::Data && self.may_seal_zero_rtt() => {
                Some((self.zero_rtt.header_key()?, self.zero_rtt.packet_key()?))
            }
            None => None,
        }
    }

    pub(super) fn start_packet(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        space_id: SpaceId,
    ) -> PacketInProgress {
        if space_id == SpaceId::Data {
            self.maybe_initiate_key_update(now);
        }
        let space = self.space(space_id);
        let pn = space.next_pn;
        let pn_len = packet::encode_packet_number_len(pn, space.largest_acked);
        let dcid = self.dcid_override.unwrap_or_else(|| self.cids.peer_cid());
        let start = buf.len();
        // RFC 9287 §3: once the peer advertised grease_quic_bit, the QUIC bit is unpredictable
        // (not in Initial packets, whose first flight precedes the peer's parameters)
        let grease = space_id != SpaceId::Initial
            && self.peer_params.as_ref().is_some_and(|p| p.grease_quic_bit)
            && rand::Rng::gen::<bool>(&mut self.rng);
        let zero_rtt = space_id == SpaceId::Data && self.sending_zero_rtt();
        let (long, pn_offset) = match space_id {
            SpaceId::Data if !zero_rtt => {
                let pn_offset = packet::write_short_header(
                    buf,
                    false,
                    self.key_update.phase,
                    &dcid,
                    pn,
                    pn_len,
                    grease,
                );
                (None, pn_offset)
            }
            _ => {
                let ty = match space_id {
                    SpaceId::Initial => packet::LongType::Initial,
                    SpaceId::Handshake => packet::LongType::Handshake,
                    SpaceId::Data => packet::LongType::ZeroRtt,
                };
                let scid = self.cids.initial_local_cid();
                let token = (space_id == SpaceId::Initial && self.side.is_client())
                    .then_some(&self.retry_token[..]);
                let offsets = packet::write_long_header(
                    buf,
                    ty,
                    self.version,
                    &dcid,
                    &scid,
                    token,
                    pn,
                    pn_len,
                    grease,
                );
                let pn_offset = offsets.pn_offset;
                (Some(offsets), pn_offset)
            }
        };
        PacketInProgress {
            space: space_id,
            start,
            long,
            pn_offset,
            pn,
            pn_len,
            ack_eliciting: false,
            padded: false,
            pad_datagram: false,
            payload_end: None,
            record: SentRecord::default(),
            zero_rtt,
        }
    }

    /// Append frames in priority order, never beyond `end`
    fn write_frames(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        p: &mut PacketInProgress,
        end: usize,
        may_send_data: bool,
    ) {
        let space_id = p.space;
        let exponent = self.config.ack_delay_exponent();

        // ACK first: it is small and keeps the peer's recovery moving
        let space = &mut self.spaces[space_id as usize];
        // RFC 9000 §12.4: no ACK in 0-RTT packets
        if space.ack_pending && !p.zero_rtt {
            let delay = space.ack_delay(now, exponent);
            // RFC 9000 §19.3.2: ACK_ECN once we have seen any ECN-marked packet
            let c = space.ecn;
            let ecn = (c.ect0 | c.ect1 | c.ce != 0).then_some(c);
            let len = frame::ack_encoded_len(space.ack_ranges(), delay, ecn.as_ref());
            if buf.len() + len <= end {
                frame::encode_ack(buf, space.ack_ranges(), delay, ecn.as_ref());
                p.record.ack_largest = space.rx_pns.max();
                space.on_ack_sent();
                if space_id == SpaceId::Data {
                    self.timers.stop(Timer::MaxAckDelay);
                }
            }
        }
        // Path validation is not held back by the congestion window: after a NAT rebinding
        // the window is full of packets sent to the old address, which will never be
        // acknowledged, and waiting for their loss would let validation time out (the
        // frames are tiny and resent with backoff, so they cannot flood the path).
        // RFC 9000 §12.4: path frames are not allowed in 0-RTT packets.
        if space_id == SpaceId::Data && !p.zero_rtt {
            let challenge = self
                .path
                .challenge
                .as_ref()
                .filter(|c| c.pending)
                .map(|c| c.data);
            if let Some(data) = challenge {
                if buf.len() + 9 <= end {
                    Frame::PathChallenge(data).encode(buf);
                    self.on_path_challenge_sent(now);
                    // RFC 9000 §8.2.1: a PATH_CHALLENGE datagram is padded to 1200 bytes
                    p.pad_datagram = true;
                    p.ack_eliciting = true;
                }
            }
            if let Some(data) = self.path.response_on_path() {
                if buf.len() + 9 <= end {
                    Frame::PathResponse(data).encode(buf);
                    self.path.pending_response = None;
                    // RFC 9000 §8.2.2: so is a PATH_RESPONSE datagram
                    p.pad_datagram = true;
                    p.ack_eliciting = true;
                }
            }
        }
        if !may_send_data {
            return;
        }
        let before_eliciting = buf.len();

        // RFC 9000 §12.4: these frames are not allowed in 0-RTT packets, and none of them can
        // be due before the client has 1-RTT keys
        if space_id == SpaceId::Data && !p.zero_rtt {
            // RFC 9002 §6.2.4 / RFC 9000 §13.3: a PTO probe repeats an unacknowledged
            // HANDSHAKE_DONE. The client cannot confirm the handshake without it, and while
            // unconfirmed it only acknowledges in 1-RTT: if those ACKs are lost, no loss is
            // ever declared, and probes that are bare PINGs reach the client without telling
            // it anything until its idle timeout.
            if self.side.is_server()
                && self.handshake_confirmed
                && !self.handshake_done_acked
                && self.spaces[space_id as usize].probes > 0
            {
                self.handshake_done_pending = true;
            }
            if self.handshake_done_pending && buf.len() < end {
                Frame::HandshakeDone.encode(buf);
                self.handshake_done_pending = false;
                p.record.handshake_done = true;
            }
            if self.new_token_pending && self.state == State::Established {
                if let Some(token) = &self.new_token {
                    let f = Frame::NewToken { token };
                    if buf.len() + f.encoded_len() <= end {
                        f.encode(buf);
                        self.new_token_pending = false;
                        p.record.new_token = true;
                    }
                }
            }
            while let Some(&seq) = self.cids.pending_retire.front() {
                let f = Frame::RetireConnectionId { sequence: seq };
                if buf.len() + f.encoded_len() > end {
                    break;
                }
                f.encode(buf);
                self.cids.pending_retire.pop_front();
                p.record.retire_cids.push(seq);
            }
            while let Some(&seq) = self.cids.pending_new.front() {
                let Some(ncid) = self.cids.new_cid_frame(seq) else {
                    self.cids.pending_new.pop_front();
                    continue;
                };
                let f = Frame::NewConnectionId(ncid);
                if buf.len() + f.encoded_len() > end {
                    break;
                }
                f.encode(buf);
                self.cids.pending_new.pop_front();
                p.record.new_cids.push(seq);
            }
        }

        // CRYPTO: the lowest pending range that fits
        let space = &mut self.spaces[space_id as usize];
        // RFC 9002 §6.2.4: every handshake probe carries the unacknowledged CRYPTO data, not
        // only the first. The PTO requeues it once and the first probe datagram takes it all;
        // a second probe that is only a PING is wasted when the first is lost, and under
        // bursty loss the one that arrives is often the PING: the peer learns nothing (a
        // client without the ServerHello cannot even acknowledge in Handshake), while an
        // amplification-limited server spends its budget and then waits for the client's
        // backed-off PTO, which can exceed the idle timeout.
        if space_id != SpaceId::Data && space.probes > 0 && space.crypto_tx.pending.is_empty() {
            space.crypto_tx.requeue_unacked();
        }
        if let Some(range) = space.crypto_tx.pending.iter().next() {
            let header = frame::crypto_header_len(range.start, (range.end - range.start) as usize);
            let room = end.saturating_sub(buf.len() + header);
            if room > 0 {
                let len = room.min((range.end - range.start) as usize);
                let sent = range.start..range.start + len as u64;
                frame::encode_crypto_header(buf, sent.start, len);
                buf.extend_from_slice(
                    &space.crypto_tx.data[sent.start as usize..sent.end as usize],
                );
                space.crypto_tx.pending.remove(sent.clone());
                p.record.crypto = Some(sent);
            }
        }

        if space_id == SpaceId::Data && (self.state == State::Established || p.zero_rtt) {
            // Datagrams before stream data: they are the latency-sensitive tunnel payload
            let n = self
                .datagrams
                .write_frames(buf, end.saturating_sub(buf.len()));
            self.stats.datagrams_sent += n as u64;
            let rtt = self.rtt.smoothed();
            let room = end.saturating_sub(buf.len());
            self.streams
                .write_frames(buf, room, now, rtt, &mut p.record.stream);
            self.app_limited = !self.streams.has_pending() && !self.datagrams.has_pending();
        }

        let acking_only = space_id == SpaceId::Data
            && !p.ack_eliciting
            && buf.len() == before_eliciting
            && p.record.ack_largest.is_some();
        // RFC 9000 §13.2.4: an endpoint that only acknowledges has nothing in flight, so no
        // loss timer notices a path that died under it (a NAT that rebound while we only
        // listened: the peer's packets go to the old mapping and we never speak again). Now
        // and then an ACK carries a PING, which arms the PTO until it is acknowledged.
        let keep_alive_probe = acking_only
            && self.ack_only_sent >= super::migration::ACKS_BEFORE_PING
            && !self.ack_eliciting_in_flight();
        let space = &mut self.spaces[space_id as usize];
        let mut wrote_eliciting = buf.len() > before_eliciting;
        if (space.ping_pending || (space.probes > 0 && !wrote_eliciting) || keep_alive_probe)
            && buf.len() < end
        {
            Frame::Ping.encode(buf);
            wrote_eliciting = true;
        }
        if wrote_eliciting {
            space.ping_pending = false;
            space.probes = space.probes.saturating_sub(1);
            p.ack_eliciting = true;
            self.ack_only_sent = 0;
        } else if acking_only {
            self.ack_only_sent = self.ack_only_sent.saturating_add(1);
        }
    }

    /// Pad, fill in the Length, seal, protect the header and record the packet
    pub(super) fn finish_packet(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        mut p: PacketInProgress,
        pad_to: Option<usize>,
    ) {
        self.close_packet(buf, &mut p, pad_to);
        self.seal_packet(now, buf, p);
    }

    /// Pad, fill in the Length and reserve the AEAD tag, so the next coalesced packet can
    /// follow; [`Self::reopen_packet`] undoes it while the packet is still last in `buf`
    fn close_packet(&self, buf: &mut Vec<u8>, p: &mut PacketInProgress, pad_to: Option<usize>) {
        let Some((header_key, packet_key)) = self.local_keys(p.space) else {
            return;
        };
        let tag_len = packet_key.tag_len();
        // RFC 9001 §5.4.2: the header protection sample starts 4 bytes after the packet number
        // offset, so the packet must hold at least that many bytes plus the sample
        let min_len = p.pn_offset + 4 + header_key.sample_size() - tag_len;
        let mut target = buf.len().max(min_len);
        if let Some(pad_to) = pad_to {
            target = target.max(pad_to.saturating_sub(tag_len));
        }
        if target > buf.len() {
            // PADDING frames are zero bytes
            buf.resize(target, 0);
            p.padded = true;
        }
        if let Some(offsets) = &p.long {
            packet::finish_long_header(buf, offsets, tag_len);
        }
        p.payload_end = Some(buf.len());
        buf.resize(buf.len() + tag_len, 0);
    }

    /// Take back the tag reservation of the last packet in `buf`
    fn reopen_packet(buf: &mut Vec<u8>, p: &mut PacketInProgress) {
        if let Some(end) = p.payload_end.take() {
            buf.truncate(end);
        }
    }

    /// Seal a closed packet in place, protect its header and record it as sent
    fn seal_packet(&mut self, now: Instant, buf: &mut [u8], p: PacketInProgress) {
        let space_id = p.space;
        let (Some((header_key, packet_key)), Some(payload_end)) =
            (self.local_keys(space_id), p.payload_end)
        else {
            return;
        };
        let end = payload_end + packet_key.tag_len();
        let header_len = p.pn_offset + p.pn_len - p.start;
        let packet_bytes = &mut buf[p.start..end];
        {
            let (header, payload) = packet_bytes.split_at_mut(header_len);
            packet_key.seal(p.pn, header, payload);
        }
        if header_key
            .encrypt(p.pn_offset - p.start, packet_bytes)
            .is_err()
        {
            // Cannot happen with the minimum length of close_packet; never send a
            // half-protected packet: zero it so the peer drops it
            packet_bytes.fill(0);
            return;
        }
        let size = end - p.start;
        let in_flight = p.ack_eliciting || p.padded;
        let mut p = p;
        if self.tx_ecn.is_some() {
            p.record.ecn = true;
            self.ecn.on_packet_sent();
        }
        if p.zero_rtt {
            self.stats.zero_rtt_packets_sent += 1;
            self.stats.zero_rtt_bytes_sent += size as u64;
        } else if space_id == SpaceId::Data {
            self.key_update.sent_in_phase += 1;
        }
        self.on_packet_sent(
            now,
            space_id,
            p.pn,
            SentPacket {
                time_sent: now,
                size: size.min(usize::from(u16::MAX)) as u16,
                ack_eliciting: p.ack_eliciting,
                in_flight,
                payload: p.record,
            },
        );
        if in_flight && self.config.pacing {
            self.pacer.on_sent(size as u64);
        }
        // RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet
        if space_id == SpaceId::Handshake && self.side.is_client() {
            self.discard_space(SpaceId::Initial);
        }
    }

    /// In the closing state: one datagram with CONNECTION_CLOSE in every space we have keys for
    fn poll_transmit_close(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.close.pending {
            return None;
        }
        self.close.pending = false;
        self.tx_ecn = None;
        let limit =
            (usize::from(self.path.mtu) as u64).min(self.path.amplification_budget()) as usize;
        if limit < MAX_HEADER_OVERHEAD + 16 + MIN_PAYLOAD {
            return None;
        }
        let mut current: Option<PacketInProgress> = None;
        let mut pad = false;
        for space_id in SpaceId::ALL {
            if self.space(space_id).keys.is_none() {
                continue;
            }
            // RFC 9000 §10.2.3: once the handshake is confirmed, only 1-RTT packets
            if space_id != SpaceId::Data && self.handshake_confirmed {
                continue;
            }
            let tag_len = self.tag_len(space_id);
            if limit.saturating_sub(buf.len()) < MAX_HEADER_OVERHEAD + tag_len + MIN_PAYLOAD {
                break;
            }
            if let Some(p) = current.take() {
                self.finish_packet(now, buf, p, None);
            }
            let p = self.start_packet(now, buf, space_id);
            let max_len = limit - tag_len - buf.len();
            self.write_close_frame(buf, space_id, max_len);
            self.space_mut(space_id).next_pn += 1;
            pad |= space_id == SpaceId::Initial && self.side.is_client();
            current = Some(p);
        }
        let last = current?;
        let pad_to = pad.then_some(MIN_INITIAL_DATAGRAM.min(limit));
        self.finish_packet(now, buf, last, pad_to);
        self.stats.udp_tx_datagrams += 1;
        self.stats.udp_tx_bytes += buf.len() as u64;
        self.path.bytes_sent += buf.len() as u64;
        Some(Transmit {
            destination: self.path.remote,
            size: buf.len(),
            ecn: None,
            segment_size: None,
            src_ip: self.preferred_src_ip(),
        })
    }
}
