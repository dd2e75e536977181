//! 1-RTT key updates (RFC 9001 §6)
//!
//! Header protection keys never change; only the packet keys rotate. We keep the next keys
//! ready, so a packet with the other key phase can be tried at once, and the previous remote
//! key for a while, for packets reordered across the update.

use std::time::Instant;

use super::{Connection, Timer};
use crate::crypto::{KeyPair, PacketKey};
use crate::shared::SpaceId;

/// Which packet key opens a 1-RTT packet
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub(super) enum KeyChoice {
    Current,
    Previous,
    Next,
}

/// Key phase bookkeeping
#[derive(Default)]
pub(super) struct KeyUpdateState {
    /// Key phase bit of our current keys
    pub(super) phase: bool,
    /// Keys for the next phase, derived in advance
    pub(super) next: Option<KeyPair<Box<dyn PacketKey>>>,
    /// The peer's key of the previous phase, until the KeyDiscard timer fires
    prev_remote: Option<Box<dyn PacketKey>>,
    /// First packet number the peer sent in the current phase; `None` right after we initiated
    /// an update the peer has not answered yet
    peer_switched_at: Option<u64>,
    /// First packet number we sent in the current phase
    phase_start_tx: u64,
    /// Packets we sealed with the current keys
    pub(super) sent_in_phase: u64,
    /// A packet sealed with the current keys was acknowledged (RFC 9001 §6.1 precondition)
    acked_in_phase: bool,
    /// Start an update with the next packet (application request)
    pub(super) requested: bool,
}

impl KeyUpdateState {
    /// The key for a 1-RTT packet with key phase `bit` and packet number `pn`
    pub(super) fn choose(&self, bit: bool, pn: u64) -> KeyChoice {
        if bit == self.phase {
            return KeyChoice::Current;
        }
        // RFC 9001 §6.3: an old-phase packet below the switch point (or any old-phase packet
        // while the peer has not answered our update) belongs to the previous keys
        let old = self.peer_switched_at.is_none_or(|s| pn < s);
        if self.prev_remote.is_some() && old {
            KeyChoice::Previous
        } else {
            KeyChoice::Next
        }
    }

    pub(super) fn prev_remote(&self) -> Option<&dyn PacketKey> {
        self.prev_remote.as_deref()
    }

    pub(super) fn next_remote(&self) -> Option<&dyn PacketKey> {
        self.next.as_ref().map(|k| &*k.remote)
    }

    /// We updated and the peer has not answered in the new phase yet (RFC 9001 §6.1: no
    /// further update until it does)
    pub(super) fn awaiting_peer(&self) -> bool {
        self.peer_switched_at.is_none()
    }
}

impl Connection {
    /// Ask for a key update before the next 1-RTT packet (RFC 9001 §6.1)
    ///
    /// Ignored until the handshake is confirmed and a packet of the current phase was
    /// acknowledged; the update happens as soon as both hold.
    pub fn initiate_key_update(&mut self) {
        self.key_update.requested = true;
    }

    /// 1-RTT keys were just installed: derive the next phase's keys
    pub(super) fn on_1rtt_keys(&mut self) {
        self.key_update.next = self.tls.next_1rtt_keys();
        // Acknowledged 0-RTT packets say nothing about the first key phase (RFC 9001 §6.1)
        self.key_update.phase_start_tx = self.spaces[SpaceId::Data as usize].next_pn;
        self.on_client_1rtt_keys();
    }

    /// A 1-RTT packet `pn` was authenticated with `choice`
    pub(super) fn on_1rtt_packet(&mut self, now: Instant, choice: KeyChoice, pn: u64) {
        match choice {
            KeyChoice::Current => {
                if self.key_update.peer_switched_at.is_none() {
                    // The peer answered our update
                    self.key_update.peer_switched_at = Some(pn);
                }
            }
            KeyChoice::Previous => {}
            KeyChoice::Next => {
                // RFC 9001 §6.2: the peer updated; update our sending keys as well
                tracing::debug!(side = ?self.side, "peer initiated key update");
                self.rotate_keys(now);
                self.key_update.peer_switched_at = Some(pn);
            }
        }
    }

    /// Before sealing a 1-RTT packet: start an update if one is due
    pub(super) fn maybe_initiate_key_update(&mut self, now: Instant) {
        let ku = &self.key_update;
        let Some(keys) = self.spaces[SpaceId::Data as usize].keys.as_ref() else {
            return;
        };
        // Leave headroom below the confidentiality limit (RFC 9001 §6.6)
        let limit = keys.packet.local.confidentiality_limit() / 2;
        let due = ku.requested || ku.sent_in_phase >= limit;
        if !due
            || !self.handshake_confirmed
            || !ku.acked_in_phase
            || ku.peer_switched_at.is_none()
            || ku.next.is_none()
        {
            return;
        }
        tracing::debug!(side = ?self.side, "initiating key update");
        self.key_update.requested = false;
        self.rotate_keys(now);
        self.key_update.peer_switched_at = None;
    }

    /// A Data-space packet we sent was acknowledged
    pub(super) fn on_1rtt_acked(&mut self, pn: u64) {
        if pn >= self.key_update.phase_start_tx {
            self.key_update.acked_in_phase = true;
        }
    }

    fn rotate_keys(&mut self, now: Instant) {
        let Some(next) = self.key_update.next.take() else {
            return;
        };
        let Some(keys) = self.spaces[SpaceId::Data as usize].keys.as_mut() else {
            return;
        };
        keys.packet.local = next.local;
        let old_remote = std::mem::replace(&mut keys.packet.remote, next.remote);
        let ku = &mut self.key_update;
        ku.prev_remote = Some(old_remote);
        ku.phase = !ku.phase;
        ku.sent_in_phase = 0;
        ku.acked_in_phase = false;
        ku.phase_start_tx = self.spaces[SpaceId::Data as usize].next_pn;
        self.key_update.next = self.tls.next_1rtt_keys();
        self.stats.key_updates += 1;
        // RFC 9001 §6.5: keep the old key about three PTOs for reordered packets
        let pto = self.pto_for_close();
        self.timers.set(Timer::KeyDiscard, now + 3 * pto);
    }

    /// The previous phase's key has served long enough
    pub(super) fn on_key_discard_timeout(&mut self) {
        self.key_update.prev_remote = None;
    }
}
