//! The receive path: coalesced packets, header and packet protection removal, frame dispatch
//! and the TLS handshake driven by CRYPTO data

use std::time::Instant;

use super::keys::KeyChoice;
use super::{Connection, ConnectionError, EndpointEvent, Event, State, Timer};
use crate::crypto;
use crate::error::TransportError;
use crate::frame::{self, Frame};
use crate::packet::{self, HeaderKind, LongType, ProtectedHeader};
use crate::qlog::QlogEvent;
use crate::shared::{EcnCodepoint, RecvMeta, SpaceId};

/// The packet kinds the connection distinguishes
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub(crate) enum PacketKind {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
    Short,
    VersionNegotiation,
    UnsupportedVersion,
}

pub(crate) fn kind(hdr: &ProtectedHeader) -> PacketKind {
    match hdr.kind {
        HeaderKind::Long(LongType::Initial) => PacketKind::Initial,
        HeaderKind::Long(LongType::ZeroRtt) => PacketKind::ZeroRtt,
        HeaderKind::Long(LongType::Handshake) => PacketKind::Handshake,
        HeaderKind::Long(LongType::Retry) => PacketKind::Retry,
        HeaderKind::Short => PacketKind::Short,
        HeaderKind::VersionNegotiation => PacketKind::VersionNegotiation,
        HeaderKind::UnsupportedVersion => PacketKind::UnsupportedVersion,
    }
}

/// What [`Connection::decrypt_packet`] produced
struct Decrypted {
    space: SpaceId,
    pn: u64,
    /// Which 1-RTT key opened it
    key: KeyChoice,
    /// Byte range of the plaintext payload within the packet slice
    payload_start: usize,
    payload_end: usize,
}

impl Connection {
    /// Feed one UDP datagram routed to this connection (decrypted in place)
    pub(crate) fn handle_datagram(&mut self, now: Instant, meta: RecvMeta, data: &mut [u8]) {
        self.stats.udp_rx_datagrams += 1;
        self.stats.udp_rx_bytes += data.len() as u64;
        if self.state == State::Drained {
            return;
        }
        self.last_datagram_len = data.len() as u64;
        self.rx_remote = meta.remote;
        self.rx_local_ip = meta.local_ip;
        let known_path = meta.remote == self.path.remote;
        // RFC 9000 §9: servers do not migrate, so a client drops packets from other addresses
        if self.side.is_client() && !known_path && !self.is_preferred_target(meta.remote) {
            self.stats.packets_dropped += 1;
            return;
        }
        if known_path {
            let was_blocked = self.path.amplification_budget() == 0;
            self.path.bytes_received += data.len() as u64;
            if was_blocked {
                // RFC 9002 §A.6: the server may have been blocked by the amplification limit
                self.set_loss_detection_timer(now);
            }
        }
        let cid_len = self.endpoint_config.local_cid_len;
        let mut offset = 0;
        let mut first_dcid = None;
        while offset < data.len() {
            let Ok(hdr) = packet::parse_header(&data[offset..], cid_len) else {
                break;
            };
            if hdr.packet_len == 0 {
                break; // cannot happen for a parsed header; never loop forever on junk
            }
            let end = offset + hdr.packet_len.min(data.len() - offset);
            // RFC 9000 §12.2: coalesced packets with a different DCID are ignored
            match first_dcid {
                None => first_dcid = Some(hdr.dcid),
                Some(d) if d != hdr.dcid => {
                    offset = end;
                    continue;
                }
                Some(_) => {}
            }
            self.handle_packet(now, &meta, &hdr, &mut data[offset..end]);
            offset = end;
            if self.state == State::Drained {
                return;
            }
        }
    }

    pub(super) fn handle_packet(
        &mut self,
        now: Instant,
        meta: &RecvMeta,
        hdr: &ProtectedHeader,
        packet: &mut [u8],
    ) {
        let pkind = kind(hdr);
        match pkind {
            PacketKind::VersionNegotiation => {
                self.on_version_negotiation(hdr, packet);
                return;
            }
            PacketKind::Retry => {
                self.on_retry(hdr, packet);
                return;
            }
            // Only a server that accepted early data reads 0-RTT packets (RFC 9001 §4.6)
            PacketKind::ZeroRtt
                if self.side.is_server() && self.zero_rtt.header_key().is_some() => {}
            // External TLS: the application may still install the 0-RTT key
            PacketKind::ZeroRtt if self.keep_pending_packet(meta, pkind, packet) => return,
            PacketKind::ZeroRtt | PacketKind::UnsupportedVersion => {
                self.stats.packets_dropped += 1;
                return;
            }
            PacketKind::Initial | PacketKind::Handshake | PacketKind::Short => {}
        }
        if pkind != PacketKind::Short && !self.accept_packet_version(hdr, packet) {
            self.stats.packets_dropped += 1;
            return;
        }
        // RFC 9000 §17.2: a cleared QUIC bit is discarded unless we advertised
        // grease_quic_bit (RFC 9287 §3)
        if !hdr.fixed_bit() && !self.endpoint_config.grease_quic_bit {
            self.stats.packets_dropped += 1;
            return;
        }
        // External TLS: the application may not have installed this level's keys yet
        if self.keep_pending_packet(meta, pkind, packet) {
            return;
        }
        // A stateless reset looks like a short packet ending in a token (RFC 9000 §10.3); keep
        // the tail before decryption overwrites the buffer
        let mut tail = [0u8; 16];
        if pkind == PacketKind::Short && packet.len() >= 21 {
            tail.copy_from_slice(&packet[packet.len() - 16..]);
        }
        let Some(d) = self.decrypt_packet(hdr, packet) else {
            self.stats.packets_dropped += 1;
            if pkind == PacketKind::Short && packet.len() >= 21 {
                self.check_stateless_reset(&tail);
            }
            return;
        };
        match self.state {
            State::Closing => {
                // RFC 9000 §10.2.2: a CONNECTION_CLOSE from the peer lets us drain instead
                let payload = &packet[d.payload_start..d.payload_end];
                let peer_closed = frame::Iter::new(payload)
                    .map_while(Result::ok)
                    .find_map(|f| match f {
                        Frame::Close(c) => Some(c),
                        _ => None,
                    });
                match peer_closed {
                    Some(c) => self.on_peer_close(now, &c),
                    None => self.on_packet_while_closing(),
                }
                return;
            }
            State::Draining | State::Drained => return,
            State::Handshake | State::Established => {}
        }
        let space_id = d.space;
        if self.space(space_id).is_duplicate(d.pn) {
            self.stats.packets_dropped += 1;
            return;
        }
        // RFC 9001 §5.7: a server must not process 1-RTT packets before the handshake completes
        let zero_rtt = pkind == PacketKind::ZeroRtt;
        if space_id == SpaceId::Data
            && !zero_rtt
            && self.side.is_server()
            && self.state == State::Handshake
        {
            self.stats.packets_dropped += 1;
            return;
        }
        self.stats.packets_received += 1;
        let size = packet.len();
        let packet_type = if zero_rtt {
            crate::qlog::QlogPacketType::ZeroRtt
        } else {
            super::qlog_packet_type(space_id)
        };
        self.qlog(now, || QlogEvent::PacketReceived {
            packet_type,
            packet_number: d.pn,
            size,
        });
        if pkind == PacketKind::Short {
            self.on_1rtt_packet(now, d.key, d.pn);
            self.on_server_1rtt_packet();
        }
        if zero_rtt {
            self.stats.zero_rtt_bytes_accepted += size as u64;
        }

        if self.side.is_client() && !self.peer_cid_set && space_id == SpaceId::Initial {
            // RFC 9000 §7.2: the client switches to the server's chosen CID
            self.cids.set_initial_peer_cid(hdr.scid);
            self.peer_cid_set = true;
        }
        if self.side.is_server() && space_id == SpaceId::Handshake {
            // RFC 9000 §8.1: a Handshake packet proves the client received our Initial
            self.path.validated = true;
            // RFC 9001 §4.9.1: a server discards Initial keys on its first Handshake packet
            self.discard_space(SpaceId::Initial);
        }

        let payload = &packet[d.payload_start..d.payload_end];
        let (ack_eliciting, non_probing) =
            match self.process_frames(now, space_id, zero_rtt, payload, &hdr.dcid) {
                Ok(e) => e,
                Err(e) => {
                    self.close_with_error(now, e);
                    return;
                }
            };
        if !matches!(self.state, State::Handshake | State::Established) {
            return;
        }
        self.space_mut(space_id).on_packet_received(
            now,
            d.pn,
            ack_eliciting,
            space_id != SpaceId::Data,
        );
        if let Some(ecn) = meta.ecn {
            let c = &mut self.space_mut(space_id).ecn;
            match ecn {
                EcnCodepoint::Ect0 => c.ect0 += 1,
                EcnCodepoint::Ect1 => c.ect1 += 1,
                EcnCodepoint::Ce => c.ce += 1,
            }
        }
        if space_id == SpaceId::Data {
            let space = self.space(space_id);
            if space.unacked_eliciting > 0
                && !space.immediate_ack
                && self.timers.get(Timer::MaxAckDelay).is_none()
            {
                self.timers
                    .set(Timer::MaxAckDelay, now + self.config.max_ack_delay);
            }
            // A 0-RTT packet cannot move the path: the handshake is not even complete
            if !zero_rtt {
                self.on_peer_address(now, meta.remote, d.pn, non_probing, hdr.dcid);
                if non_probing {
                    self.on_preferred_packet(now, &hdr.dcid);
                }
            }
            if ack_eliciting {
                self.arm_receive_stall_probe(now);
            }
        }
        // RFC 9000 §10.1: a successfully processed packet restarts the idle timer
        self.reset_idle_timer(now);
        self.idle_reset_on_send = true;

        // Once established, TLS only has work when CRYPTO data arrived (e.g. a session ticket);
        // skipping it keeps rustls off the per-packet path
        let tls_idle = self.state == State::Established
            && SpaceId::ALL
                .iter()
                .all(|&id| !self.space(id).crypto_rx.has_data());
        if !tls_idle {
            if let Err(e) = self.drive_tls(now) {
                self.close_with_error(now, e);
            }
        }
    }

    /// Remove header and packet protection in place
    fn decrypt_packet(&self, hdr: &ProtectedHeader, packet: &mut [u8]) -> Option<Decrypted> {
        let pkind = kind(hdr);
        let space_id = match pkind {
            PacketKind::Initial => SpaceId::Initial,
            PacketKind::Handshake => SpaceId::Handshake,
            _ => SpaceId::Data,
        };
        let space = self.space(space_id);
        let (header_key, packet_key) = if pkind == PacketKind::ZeroRtt {
            (self.zero_rtt.header_key()?, self.zero_rtt.packet_key()?)
        } else {
            let keys = match self.original_initial_keys(hdr) {
                Some(k) => k,
                None => space.keys.as_ref()?,
            };
            (&*keys.header.remote, &*keys.packet.remote)
        };
        header_key.decrypt(hdr.pn_offset, packet).ok()?;
        let first = packet[0];
        let pn_len = usize::from(first & 0x03) + 1;
        let header_len = hdr.pn_offset + pn_len;
        if header_len > packet.len() {
            return None;
        }
        let mut truncated = 0u64;
        for &b in &packet[hdr.pn_offset..header_len] {
            truncated = (truncated << 8) | u64::from(b);
        }
        let largest = space.largest_rx.map_or(0, |(pn, _)| pn);
        let pn = packet::decode_packet_number(largest, truncated, pn_len);
        let choice = if pkind == PacketKind::Short {
            self.key_update.choose(first & 0x04 != 0, pn)
        } else {
            KeyChoice::Current
        };
        let key = match choice {
            KeyChoice::Current => packet_key,
            KeyChoice::Previous => self.key_update.prev_remote()?,
            KeyChoice::Next => self.key_update.next_remote()?,
        };
        let (header, payload) = packet.split_at_mut(header_len);
        let len = key.open(pn, header, payload).ok()?;
        // Reserved bits must be zero once protection is removed (RFC 9000 §17.2, §17.3.1);
        // a violation is only checked after authentication so forgeries cannot close us
        let reserved = if pkind == PacketKind::Short {
            0x18
        } else {
            0x0c
        };
        if first & reserved != 0 {
            return None;
        }
        Some(Decrypted {
            space: space_id,
            pn,
            key: choice,
            payload_start: header_len,
            payload_end: header_len + len,
        })
    }

    /// Dispatch every frame of a decrypted payload; returns whether it was ack-eliciting and
    /// whether it held a non-probing frame (RFC 9000 §9.1)
    fn process_frames(
        &mut self,
        now: Instant,
        space_id: SpaceId,
        zero_rtt: bool,
        payload: &[u8],
        dcid: &[u8],
    ) -> Result<(bool, bool), TransportError> {
        let mut ack_eliciting = false;
        let mut non_probing = false;
        let packet_type = match space_id {
            SpaceId::Initial => packet::PacketType::Initial,
            SpaceId::Handshake => packet::PacketType::Handshake,
            SpaceId::Data if zero_rtt => packet::PacketType::ZeroRtt,
            SpaceId::Data => packet::PacketType::OneRtt,
        };
        if payload.is_empty() {
            // RFC 9000 §12.4: a packet without frames is a PROTOCOL_VIOLATION
            return Err(TransportError::PROTOCOL_VIOLATION("packet without frames"));
        }
        for frame in frame::Iter::new(payload) {
            let frame = frame.map_err(TransportError::from)?;
            // RFC 9000 §12.4: each frame type is allowed in some packet types only
            if !frame.ty().allowed_in(packet_type) {
                return Err(TransportError::PROTOCOL_VIOLATION(
                    "frame not allowed in this packet type",
                )
                .with_frame(frame.ty().0));
            }
            ack_eliciting |= frame.is_ack_eliciting();
            // RFC 9000 §9.1: PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID and PADDING probe
            non_probing |= !matches!(
                frame,
                Frame::Padding(_)
                    | Frame::PathChallenge(_)
                    | Frame::PathResponse(_)
                    | Frame::NewConnectionId(_)
            );
            let ty = frame.ty().0;
            self.handle_frame(now, space_id, frame, dcid).map_err(|e| {
                if e.frame_type.is_none() {
                    e.with_frame(ty)
                } else {
                    e
                }
            })?;
            if !matches!(self.state, State::Handshake | State::Established) {
                break;
            }
        }
        Ok((ack_eliciting, non_probing))
    }

    fn handle_frame(
        &mut self,
        now: Instant,
        space_id: SpaceId,
        frame: Frame<'_>,
        dcid: &[u8],
    ) -> Result<(), TransportError> {
        match frame {
            Frame::Padding(_) | Frame::Ping => {}
            Frame::Ack(ack) => self.on_ack_received(now, space_id, &ack)?,
            Frame::Crypto { offset, data } => {
                self.space_mut(space_id).crypto_rx.insert(offset, data)?;
            }
            Frame::Close(close) => self.on_peer_close(now, &close),
            Frame::Stream(s) => self.streams.on_stream_frame(&s)?,
            Frame::ResetStream {
                id,
                error_code,
                final_size,
            } => self.streams.on_reset_stream(id, error_code, final_size)?,
            Frame::StopSending { id, error_code } => {
                self.streams.on_stop_sending(id, error_code)?
            }
            Frame::MaxData(max) => self.streams.on_max_data(max),
            Frame::MaxStreamData { id, max } => self.streams.on_max_stream_data(id, max)?,
            Frame::MaxStreams { dir, count } => self.streams.on_max_streams(dir, count)?,
            Frame::DataBlocked(limit) => self.streams.on_data_blocked(limit),
            Frame::StreamDataBlocked { id, limit } => {
                self.streams.on_stream_data_blocked(id, limit)?
            }
            Frame::StreamsBlocked { dir, limit } => self.streams.on_streams_blocked(dir, limit)?,
            Frame::Datagram { data } => {
                self.stats.datagrams_received += 1;
                if self.datagrams.on_frame(data)? {
                    self.events.push_back(Event::DatagramReceived);
                }
            }
            Frame::NewToken { token } => {
                // RFC 9000 §19.7: a server receiving NEW_TOKEN is a PROTOCOL_VIOLATION
                if self.side.is_server() {
                    return Err(TransportError::PROTOCOL_VIOLATION("NEW_TOKEN from client"));
                }
                // RFC 9000 §19.7: an empty token is a FRAME_ENCODING_ERROR
                if token.is_empty() {
                    return Err(TransportError::FRAME_ENCODING_ERROR("empty NEW_TOKEN"));
                }
                self.endpoint_events
                    .push_back(EndpointEvent::NewToken(token.to_vec()));
            }
            Frame::NewConnectionId(ncid) => self.cids.on_new_cid(&ncid)?,
            Frame::RetireConnectionId { sequence } => {
                let limit = self.peer_cid_limit();
                self.cids
                    .on_retire(sequence, &mut self.rng, limit, dcid, &self.reset_key)?;
                self.flush_cid_events();
            }
            // RFC 9000 §8.2.2: the response goes back on the path the challenge came from
            Frame::PathChallenge(data) => {
                if !self.on_preferred_challenge(dcid, data) {
                    self.path.pending_response = Some((data, self.rx_remote));
                }
            }
            Frame::PathResponse(data) => {
                if !self.on_preferred_response(now, data) {
                    self.on_path_response(now, data);
                }
            }
            Frame::HandshakeDone => {
                // RFC 9000 §19.20: only servers send HANDSHAKE_DONE
                if self.side.is_server() {
                    return Err(TransportError::PROTOCOL_VIOLATION(
                        "HANDSHAKE_DONE from client",
                    ));
                }
                if !self.handshake_confirmed {
                    self.on_handshake_confirmed();
                }
            }
        }
        Ok(())
    }

    /// Feed contiguous CRYPTO data to TLS, collect its output and react to progress
    pub(super) fn drive_tls(&mut self, now: Instant) -> Result<(), TransportError> {
        for space_id in SpaceId::ALL {
            let mut buf = std::mem::take(&mut self.crypto_buf);
            buf.clear();
            self.space_mut(space_id).crypto_rx.read(&mut buf);
            let result = if buf.is_empty() {
                Ok(false)
            } else {
                self.tls.read_handshake_at(space_id, &buf)
            };
            let got_data = !buf.is_empty();
            self.crypto_buf = buf;
            result?;
            if got_data && self.is_external_tls() {
                self.events.push_back(Event::ExternalHandshakeData);
            }
            // New keys may be needed for the next coalesced packet, so collect them now
            self.drive_tls_write();
            // A 0-RTT packet may follow the ClientHello in the same datagram
            self.poll_server_zero_rtt();
        }
        // A resuming client's TLS reports the parameters remembered with the ticket until the
        // server's EncryptedExtensions arrive: only trust them once the handshake is done
        if self.side.is_server() || !self.tls.is_handshaking() {
            self.handle_peer_params()?;
        }
        if self.state == State::Handshake && !self.tls.is_handshaking() {
            if self.peer_params.is_none() {
                return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                    "transport parameters missing",
                ));
            }
            self.on_zero_rtt_outcome()?;
            self.on_handshake_complete(now);
        }
        Ok(())
    }

    /// Move TLS output into the CRYPTO streams and install new keys as levels advance
    pub(super) fn drive_tls_write(&mut self) {
        self.drive_leveled_output();
        loop {
            let mut buf = std::mem::take(&mut self.crypto_buf);
            buf.clear();
            let keys = self.tls.write_handshake(&mut buf);
            if !buf.is_empty() {
                let space = self.crypto_write_space;
                self.space_mut(space).crypto_tx.write(&buf);
            }
            let wrote = !buf.is_empty();
            self.crypto_buf = buf;
            match keys {
                Some(keys) => {
                    // Levels advance Initial → Handshake → 1-RTT, one step per key change
                    let next = match self.crypto_write_space {
                        SpaceId::Initial => SpaceId::Handshake,
                        _ => SpaceId::Data,
                    };
                    self.crypto_write_space = next;
                    self.space_mut(next).keys = Some(keys);
                    if next == SpaceId::Data {
                        self.on_1rtt_keys();
                    }
                }
                None if !wrote => break,
                None => {}
            }
        }
    }

    fn on_handshake_complete(&mut self, now: Instant) {
        self.state = State::Established;
        self.handshake_completed = true;
        self.events.push_back(Event::Connected);
        tracing::debug!(side = ?self.side, "handshake complete");
        if self.side.is_server() {
            // RFC 9001 §4.1.2: the server's handshake is confirmed on completion
            self.handshake_done_pending = true;
            self.on_handshake_confirmed();
        }
        let limit = self.peer_cid_limit();
        self.cids.issue(&mut self.rng, limit, &self.reset_key);
        self.flush_cid_events();
        self.reset_keep_alive(now);
        if self.side.is_server() {
            // RFC 9000 §8.1.3: a token the client can use to skip address validation next time
            self.endpoint_events.push_back(EndpointEvent::IssueToken);
        }
    }

    /// RFC 9001 §4.9.2: Handshake keys are discarded once the handshake is confirmed
    pub(super) fn on_handshake_confirmed(&mut self) {
        self.handshake_confirmed = true;
        self.events.push_back(Event::HandshakeConfirmed);
        self.on_confirmed_preferred();
        self.discard_space(SpaceId::Initial);
        self.discard_space(SpaceId::Handshake);
    }

    /// Tell the endpoint which CIDs to add or remove from its routing table
    fn flush_cid_events(&mut self) {
        while let Some(cid) = self.cids.endpoint_new.pop_front() {
            self.endpoint_events.push_back(EndpointEvent::NewCid(cid));
        }
        while let Some(cid) = self.cids.endpoint_retired.pop_front() {
            self.endpoint_events
                .push_back(EndpointEvent::RetireCid(cid));
        }
    }

    /// Version Negotiation (RFC 9000 §6.2): only before any other server packet, and only if
    /// it does not list our version; we start over with our most preferred version it lists
    fn on_version_negotiation(&mut self, hdr: &ProtectedHeader, packet: &[u8]) {
        if self.side.is_server() || self.peer_cid_set || self.state != State::Handshake {
            return;
        }
        // RFC 9368 §4: ignore a VN listing the version we tried, and any VN answering an
        // attempt that already followed one
        if self.vn_original.is_some() || hdr.supported_versions(packet).any(|v| v == self.version) {
            return;
        }
        let next = self
            .endpoint_config
            .supported_versions
            .iter()
            .copied()
            .find(|v| {
                crypto::is_supported_version(*v) && hdr.supported_versions(packet).any(|o| o == *v)
            });
        if let Some(version) = next {
            tracing::debug!(
                from = self.version,
                to = version,
                "version negotiation: falling back"
            );
            self.endpoint_events
                .push_back(EndpointEvent::Restart(version));
            return;
        }
        self.error = Some(ConnectionError::VersionMismatch);
        self.events.push_back(Event::ConnectionLost {
            reason: ConnectionError::VersionMismatch,
        });
        self.set_drained();
    }

    /// Retry (RFC 9000 §17.2.5.2): start over with the server's new CID and token
    fn on_retry(&mut self, hdr: &ProtectedHeader, packet: &[u8]) {
        // Only the first Retry, and only before any server Initial was processed
        if self.side.is_server()
            || self.peer_cid_set
            || self.retry_src_cid.is_some()
            || self.state != State::Handshake
            || hdr.version != Some(self.version)
        {
            return;
        }
        let token = packet.get(hdr.token.clone()).unwrap_or_default();
        // RFC 9001 §5.8: the integrity tag proves the Retry answers our Initial
        if token.is_empty() || !crypto::is_valid_retry(self.version, &self.orig_dst_cid, packet) {
            self.stats.packets_dropped += 1;
            return;
        }
        let Ok(keys) = crypto::initial_keys(self.version, &hdr.scid, self.side) else {
            return;
        };
        tracing::debug!(side = ?self.side, "retry");
        self.retry_src_cid = Some(hdr.scid);
        self.retry_token = token.to_vec();
        self.cids.set_initial_peer_cid(hdr.scid);
        let space = self.space_mut(SpaceId::Initial);
        space.keys = Some(keys);
        // Our Initials were received (the Retry proves it) but will never be acknowledged:
        // forget them without calling them lost, and send the ClientHello again
        space.sent = crate::recovery::SentPackets::new();
        space.crypto_tx.acked = Default::default();
        space.crypto_tx.requeue_unacked();
        space.loss_time = None;
        space.time_of_last_ack_eliciting = None;
        // RFC 9000 §17.2.5.3: the server dropped our 0-RTT packets with the Initial; send
        // their data again, to the new CID (packet numbers keep growing)
        self.requeue_zero_rtt();
    }

    /// A packet that failed to decrypt may be a stateless reset (RFC 9000 §10.3.1): its last
    /// 16 bytes are a reset token the peer gave us
    fn check_stateless_reset(&mut self, token: &[u8; 16]) {
        self.handle_stateless_reset(token);
    }

    /// The endpoint found an unroutable datagram from our peer ending in `token`; true if it
    /// was a stateless reset for this connection (which then drains)
    pub(crate) fn handle_stateless_reset(&mut self, token: &[u8; 16]) -> bool {
        if self.state == State::Drained || !self.cids.is_stateless_reset(token) {
            return false;
        }
        self.on_stateless_reset();
        true
    }
}
