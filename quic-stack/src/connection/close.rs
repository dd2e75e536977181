//! Closing and draining (RFC 9000 §10.2)

use std::time::Instant;

use bytes::Bytes;

use super::{Connection, ConnectionError, Event, State, Timer};
use crate::error::{TransportError, TransportErrorCode};
use crate::frame::{self, Frame};
use crate::shared::SpaceId;

/// Why we are closing, as carried by our CONNECTION_CLOSE
#[derive(Debug, Clone)]
pub(crate) enum CloseReason {
    Transport(TransportError),
    Application { code: u64, reason: Bytes },
}

/// Our side of closing: the frame to repeat and its rate limit
#[derive(Debug, Default)]
pub(crate) struct CloseState {
    pub(crate) reason: Option<CloseReason>,
    /// A CONNECTION_CLOSE should go out with the next transmit
    pub(crate) pending: bool,
    /// Packets received since we entered the closing state
    rx_count: u64,
    /// Answer again when `rx_count` reaches this (1, 2, 4, ...): an attacker or a confused peer
    /// gets exponentially fewer replies (RFC 9000 §10.2.1 asks for a rate limit)
    next_reply: u64,
}

impl Connection {
    /// The application (or the endpoint) closes the connection
    pub(super) fn close_local(&mut self, now: Instant, reason: CloseReason) {
        if !self.is_usable() {
            return;
        }
        if self.error.is_none() {
            self.error = Some(ConnectionError::LocallyClosed);
        }
        self.qlog(now, || crate::qlog::QlogEvent::ConnectionClosed {
            reason: "closed locally".into(),
        });
        self.enter_closing(now, reason);
    }

    /// A protocol violation: tell the peer and the application
    pub(super) fn close_with_error(&mut self, now: Instant, err: TransportError) {
        if !self.is_usable() {
            return;
        }
        tracing::debug!(side = ?self.side, error = %err, "closing on transport error");
        let reason = ConnectionError::TransportError(err.clone());
        self.qlog(now, || crate::qlog::QlogEvent::ConnectionClosed {
            reason: err.to_string(),
        });
        self.error = Some(reason.clone());
        self.events.push_back(Event::ConnectionLost { reason });
        self.enter_closing(now, CloseReason::Transport(err));
    }

    fn enter_closing(&mut self, now: Instant, reason: CloseReason) {
        self.state = State::Closing;
        self.close = CloseState {
            reason: Some(reason),
            pending: true,
            rx_count: 0,
            next_reply: 1,
        };
        self.stop_timers_for_close(now);
    }

    /// The peer sent CONNECTION_CLOSE: drain without sending (RFC 9000 §10.2.2)
    pub(super) fn on_peer_close(&mut self, now: Instant, close: &frame::Close<'_>) {
        let reason = if close.application {
            ConnectionError::ApplicationClosed {
                error_code: close.error_code,
                reason: Bytes::copy_from_slice(close.reason),
            }
        } else {
            ConnectionError::ConnectionClosed {
                error_code: close.error_code,
                frame_type: close.frame_type,
                reason: String::from_utf8_lossy(close.reason).into_owned(),
            }
        };
        if self.is_usable() {
            self.error = Some(reason.clone());
            self.events.push_back(Event::ConnectionLost { reason });
        }
        if self.state != State::Draining && self.state != State::Drained {
            self.state = State::Draining;
            self.close.pending = false;
            self.stop_timers_for_close(now);
        }
    }

    /// The peer sent a stateless reset (RFC 9000 §10.3): drain at once
    pub(super) fn on_stateless_reset(&mut self) {
        if self.is_usable() {
            self.error = Some(ConnectionError::Reset);
            self.events.push_back(Event::ConnectionLost {
                reason: ConnectionError::Reset,
            });
        }
        self.set_drained();
    }

    fn stop_timers_for_close(&mut self, now: Instant) {
        self.timers.stop_all();
        // RFC 9000 §10.2: the closing and draining states last at least three PTOs
        self.timers
            .set(Timer::Close, now + 3 * self.pto_for_close());
    }

    /// A packet arrived while closing: maybe repeat our CONNECTION_CLOSE
    pub(super) fn on_packet_while_closing(&mut self) {
        if self.state != State::Closing {
            return;
        }
        self.close.rx_count += 1;
        if self.close.rx_count >= self.close.next_reply {
            self.close.next_reply = self.close.next_reply.saturating_mul(2);
            self.close.pending = true;
        }
    }

    /// Append our CONNECTION_CLOSE for `space` to `buf`, at most `max_len` bytes
    pub(super) fn write_close_frame(&self, buf: &mut Vec<u8>, space: SpaceId, max_len: usize) {
        let Some(reason) = &self.close.reason else {
            return;
        };
        let mut frame = match reason {
            CloseReason::Transport(e) => frame::Close {
                application: false,
                error_code: e.code.0,
                frame_type: e.frame_type.unwrap_or(0),
                reason: e.reason.as_bytes(),
            },
            // RFC 9000 §10.2.3: an application close in Initial or Handshake packets becomes a
            // transport APPLICATION_ERROR without the reason, which could leak before the
            // handshake authenticated the peer
            CloseReason::Application { .. } if space != SpaceId::Data => frame::Close {
                application: false,
                error_code: TransportErrorCode::APPLICATION_ERROR.0,
                frame_type: 0,
                reason: &[],
            },
            CloseReason::Application { code, reason } => frame::Close {
                application: true,
                error_code: *code,
                frame_type: 0,
                reason,
            },
        };
        // Truncate the reason rather than not closing at all.
        let overhead = Frame::Close(frame::Close {
            reason: &[],
            ..frame.clone()
        })
        .encoded_len()
            + 2;
        let room = max_len.saturating_sub(overhead);
        if frame.reason.len() > room {
            frame.reason = &frame.reason[..room];
        }
        if overhead <= max_len {
            Frame::Close(frame).encode(buf);
        }
    }
}
