//! Packets that arrive before the keys that open them
//!
//! RFC 9001 §5.7 lets an endpoint keep such packets and process them once the keys exist.
//! Reordering alone makes this worthwhile during the handshake, and with external TLS it is
//! the normal case: the application installs the client's 1-RTT (and 0-RTT) read secrets only
//! after it has read the client's handshake bytes from the socket, while the client sends
//! 1-RTT data right behind its Finished. Dropping those packets costs a retransmission for
//! stream data and loses datagrams outright.

use std::time::Instant;

use super::recv::{kind, PacketKind};
use super::{Connection, State};
use crate::packet;
use crate::shared::{RecvMeta, SpaceId};

/// At most this many packets wait; a peer's flight is about ten packets
const MAX_PACKETS: usize = 32;
/// And at most this many bytes, so a peer cannot make a connection hold much memory
const MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(super) struct EarlyPackets {
    packets: Vec<(RecvMeta, Vec<u8>)>,
    bytes: usize,
}

impl Connection {
    /// True when `pkind` cannot be opened yet but may become readable later in the handshake
    pub(super) fn keys_still_to_come(&self, pkind: PacketKind) -> bool {
        if self.state != State::Handshake {
            return false;
        }
        let missing = |s: SpaceId| {
            let space = &self.spaces[s as usize];
            space.keys.is_none() && !space.discarded
        };
        match pkind {
            PacketKind::Handshake => missing(SpaceId::Handshake),
            PacketKind::Short => missing(SpaceId::Data),
            // Only an external TLS server learns its 0-RTT keys after the packets can arrive;
            // a built-in server has them from the ClientHello or never
            PacketKind::ZeroRtt => {
                self.is_external_tls()
                    && self.zero_rtt.header_key().is_none()
                    && self.awaiting_early_keys()
            }
            _ => false,
        }
    }

    /// Keep a copy of a packet to process once its keys are installed; beyond the limits it is
    /// dropped as it would have been without the buffer
    pub(super) fn buffer_early_packet(&mut self, meta: RecvMeta, packet: &[u8]) {
        if self.early_packets.packets.len() >= MAX_PACKETS
            || self.early_packets.bytes + packet.len() > MAX_BYTES
        {
            self.stats.packets_dropped += 1;
            return;
        }
        self.early_packets.bytes += packet.len();
        self.early_packets.packets.push((meta, packet.to_vec()));
    }

    /// Process the buffered packets whose keys have arrived since; the rest keep waiting while
    /// the handshake may still bring their keys
    pub(super) fn replay_early_packets(&mut self, now: Instant) {
        if self.early_packets.packets.is_empty() {
            return;
        }
        let cid_len = self.endpoint_config.local_cid_len;
        let waiting = std::mem::take(&mut self.early_packets);
        // The packets are handled as if they arrived now, from where they came from then
        let (remote, local_ip) = (self.rx_remote, self.rx_local_ip);
        for (meta, mut bytes) in waiting.packets {
            let Ok(hdr) = packet::parse_header(&bytes, cid_len) else {
                continue;
            };
            let pkind = kind(&hdr);
            if self.keys_still_to_come(pkind) {
                self.early_packets.bytes += bytes.len();
                self.early_packets.packets.push((meta, bytes));
                continue;
            }
            if !matches!(self.state, State::Handshake | State::Established) {
                break;
            }
            self.rx_remote = meta.remote;
            self.rx_local_ip = meta.local_ip;
            self.handle_packet(now, &meta, &hdr, &mut bytes);
        }
        self.rx_remote = remote;
        self.rx_local_ip = local_ip;
    }
}
