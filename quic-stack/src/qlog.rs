//! qlog event tracing (draft-ietf-quic-qlog-main-schema, JSON-SEQ serialization)
//!
//! The core never performs I/O: a connection with a sink installed
//! ([`crate::Connection::set_qlog`]) hands each [`QlogEvent`] to the [`QlogSink`], stamped
//! with the time since the trace started. Serialization to a JSON text sequence (RFC 7464:
//! each record is RS, a JSON text and LF) is done by [`QlogWriter`] over any `io::Write`; the
//! tokio driver writes one file per connection into [`crate::EndpointConfig::qlog_dir`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::shared::{ConnectionId, Side};

/// Receives the qlog events of one connection
pub trait QlogSink: Send {
    /// One event, `time` after the start of the trace
    fn emit(&mut self, time: Duration, event: &QlogEvent);
}

/// Packet kinds as qlog names them
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub enum QlogPacketType {
    /// Initial
    Initial,
    /// 0-RTT
    ZeroRtt,
    /// Handshake
    Handshake,
    /// 1-RTT
    OneRtt,
}

impl QlogPacketType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::ZeroRtt => "0RTT",
            Self::Handshake => "handshake",
            Self::OneRtt => "1RTT",
        }
    }
}

/// The events we trace
#[derive(Debug, Clone, Eq, PartialEq)]
#[non_exhaustive]
pub enum QlogEvent {
    /// A packet was sent (transport:packet_sent)
    PacketSent {
        /// Its kind
        packet_type: QlogPacketType,
        /// Its packet number
        packet_number: u64,
        /// Its size on the wire in bytes
        size: usize,
    },
    /// A packet was received and decrypted (transport:packet_received)
    PacketReceived {
        /// Its kind
        packet_type: QlogPacketType,
        /// Its packet number
        packet_number: u64,
        /// Its size on the wire in bytes
        size: usize,
    },
    /// A packet was declared lost (recovery:packet_lost)
    PacketLost {
        /// Its kind
        packet_type: QlogPacketType,
        /// Its packet number
        packet_number: u64,
    },
    /// Recovery state after an ACK (recovery:metrics_updated)
    MetricsUpdated {
        /// Congestion window in bytes
        cwnd: u64,
        /// Bytes in flight
        bytes_in_flight: u64,
        /// Smoothed RTT
        smoothed_rtt: Duration,
    },
    /// The peer address we send to changed (connectivity:path_updated)
    PathUpdated {
        /// New peer address
        remote: SocketAddr,
    },
    /// A path validation finished (connectivity:path_validation, our own name)
    PathValidation {
        /// Peer address of the path
        remote: SocketAddr,
        /// Whether it succeeded
        success: bool,
    },
    /// The connection closed (connectivity:connection_closed)
    ConnectionClosed {
        /// Human-readable reason
        reason: String,
    },
}

/// Serializes qlog events as JSON-SEQ into a writer
pub struct QlogWriter<W: std::io::Write + Send> {
    out: W,
    failed: bool,
}

impl<W: std::io::Write + Send> QlogWriter<W> {
    /// Start a trace: writes the qlog header record
    pub fn new(mut out: W, side: Side, odcid: ConnectionId, title: &str) -> Self {
        let vp = if side.is_client() { "client" } else { "server" };
        let header = format!(
            "\u{1e}{{\"qlog_version\":\"0.3\",\"qlog_format\":\"JSON-SEQ\",\"title\":\"{}\",\
             \"trace\":{{\"vantage_point\":{{\"type\":\"{vp}\"}},\"common_fields\":\
             {{\"ODCID\":\"{odcid}\",\"time_format\":\"relative\",\"reference_time\":0}}}}}}\n",
            escape(title)
        );
        let failed = out.write_all(header.as_bytes()).is_err();
        Self { out, failed }
    }
}

impl<W: std::io::Write + Send> QlogSink for QlogWriter<W> {
    fn emit(&mut self, time: Duration, event: &QlogEvent) {
        if self.failed {
            return;
        }
        let record = format_event(time, event);
        // A full disk must not hurt the connection: stop tracing instead
        self.failed = self.out.write_all(record.as_bytes()).is_err();
    }
}

/// One JSON-SEQ record for `event`
pub fn format_event(time: Duration, event: &QlogEvent) -> String {
    let ms = time.as_secs_f64() * 1000.0;
    let (name, data) = match event {
        QlogEvent::PacketSent {
            packet_type,
            packet_number,
            size,
        } => (
            "transport:packet_sent",
            format!(
                "{{\"header\":{{\"packet_type\":\"{}\",\"packet_number\":{packet_number}}},\
                 \"raw\":{{\"length\":{size}}}}}",
                packet_type.as_str()
            ),
        ),
        QlogEvent::PacketReceived {
            packet_type,
            packet_number,
            size,
        } => (
            "transport:packet_received",
            format!(
                "{{\"header\":{{\"packet_type\":\"{}\",\"packet_number\":{packet_number}}},\
                 \"raw\":{{\"length\":{size}}}}}",
                packet_type.as_str()
            ),
        ),
        QlogEvent::PacketLost {
            packet_type,
            packet_number,
        } => (
            "recovery:packet_lost",
            format!(
                "{{\"header\":{{\"packet_type\":\"{}\",\"packet_number\":{packet_number}}}}}",
                packet_type.as_str()
            ),
        ),
        QlogEvent::MetricsUpdated {
            cwnd,
            bytes_in_flight,
            smoothed_rtt,
        } => (
            "recovery:metrics_updated",
            format!(
                "{{\"congestion_window\":{cwnd},\"bytes_in_flight\":{bytes_in_flight},\
                 \"smoothed_rtt\":{:.3}}}",
                smoothed_rtt.as_secs_f64() * 1000.0
            ),
        ),
        QlogEvent::PathUpdated { remote } => (
            "connectivity:path_updated",
            format!("{{\"peer\":\"{remote}\"}}"),
        ),
        QlogEvent::PathValidation { remote, success } => (
            "connectivity:path_validation",
            format!("{{\"peer\":\"{remote}\",\"success\":{success}}}"),
        ),
        QlogEvent::ConnectionClosed { reason } => (
            "connectivity:connection_closed",
            format!("{{\"reason\":\"{}\"}}", escape(reason)),
        ),
    };
    format!("\u{1e}{{\"time\":{ms:.3},\"name\":\"{name}\",\"data\":{data}}}\n")
}

/// Escape a string for a JSON string literal
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_seq_records() {
        let mut buf = Vec::new();
        {
            let mut w = QlogWriter::new(&mut buf, Side::Client, ConnectionId::default(), "t\"x");
            w.emit(
                Duration::from_millis(5),
                &QlogEvent::PacketSent {
                    packet_type: QlogPacketType::OneRtt,
                    packet_number: 7,
                    size: 1200,
                },
            );
            w.emit(
                Duration::from_millis(6),
                &QlogEvent::ConnectionClosed {
                    reason: "bye\n".into(),
                },
            );
        }
        let text = String::from_utf8(buf).unwrap();
        let records: Vec<&str> = text.split('\u{1e}').filter(|r| !r.is_empty()).collect();
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.ends_with('\n')));
        assert!(records[0].contains("\"qlog_format\":\"JSON-SEQ\""));
        assert!(records[0].contains("t\\\"x"));
        assert!(records[1].contains("\"name\":\"transport:packet_sent\""));
        assert!(records[1].contains("\"packet_number\":7"));
        assert!(records[2].contains("bye\\u000a"));
    }
}
