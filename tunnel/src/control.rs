//! Local control socket: a Unix stream socket speaking one JSON object per line
//!
//! Requests: `{"cmd":"status"}` and `{"cmd":"migrate","to":"198.18.1.2"}`. Each request line gets
//! one response line: `{"ok":true,"status":{...}}`, `{"ok":true,"message":"..."}` or
//! `{"ok":false,"error":"..."}`. The socket lives at `/run/quictun/<iface>.sock` by default and is
//! created mode 0660, so only root (and the socket's group) can steer the daemon.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::config::io_reason;
use crate::router::{DropCounters, DropReason, PeerCounters};

/// Longest request line accepted; status requests are tiny
const MAX_LINE: usize = 64 * 1024;

/// Default control socket path for interface `iface`
pub fn default_socket_path(iface: &str) -> PathBuf {
    PathBuf::from(format!("/run/quictun/{iface}.sock"))
}

/// A control request
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Request {
    /// Report [`Status`]
    Status,
    /// Move the connection(s) to a new local address
    Migrate {
        /// New local address
        to: IpAddr,
    },
}

/// A control response
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded
    pub ok: bool,
    /// Status, for `status`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Human message for other successful commands
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the request failed
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A status reply
    pub fn status(status: Status) -> Self {
        Self {
            ok: true,
            status: Some(status),
            message: None,
            error: None,
        }
    }
    /// A successful reply with a message
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            status: None,
            message: Some(message.into()),
            error: None,
        }
    }
    /// A failure reply
    pub fn error(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            status: None,
            message: None,
            error: Some(error.into()),
        }
    }
}

/// Connection state of a peer
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Handshake in progress
    Connecting,
    /// Connection established
    Connected,
    /// Connection lost; retrying with backoff (the TUN stays up)
    Reconnecting,
    /// Server side: no connection from this peer yet
    Waiting,
}

impl PeerState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Waiting => "waiting",
        }
    }
}

/// Status of one peer
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Peer name from the configuration
    pub name: String,
    /// Current remote address of the connection (follows migration)
    pub endpoint: Option<String>,
    /// Connection state
    pub state: PeerState,
    /// Inner bytes sent to the peer
    pub tx_bytes: u64,
    /// Inner packets sent to the peer
    pub tx_packets: u64,
    /// Inner bytes received from the peer and delivered
    pub rx_bytes: u64,
    /// Inner packets received from the peer and delivered
    pub rx_packets: u64,
    /// Smoothed RTT in milliseconds
    pub rtt_ms: Option<f64>,
    /// Congestion window in bytes
    pub cwnd: Option<u64>,
    /// Current max datagram payload (what fits without Packet Too Big)
    pub max_datagram: Option<u64>,
    /// Drops by reason
    pub drops: DropCounters,
    /// Path changes of the current connection: our moves to a new local address (client) or
    /// the peer's new addresses (server)
    pub migrations: u64,
    /// Path validations that succeeded (RFC 9000 §8.2)
    #[serde(default)]
    pub path_validations_ok: u64,
    /// Path validations that failed (the path was abandoned)
    #[serde(default)]
    pub path_validations_failed: u64,
    /// Our local UDP address toward this peer (client)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Seconds since the last completed handshake
    pub last_handshake_secs: Option<u64>,
    /// Datagrams lost on the way out, by reason
    #[serde(default)]
    pub datagram_drops: DatagramDrops,
}

/// Outbound datagram drops of one peer, by reason
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagramDrops {
    /// The QUIC send or receive queue overflowed (counted by the current connection)
    pub queue_full: u64,
    /// Larger than the connection's max datagram size
    pub too_large: u64,
    /// No connection to the peer (reconnecting)
    pub not_connected: u64,
    /// The peer does not accept datagrams
    pub unsupported: u64,
    /// Stream carriage write failures
    pub stream_errors: u64,
}

impl DatagramDrops {
    /// Sum over all reasons
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.too_large
            + self.not_connected
            + self.unsupported
            + self.stream_errors
    }
}

impl PeerStatus {
    /// A peer's status with traffic counters from the router; connection fields are left empty
    /// for the daemon to fill in
    pub fn from_counters(name: &str, state: PeerState, c: &PeerCounters) -> Self {
        Self {
            name: name.to_string(),
            endpoint: None,
            state,
            tx_bytes: c.tx_bytes,
            tx_packets: c.tx_packets,
            rx_bytes: c.rx_bytes,
            rx_packets: c.rx_packets,
            rtt_ms: None,
            cwnd: None,
            max_datagram: None,
            drops: c.drops,
            migrations: 0,
            path_validations_ok: 0,
            path_validations_failed: 0,
            local: None,
            last_handshake_secs: None,
            datagram_drops: DatagramDrops::default(),
        }
    }
}

/// Status of the whole tunnel
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Interface name
    pub interface: String,
    /// "server" or "client"
    pub role: String,
    /// Current tunnel MTU
    pub mtu: u64,
    /// Seconds since start
    pub uptime_secs: u64,
    /// Peers in configuration order
    pub peers: Vec<PeerStatus>,
    /// All drops, including those not tied to a peer
    pub drops: DropCounters,
    /// ICMP Packet Too Big replies sent
    pub ptb_sent: u64,
    /// Packet Too Big replies suppressed by the rate limit
    pub ptb_rate_limited: u64,
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Status {
    /// A human-readable table, as `quictun status` prints it
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "interface {} ({}), mtu {}, up {}",
            self.interface,
            self.role,
            self.mtu,
            humantime::format_duration(Duration::from_secs(self.uptime_secs))
        );
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:<24} {:>10} {:>10} {:>8} {:>10} {:>8} {:>6} {:>9} {:>9}",
            "PEER",
            "STATE",
            "ENDPOINT",
            "TX",
            "RX",
            "RTT",
            "CWND",
            "MAXDGRAM",
            "MIGR",
            "PATH OK/X",
            "HANDSHAKE"
        );
        for p in &self.peers {
            let _ = writeln!(
                out,
                "{:<12} {:<14} {:<24} {:>10} {:>10} {:>8} {:>10} {:>8} {:>6} {:>9} {:>9}",
                p.name,
                p.state.as_str(),
                p.endpoint.as_deref().unwrap_or("-"),
                human_bytes(p.tx_bytes),
                human_bytes(p.rx_bytes),
                p.rtt_ms.map_or("-".into(), |r| format!("{r:.1}ms")),
                p.cwnd.map_or("-".into(), human_bytes),
                p.max_datagram.map_or("-".into(), |m| m.to_string()),
                p.migrations,
                format!("{}/{}", p.path_validations_ok, p.path_validations_failed),
                p.last_handshake_secs
                    .map_or("-".into(), |s| format!("{s}s ago")),
            );
        }
        let mut drops: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| self.drops.get(**r) > 0)
            .map(|r| format!("{} {}", r.as_str(), self.drops.get(*r)))
            .collect();
        if self.ptb_sent > 0 || self.ptb_rate_limited > 0 {
            drops.push(format!(
                "packet-too-big sent {} (rate-limited {})",
                self.ptb_sent, self.ptb_rate_limited
            ));
        }
        for p in &self.peers {
            let d = p.datagram_drops;
            if d.total() > 0 {
                drops.push(format!(
                    "{}: datagram queue_full {}, too_large {}, not_connected {}, unsupported {}, stream_errors {}",
                    p.name, d.queue_full, d.too_large, d.not_connected, d.unsupported, d.stream_errors
                ));
            }
        }
        for p in &self.peers {
            if let Some(local) = &p.local {
                let _ = writeln!(out, "{}: local address {local}", p.name);
            }
        }
        if drops.is_empty() {
            out.push_str("drops: none\n");
        } else {
            let _ = writeln!(out, "drops: {}", drops.join(", "));
        }
        out
    }
}

/// Control socket errors; one line each
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Cannot create or bind the socket
    #[error("control: cannot listen on {path:?}: {reason}")]
    Bind {
        /// Socket path
        path: PathBuf,
        /// OS reason
        reason: String,
        /// Permission problem (exit code 3)
        permission: bool,
    },
    /// Another daemon already answers on the socket
    #[error(
        "control: {0:?} is in use by a running quictun (stop it first, or set [control] socket)"
    )]
    InUse(PathBuf),
    /// Cannot reach the daemon
    #[error("control: cannot connect to {path:?}: {reason} (is `quictun up` running for this interface? choose the socket with --socket)")]
    Connect {
        /// Socket path
        path: PathBuf,
        /// OS reason
        reason: String,
        /// Permission problem (exit code 3)
        permission: bool,
    },
    /// The exchange failed or the reply made no sense
    #[error("control: {0}")]
    Protocol(String),
}

impl ControlError {
    /// True for permission problems (the CLI exits with 3 for them)
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            Self::Bind {
                permission: true,
                ..
            } | Self::Connect {
                permission: true,
                ..
            }
        )
    }
}

/// Bind the control socket at `path`, creating its directory and replacing a stale socket file
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let bind_err = |e: std::io::Error| ControlError::Bind {
        path: path.to_path_buf(),
        reason: io_reason(&e),
        permission: e.kind() == std::io::ErrorKind::PermissionDenied,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    if path.exists() {
        // A socket file nobody answers on is left over from a crash: remove it. One that answers
        // belongs to a live daemon and must not be stolen.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    Ok(listener)
}

/// Answers control requests; called on the control task, so it must not block for long (send
/// slow work such as a migration to the daemon over a channel and reply at once)
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// Serve control connections on `listener` until the task is dropped
pub async fn serve(listener: UnixListener, handler: Handler) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Transient accept errors (EMFILE and the like): back off instead of spinning
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(stream, handler).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

async fn serve_conn(stream: UnixStream, handler: Handler) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = tokio::io::BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut rd)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let response = if line.len() > MAX_LINE {
            Response::error(format!("request longer than {MAX_LINE} bytes"))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => handler(req),
                Err(e) => Response::error(format!(
                    "bad request ({e}); send one JSON object per line, like {{\"cmd\":\"status\"}}"
                )),
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        wr.write_all(&out).await?;
        if line.len() > MAX_LINE {
            return Ok(());
        }
    }
}

/// Send one request to the daemon at `path` and wait for the reply (blocking; for the CLI)
pub fn query(path: &Path, request: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| ControlError::Connect {
            path: path.to_path_buf(),
            reason: io_reason(&e),
            permission: e.kind() == std::io::ErrorKind::PermissionDenied,
        })?;
    let proto = |e: std::io::Error| ControlError::Protocol(io_reason(&e));
    stream.set_read_timeout(Some(timeout)).map_err(proto)?;
    stream.set_write_timeout(Some(timeout)).map_err(proto)?;
    let mut line =
        serde_json::to_vec(request).map_err(|e| ControlError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(proto)?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader.read_line(&mut reply).map_err(proto)?;
    if reply.is_empty() {
        return Err(ControlError::Protocol(
            "daemon closed the connection without replying".into(),
        ));
    }
    serde_json::from_str(&reply)
        .map_err(|e| ControlError::Protocol(format!("unreadable reply ({e})")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cert::tests_support::temp_dir;

    pub(crate) fn sample_status() -> Status {
        let mut c = PeerCounters {
            tx_bytes: 123_456,
            tx_packets: 100,
            rx_bytes: 2048,
            rx_packets: 7,
            ..PeerCounters::default()
        };
        c.drops.spoofed_source = 3;
        let mut p = PeerStatus::from_counters("laptop", PeerState::Connected, &c);
        p.endpoint = Some("198.18.0.2:50000".into());
        p.rtt_ms = Some(1.5);
        p.cwnd = Some(120_000);
        p.max_datagram = Some(1350);
        p.migrations = 2;
        p.last_handshake_secs = Some(42);
        Status {
            interface: "qt0".into(),
            role: "server".into(),
            mtu: 1280,
            uptime_secs: 3725,
            peers: vec![p],
            drops: DropCounters {
                spoofed_source: 3,
                no_route: 1,
                ..DropCounters::default()
            },
            ptb_sent: 4,
            ptb_rate_limited: 1,
        }
    }

    #[test]
    fn table_renders() {
        let t = sample_status().render_table();
        assert!(t.contains("laptop"), "{t}");
        assert!(t.contains("120.6 KiB"), "{t}");
        assert!(t.contains("spoofed_source 3"), "{t}");
        assert!(t.contains("1h 2m 5s"), "{t}");
    }

    #[test]
    fn request_json_shapes() {
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).unwrap(),
            Request::Status
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"migrate","to":"198.18.1.2"}"#).unwrap(),
            Request::Migrate {
                to: "198.18.1.2".parse().unwrap()
            }
        );
    }

    #[tokio::test]
    async fn status_over_socket() {
        let dir = temp_dir("control");
        let path = dir.join("sub").join("qt0.sock");
        let listener = bind(&path).unwrap();
        let handler: Handler = Arc::new(|req| match req {
            Request::Status => Response::status(sample_status()),
            Request::Migrate { to } => Response::message(format!("migrating to {to}")),
        });
        let task = tokio::spawn(serve(listener, handler));
        // a second daemon may not steal the socket
        assert!(matches!(bind(&path), Err(ControlError::InUse(_))));
        let p = path.clone();
        let (status, migrate, garbage) = tokio::task::spawn_blocking(move || {
            let s = query(&p, &Request::Status, Duration::from_secs(5)).unwrap();
            let m = query(
                &p,
                &Request::Migrate {
                    to: "198.18.1.2".parse().unwrap(),
                },
                Duration::from_secs(5),
            )
            .unwrap();
            let mut raw = std::os::unix::net::UnixStream::connect(&p).unwrap();
            raw.write_all(b"{\"cmd\":\"reboot\"}\n").unwrap();
            let mut reply = String::new();
            BufReader::new(raw).read_line(&mut reply).unwrap();
            (s, m, reply)
        })
        .await
        .unwrap();
        assert_eq!(status.status, Some(sample_status()));
        assert_eq!(migrate.message.as_deref(), Some("migrating to 198.18.1.2"));
        assert!(garbage.contains("\"ok\":false"), "{garbage}");
        task.abort();
        let _ = task.await;
        // the socket file is left behind; a new bind replaces it as stale
        drop(bind(&path).unwrap());
        let e = query(
            &dir.join("none.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is `quictun up` running"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
