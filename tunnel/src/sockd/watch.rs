//! Socket events that come from connection state rather than from reads: KEY_UPDATE,
//! CONNECTION_ID, STREAM_MAX_STREAM, STREAM_MAX_DATA, CONNECTION_MIGRATION and STREAM_UPDATE
//! RECV_SIZE_KNOWN
//!
//! The watcher keeps what it last reported and compares it with the core connection after
//! every wake-up: a change the application did not cause itself becomes one event, in the
//! kernel's format. Comparing state (not counting frames) means a watcher that falls behind
//! reports the newest values, never a backlog.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use quic_stack::connection::Connection as Core;
use quic_stack::sockapi::events::{recv_size_known, Event};
use quic_stack::sockapi::types::{ConnectionIdInfo, StreamMaxData};
use quic_stack::{Dir, StreamId};

/// What the application was last told (or caused)
#[derive(Debug, Default)]
pub(super) struct Watch {
    server: bool,
    phase: bool,
    /// Lowest live sequence number: [source, dest]
    cid_lo: [u64; 2],
    /// The peer's MAX_STREAMS: [bidi, uni]
    max_streams: [u64; 2],
    /// The peer's MAX_STREAM_DATA per stream we send on
    stream_max: HashMap<u64, u64>,
    /// Client: active migrations so far; server: the peer address
    migrations: u64,
    remote: Option<SocketAddr>,
    /// Receive streams whose RECV_SIZE_KNOWN was reported
    size_known: BTreeSet<u64>,
}

impl Watch {
    /// Start from the connection's state right after the handshake: nothing to report yet
    pub(super) fn new(c: &Core, server: bool) -> Self {
        Self {
            server,
            phase: c.key_phase(),
            cid_lo: [
                c.connection_id_numbers(false).1,
                c.connection_id_numbers(true).1,
            ],
            max_streams: [c.peer_max_streams(Dir::Bi), c.peer_max_streams(Dir::Uni)],
            stream_max: HashMap::new(),
            migrations: c.stats().migrations,
            remote: Some(c.remote_address()),
            size_known: BTreeSet::new(),
        }
    }

    /// STREAM_UPDATE RECV_SIZE_KNOWN, once per stream, for the `reading` streams whose FIN
    /// arrived ahead of some of their data
    pub(super) fn size_known(&mut self, c: &Core, reading: &BTreeSet<u64>) -> Vec<Event> {
        self.size_known.retain(|id| reading.contains(id));
        let mut ev = Vec::new();
        for &id in reading {
            if self.size_known.contains(&id) {
                continue;
            }
            if let Some(e) = recv_size_known(c, id) {
                self.size_known.insert(id);
                ev.push(e);
            }
        }
        ev
    }

    /// The application retired CIDs itself: that is no news to it
    pub(super) fn cids_changed_locally(&mut self, c: &Core) {
        self.cid_lo = [
            c.connection_id_numbers(false).1,
            c.connection_id_numbers(true).1,
        ];
    }

    /// Events for what changed since the last call; `streams` are the ids we send on
    pub(super) fn diff(&mut self, c: &Core, streams: &BTreeSet<u64>) -> Vec<Event> {
        let mut ev = Vec::new();
        let phase = c.key_phase();
        if phase != self.phase {
            self.phase = phase;
            ev.push(Event::KeyUpdate(u8::from(phase)));
        }
        for (i, dest) in [(0, false), (1, true)] {
            let (active, lo) = c.connection_id_numbers(dest);
            if lo > self.cid_lo[i] {
                self.cid_lo[i] = lo;
                ev.push(Event::ConnectionId(ConnectionIdInfo {
                    dest: u8::from(dest),
                    active: u32::try_from(active).unwrap_or(u32::MAX),
                    prior_to: u32::try_from(lo).unwrap_or(u32::MAX),
                }));
            }
        }
        for (i, dir) in [(0, Dir::Bi), (1, Dir::Uni)] {
            let max = c.peer_max_streams(dir);
            if max > self.max_streams[i] {
                self.max_streams[i] = max;
                ev.push(Event::MaxStream(highest_stream_id(max, dir, self.server)));
            }
        }
        self.stream_max.retain(|id, _| streams.contains(id));
        for &id in streams {
            let Some(max) = c.stream_send_max_data(StreamId(id)) else {
                self.stream_max.remove(&id);
                continue;
            };
            // The first look at a stream is its initial limit, not a raise.
            match self.stream_max.insert(id, max) {
                Some(old) if max > old => ev.push(Event::StreamMaxData(StreamMaxData {
                    id: id as i64,
                    max_data: max,
                })),
                _ => {}
            }
        }
        if self.server {
            // The peer moved once its new address is validated (RFC 9000 §9.3).
            let remote = c.remote_address();
            if Some(remote) != self.remote && c.path_validated() {
                self.remote = Some(remote);
                ev.push(Event::Migration(false));
            }
        } else {
            let m = c.stats().migrations;
            if m > self.migrations && c.path_validated() {
                self.migrations = m;
                ev.push(Event::Migration(true));
            }
        }
        ev
    }
}

/// QUIC_EVENT_STREAM_MAX_STREAM's value: the highest stream id of ours now openable
fn highest_stream_id(max_streams: u64, dir: Dir, server: bool) -> u64 {
    let ty = u64::from(server) | if dir == Dir::Uni { 2 } else { 0 };
    (max_streams.saturating_sub(1) << 2) | ty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_stream_ids_carry_the_type_bits() {
        assert_eq!(highest_stream_id(101, Dir::Bi, false), 400);
        assert_eq!(highest_stream_id(101, Dir::Uni, false), 402);
        assert_eq!(highest_stream_id(3, Dir::Bi, true), 9);
        assert_eq!(highest_stream_id(3, Dir::Uni, true), 11);
    }
}
