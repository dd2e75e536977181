//! Opt-in Prometheus metrics: text exposition format over a minimal HTTP/1.x responder
//!
//! No framework: the endpoint answers `GET /metrics` and nothing else, reads at most one small
//! request head per connection and closes. It is meant to bind to loopback (the default
//! `127.0.0.1:9184`); put a real proxy in front if it must be reachable from elsewhere.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::control::{PeerState, Status};
use crate::router::DropReason;

/// Produces the current status for each scrape
pub type StatusFn = Arc<dyn Fn() -> Status + Send + Sync>;

/// Largest request head read before answering
const MAX_HEAD: usize = 8 * 1024;

/// Escape a label value (Prometheus text format: backslash, quote, newline)
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Render `status` in the Prometheus text exposition format (version 0.0.4)
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let iface = label(&status.interface);

    family(
        &mut out,
        "quictun_up_seconds",
        "gauge",
        "Seconds since the daemon started",
    );
    let _ = writeln!(
        out,
        "quictun_up_seconds{{interface=\"{iface}\"}} {}",
        status.uptime_secs
    );
    family(&mut out, "quictun_mtu_bytes", "gauge", "Current tunnel MTU");
    let _ = writeln!(
        out,
        "quictun_mtu_bytes{{interface=\"{iface}\"}} {}",
        status.mtu
    );

    type Field = fn(&crate::control::PeerStatus) -> Option<f64>;
    let per_peer: [(&str, &str, &str, Field); 11] = [
        (
            "quictun_peer_tx_bytes_total",
            "counter",
            "Inner bytes sent to the peer",
            |p| Some(p.tx_bytes as f64),
        ),
        (
            "quictun_peer_rx_bytes_total",
            "counter",
            "Inner bytes received from the peer",
            |p| Some(p.rx_bytes as f64),
        ),
        (
            "quictun_peer_tx_packets_total",
            "counter",
            "Inner packets sent to the peer",
            |p| Some(p.tx_packets as f64),
        ),
        (
            "quictun_peer_rx_packets_total",
            "counter",
            "Inner packets received from the peer",
            |p| Some(p.rx_packets as f64),
        ),
        (
            "quictun_peer_rtt_seconds",
            "gauge",
            "Smoothed round-trip time",
            |p| p.rtt_ms.map(|r| r / 1000.0),
        ),
        (
            "quictun_peer_cwnd_bytes",
            "gauge",
            "Congestion window",
            |p| p.cwnd.map(|c| c as f64),
        ),
        (
            "quictun_peer_max_datagram_bytes",
            "gauge",
            "Current max datagram payload",
            |p| p.max_datagram.map(|c| c as f64),
        ),
        (
            "quictun_peer_migrations_total",
            "counter",
            "Path changes of the current connection (local moves or the peer's new addresses)",
            |p| Some(p.migrations as f64),
        ),
        (
            "quictun_peer_path_validations_total",
            "counter",
            "Path validations of the current connection that succeeded",
            |p| Some(p.path_validations_ok as f64),
        ),
        (
            "quictun_peer_path_validation_failures_total",
            "counter",
            "Path validations of the current connection that failed (path abandoned)",
            |p| Some(p.path_validations_failed as f64),
        ),
        (
            "quictun_peer_connected",
            "gauge",
            "1 when the peer's connection is established",
            |p| {
                Some(if p.state == PeerState::Connected {
                    1.0
                } else {
                    0.0
                })
            },
        ),
    ];
    for (name, kind, help, get) in per_peer {
        family(&mut out, name, kind, help);
        for p in &status.peers {
            if let Some(v) = get(p) {
                let _ = writeln!(
                    out,
                    "{name}{{interface=\"{iface}\",peer=\"{}\"}} {v}",
                    label(&p.name)
                );
            }
        }
    }

    family(
        &mut out,
        "quictun_peer_dropped_packets_total",
        "counter",
        "Packets of a peer dropped, by reason",
    );
    for p in &status.peers {
        for r in DropReason::ALL {
            let _ = writeln!(
                out,
                "quictun_peer_dropped_packets_total{{interface=\"{iface}\",peer=\"{}\",reason=\"{}\"}} {}",
                label(&p.name),
                r.as_str(),
                p.drops.get(r)
            );
        }
    }
    family(
        &mut out,
        "quictun_dropped_packets_total",
        "counter",
        "All dropped packets, by reason",
    );
    for r in DropReason::ALL {
        let _ = writeln!(
            out,
            "quictun_dropped_packets_total{{interface=\"{iface}\",reason=\"{}\"}} {}",
            r.as_str(),
            status.drops.get(r)
        );
    }
    family(
        &mut out,
        "quictun_packet_too_big_sent_total",
        "counter",
        "ICMP Packet Too Big replies written to the TUN",
    );
    let _ = writeln!(
        out,
        "quictun_packet_too_big_sent_total{{interface=\"{iface}\"}} {}",
        status.ptb_sent
    );
    family(
        &mut out,
        "quictun_packet_too_big_rate_limited_total",
        "counter",
        "Packet Too Big replies suppressed by the rate limit",
    );
    let _ = writeln!(
        out,
        "quictun_packet_too_big_rate_limited_total{{interface=\"{iface}\"}} {}",
        status.ptb_rate_limited
    );
    out
}

/// Serve scrapes on `listener` until the task is dropped
pub async fn serve(listener: TcpListener, status: StatusFn) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let status = status.clone();
        tokio::spawn(async move {
            // A stuck client must not hold a task forever
            let r = tokio::time::timeout(Duration::from_secs(10), answer(stream, status)).await;
            if let Ok(Err(e)) = r {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, status: StatusFn) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            break;
        }
    }
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (code, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(&status()),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::tests::sample_status;

    #[test]
    fn renders_families() {
        let text = render(&sample_status());
        assert!(
            text.contains("quictun_peer_tx_bytes_total{interface=\"qt0\",peer=\"laptop\"} 123456"),
            "{text}"
        );
        assert!(
            text.contains("quictun_peer_rtt_seconds{interface=\"qt0\",peer=\"laptop\"} 0.0015"),
            "{text}"
        );
        assert!(text.contains(
            "quictun_peer_dropped_packets_total{interface=\"qt0\",peer=\"laptop\",reason=\"spoofed_source\"} 3"
        ));
        assert!(
            text.contains("quictun_dropped_packets_total{interface=\"qt0\",reason=\"no_route\"} 1")
        );
        assert!(text.contains("quictun_peer_connected{interface=\"qt0\",peer=\"laptop\"} 1"));
        // every sample line belongs to a declared family
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
        assert_eq!(label("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    async fn get(addr: std::net::SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn scrape_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, Arc::new(sample_status)));
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("quictun_peer_rx_packets_total{interface=\"qt0\",peer=\"laptop\"} 7"));
        let nf = get(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        task.abort();
    }
}
