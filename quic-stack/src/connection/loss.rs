//! ACK processing, loss detection and PTO (RFC 9002 §5-§7, appendix A)

use std::time::{Duration, Instant};

use super::{Connection, State, Timer};
use crate::error::TransportError;
use crate::frame;
use crate::qlog::QlogEvent;
use crate::recovery::{loss, SentPacket};
use crate::shared::SpaceId;

use super::spaces::SentRecord;

impl Connection {
    /// Process an ACK frame received in `space_id` (RFC 9002 §A.7)
    pub(super) fn on_ack_received(
        &mut self,
        now: Instant,
        space_id: SpaceId,
        ack: &frame::Ack<'_>,
    ) -> Result<(), TransportError> {
        if space_id == SpaceId::Data {
            self.check_ack_of_rejected_zero_rtt(ack)?;
        }
        let space = &mut self.spaces[space_id as usize];
        // RFC 9000 §13.1: acknowledging a packet never sent is a PROTOCOL_VIOLATION
        if ack.largest >= space.next_pn {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "acknowledged a packet never sent",
            ));
        }
        if space.largest_acked.is_none_or(|l| ack.largest > l) {
            space.largest_acked = Some(ack.largest);
        }
        let mut acked = std::mem::take(&mut self.acked_scratch);
        acked.clear();
        space.sent.on_ack(ack.iter(), |pn, p| acked.push((pn, p)));
        if acked.is_empty() {
            self.acked_scratch = acked;
            return Ok(());
        }

        // RTT sample: only when the largest acknowledged is newly acknowledged and something
        // ack-eliciting was among the newly acknowledged (RFC 9002 §5.1)
        let largest_newly = acked
            .iter()
            .max_by_key(|(pn, _)| *pn)
            .map(|(pn, p)| (*pn, p.time_sent));
        if let Some((pn, sent_time)) = largest_newly {
            if pn == ack.largest {
                self.spaces[space_id as usize].largest_acked_sent_time = Some(sent_time);
                if acked.iter().any(|(_, p)| p.ack_eliciting) {
                    let ack_delay = if space_id == SpaceId::Data {
                        let d = Duration::from_micros(
                            ack.delay
                                .checked_shl(u32::from(self.peer_ack_delay_exponent))
                                .unwrap_or(u64::MAX >> 2),
                        );
                        // RFC 9002 §5.3: clamp to max_ack_delay once confirmed
                        if self.handshake_confirmed {
                            d.min(self.peer_max_ack_delay)
                        } else {
                            d
                        }
                    } else {
                        Duration::ZERO
                    };
                    self.rtt
                        .update(ack_delay, now.saturating_duration_since(sent_time));
                    self.first_rtt_sample.get_or_insert(now);
                }
            }
        }

        let newly_acked_ect = acked.iter().filter(|(_, p)| p.payload.ecn).count() as u64;
        let largest_sent = largest_newly.map(|(_, t)| t);
        let app_limited = self.app_limited;
        for (pn, p) in acked.drain(..) {
            if space_id == SpaceId::Data {
                self.on_1rtt_acked(pn);
            }
            if p.in_flight {
                self.cc
                    .on_ack(now, p.time_sent, u64::from(p.size), app_limited, &self.rtt);
            }
            if p.payload.mtu_probe.is_none() {
                self.on_sized_packet_acked(p.size);
            }
            self.on_packet_acked(space_id, p.payload);
        }
        let largest = self.spaces[space_id as usize].largest_acked;
        self.cc
            .on_end_acks(now, self.bytes_in_flight(), app_limited, largest);
        self.acked_scratch = acked;
        self.on_ack_ecn(now, space_id, ack.ecn, newly_acked_ect, largest_sent);
        if self.qlog.is_some() {
            let (cwnd, bytes_in_flight, smoothed_rtt) = (
                self.cc.window(),
                self.bytes_in_flight(),
                self.rtt.smoothed(),
            );
            self.qlog(now, || QlogEvent::MetricsUpdated {
                cwnd,
                bytes_in_flight,
                smoothed_rtt,
            });
        }

        // RFC 9001 §4.1.2: a client may treat an acknowledged 1-RTT packet as confirmation
        if space_id == SpaceId::Data
            && self.side.is_client()
            && !self.handshake_confirmed
            && self.state == State::Established
            && self.is_1rtt_pn(ack.largest)
        {
            self.on_handshake_confirmed();
        }

        self.detect_lost_packets(now, space_id);
        // RFC 9002 §6.2.1: an acknowledgment resets the PTO backoff, except Initial ACKs at a
        // client: a server that only acknowledges (its TLS not started, e.g. an accepted
        // socket whose application has not chosen yet) must not get a probe every PTO forever
        if !(self.side.is_client() && space_id == SpaceId::Initial) {
            self.pto_count = 0;
        }
        self.set_loss_detection_timer(now);
        Ok(())
    }

    fn on_packet_acked(&mut self, space_id: SpaceId, record: SentRecord) {
        if let Some(size) = record.mtu_probe {
            self.on_mtu_probe_acked(size);
        }
        let space = &mut self.spaces[space_id as usize];
        if let Some(r) = record.crypto {
            space.crypto_tx.acked.insert(r.clone());
            space.crypto_tx.pending.remove(r);
        }
        if let Some(largest) = record.ack_largest {
            space.on_ack_of_ack(largest);
        }
        if record.handshake_done {
            self.handshake_done_acked = true;
        }
        self.streams.on_acked(record.stream);
    }

    pub(super) fn on_packet_lost(&mut self, space_id: SpaceId, record: SentRecord) {
        if let Some(size) = record.mtu_probe {
            self.on_mtu_probe_lost(size);
        }
        let space = &mut self.spaces[space_id as usize];
        if let Some(r) = record.crypto {
            space.crypto_tx.on_lost(r);
        }
        if record.handshake_done {
            self.handshake_done_pending = true;
        }
        // RFC 9000 §13.3: NEW_TOKEN is retransmitted
        if record.new_token && self.new_token.is_some() {
            self.new_token_pending = true;
        }
        self.cids.pending_new.extend(record.new_cids);
        self.cids.pending_retire.extend(record.retire_cids);
        self.streams.on_lost(record.stream);
    }

    /// Declare packets lost by packet or time threshold (RFC 9002 §6.1, §A.10)
    pub(super) fn detect_lost_packets(&mut self, now: Instant, space_id: SpaceId) {
        let Some(largest_acked) = self.spaces[space_id as usize].largest_acked else {
            return;
        };
        let loss_delay = loss::loss_delay(&self.rtt);
        let mut lost = std::mem::take(&mut self.lost_scratch);
        lost.clear();
        let space = &mut self.spaces[space_id as usize];
        space.loss_time = space
            .sent
            .detect_lost(now, largest_acked, loss_delay, |pn, p| lost.push((pn, p)));
        if lost.is_empty() {
            self.lost_scratch = lost;
            return;
        }
        let mut lost_bytes = 0u64;
        let mut largest_lost_sent: Option<Instant> = None;
        let mut run = std::mem::take(&mut self.lost_times_scratch);
        run.clear();
        let mut persistent = false;
        let mut prev_pn: Option<u64> = None;
        for (pn, p) in lost.iter() {
            // RFC 8899 §4.1: a lost MTU probe says nothing about congestion
            if p.payload.mtu_probe.is_some() {
                continue;
            }
            self.stats.packets_lost += 1;
            self.on_sized_packet_lost(now, p.size);
            if p.payload.ecn {
                self.on_ecn_packet_lost();
            }
            self.stats.bytes_lost += u64::from(p.size);
            if p.in_flight {
                lost_bytes += u64::from(p.size);
                largest_lost_sent =
                    Some(largest_lost_sent.map_or(p.time_sent, |t| t.max(p.time_sent)));
            }
            // RFC 9002 §7.6.2: only a run with nothing acknowledged in between counts; a gap in
            // packet numbers may hide an acknowledged packet, so it ends the run
            if prev_pn.is_some_and(|prev| *pn != prev + 1) {
                persistent |= loss::in_persistent_congestion(
                    &run,
                    self.first_rtt_sample,
                    &self.rtt,
                    self.peer_max_ack_delay,
                );
                run.clear();
            }
            prev_pn = Some(*pn);
            run.push((p.time_sent, p.ack_eliciting));
        }
        persistent |= loss::in_persistent_congestion(
            &run,
            self.first_rtt_sample,
            &self.rtt,
            self.peer_max_ack_delay,
        );
        self.lost_times_scratch = run;
        for (pn, p) in lost.drain(..) {
            self.qlog(now, || QlogEvent::PacketLost {
                packet_type: super::qlog_packet_type(space_id),
                packet_number: pn,
            });
            self.on_packet_lost(space_id, p.payload);
        }
        self.lost_scratch = lost;
        // Packets sent before the congestion controller was reset for a new path (RFC 9000
        // §9.4) do not reduce the new path's window
        let largest_lost_sent =
            largest_lost_sent.filter(|&t| self.cc_reset_at.is_none_or(|r| t >= r));
        if let Some(sent) = largest_lost_sent {
            self.stats.congestion_events += 1;
            if persistent {
                self.stats.persistent_congestion_events += 1;
            }
            self.cc
                .on_congestion_event(now, sent, persistent, lost_bytes);
        }
    }

    /// Earliest time-threshold loss deadline over all spaces
    fn earliest_loss_time(&self) -> Option<(Instant, SpaceId)> {
        SpaceId::ALL
            .iter()
            .filter_map(|&s| self.spaces[s as usize].loss_time.map(|t| (t, s)))
            .min_by_key(|(t, _)| *t)
    }

    /// RFC 9002 §A.8 PeerCompletedAddressValidation
    fn peer_completed_address_validation(&self) -> bool {
        self.side.is_server()
            || self.handshake_confirmed
            || self.spaces[SpaceId::Handshake as usize]
                .largest_acked
                .is_some()
    }

    /// When the PTO fires and in which space (RFC 9002 §A.8 GetPtoTimeAndSpace)
    fn pto_time_and_space(&self, now: Instant) -> Option<(Instant, SpaceId)> {
        let base = loss::pto_duration(&self.rtt, self.peer_max_ack_delay, false, self.pto_count);
        // Before confirmation, 0-RTT packets in flight arm no PTO (the Data space is skipped
        // below), so they must not stop the client's anti-deadlock probe either
        let in_flight = if self.handshake_confirmed || self.side.is_server() {
            self.ack_eliciting_in_flight()
        } else {
            [SpaceId::Initial, SpaceId::Handshake]
                .iter()
                .any(|&s| self.spaces[s as usize].sent.ack_eliciting_in_flight() > 0)
        };
        if !in_flight {
            // Client anti-deadlock: probe so the server can send more (RFC 9002 §6.2.2.1)
            let space = if self.spaces[SpaceId::Handshake as usize].keys.is_some() {
                SpaceId::Handshake
            } else {
                SpaceId::Initial
            };
            return Some((now + base, space));
        }
        let mut best: Option<(Instant, SpaceId)> = None;
        for space_id in SpaceId::ALL {
            let space = &self.spaces[space_id as usize];
            if space.sent.ack_eliciting_in_flight() == 0 {
                continue;
            }
            let mut duration = base;
            if space_id == SpaceId::Data {
                // RFC 9002 §A.8: no application-data PTO until the handshake is confirmed
                if !self.handshake_confirmed {
                    continue;
                }
                duration =
                    loss::pto_duration(&self.rtt, self.peer_max_ack_delay, true, self.pto_count);
            }
            let Some(last) = space.time_of_last_ack_eliciting else {
                continue;
            };
            let t = last + duration;
            if best.is_none_or(|(b, _)| t < b) {
                best = Some((t, space_id));
            }
        }
        best
    }

    /// Arm or stop the loss detection timer (RFC 9002 §A.8 SetLossDetectionTimer)
    pub(super) fn set_loss_detection_timer(&mut self, now: Instant) {
        if !matches!(self.state, State::Handshake | State::Established) {
            return;
        }
        if let Some((t, _)) = self.earliest_loss_time() {
            self.timers.set(Timer::LossDetection, t);
            return;
        }
        // RFC 9002 §A.8: a server blocked by the amplification limit arms no timer
        if self.path.amplification_budget() == 0 {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        if !self.ack_eliciting_in_flight() && self.peer_completed_address_validation() {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        let t = self.pto_time_and_space(now).map(|(t, _)| t);
        self.timers.set_or_stop(Timer::LossDetection, t);
    }

    /// The loss detection timer fired (RFC 9002 §A.9)
    pub(super) fn on_loss_detection_timeout(&mut self, now: Instant) {
        if let Some((t, space)) = self.earliest_loss_time() {
            if t <= now {
                self.detect_lost_packets(now, space);
                self.set_loss_detection_timer(now);
                return;
            }
        }
        let Some((_, space_id)) = self.pto_time_and_space(now) else {
            return;
        };
        self.pto_count += 1;
        self.stats.pto_count += 1;
        tracing::trace!(side = ?self.side, space = ?space_id, count = self.pto_count, "PTO");
        // While handshaking, resend all unacknowledged CRYPTO data in every live space: losing
        // one flight should not cost one PTO per level (RFC 9002 §6.2.4 allows probing in
        // several spaces)
        for s in [SpaceId::Initial, SpaceId::Handshake] {
            let space = &mut self.spaces[s as usize];
            if space.keys.is_some() {
                space.crypto_tx.requeue_unacked();
            }
        }
        let space = &mut self.spaces[space_id as usize];
        if space.keys.is_some() {
            // RFC 9002 §6.2.4: send one or two ack-eliciting probes
            space.probes = 2;
            if space_id == SpaceId::Data && !self.streams.has_pending() {
                // With no new data to carry, the probes repeat the oldest outstanding stream
                // data (one packet per probe) rather than being bare PINGs
                for (_, p) in space
                    .sent
                    .iter()
                    .filter(|(_, p)| p.ack_eliciting && !p.payload.stream.is_empty())
                    .take(2)
                {
                    self.streams.requeue_for_probe(&p.payload.stream);
                }
            }
        }
        self.check_black_hole_pto(now);
        self.set_loss_detection_timer(now);
    }

    /// Packet records of a sent packet, for the send path
    pub(super) fn on_packet_sent(
        &mut self,
        now: Instant,
        space_id: SpaceId,
        pn: u64,
        packet: SentPacket<SentRecord>,
    ) {
        let size = u64::from(packet.size);
        let packet_type = if space_id == SpaceId::Data && self.sending_zero_rtt() {
            crate::qlog::QlogPacketType::ZeroRtt
        } else {
            super::qlog_packet_type(space_id)
        };
        self.qlog(now, || QlogEvent::PacketSent {
            packet_type,
            packet_number: pn,
            size: size as usize,
        });
        let in_flight = packet.in_flight;
        let eliciting = packet.ack_eliciting;
        // Packet numbers only grow, so the insert cannot be refused
        let _ = self.spaces[space_id as usize].sent.insert(pn, packet);
        self.stats.packets_sent += 1;
        if in_flight {
            self.cc.on_sent(now, size, pn);
        }
        if eliciting {
            self.spaces[space_id as usize].time_of_last_ack_eliciting = Some(now);
            if self.idle_reset_on_send {
                // RFC 9000 §10.1: the first ack-eliciting packet after receiving restarts it
                self.idle_reset_on_send = false;
                self.reset_idle_timer(now);
            }
            self.reset_keep_alive(now);
            self.set_loss_detection_timer(now);
        }
    }
}
