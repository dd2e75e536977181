//! Protocol features against quinn, an independent QUIC implementation, over loopback UDP
//!
//! Every test checks that the feature really happened, not just that data flowed: key phase
//! changes in our counters, Retry and grease bits seen on the wire by a relay between the
//! endpoints, and the ServerHello (decrypted from the Initial packets, whose keys any observer
//! can derive) for the cipher suite and PSK resumption.
//!
//! Covered here: key update initiated by us and by quinn, Retry from either server, resumption
//! in both directions, ChaCha20-only clients both ways, the grease bit both ways, and
//! versions: the v2-first Version Negotiation fallback as seen on the wire, and compatible
//! version negotiation against a peer without v2. ECN counts are checked in `interop_quinn.rs`
//! (`ecn_validated_with_quinn_both_ways`, from both sides' ECN validation). quinn 0.11 does not
//! implement QUIC v2: `quinn_has_no_v2` shows it answers a v2-only client with Version
//! Negotiation.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::quinn_peer::{
    chacha_provider, our_client_crypto, our_endpoint, our_server_crypto, provider,
    quinn_client_crypto, quinn_client_endpoint, quinn_server_crypto, quinn_server_endpoint,
    test_cert, Relay, Seen, TestCert,
};
use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig};
use quic_stack::connection::ConnectionError;
use quic_stack::crypto::{initial_keys, VERSION_1, VERSION_2};
use quic_stack::frame::{Frame, Iter as FrameIter};
use quic_stack::{driver, packet, Side};

/// Bounds every test so a protocol bug fails instead of hanging CI
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const TLS_CHACHA20_POLY1305_SHA256: u16 = 0x1303;
/// TLS extension numbers (RFC 8446 §4.2)
const EXT_PRE_SHARED_KEY: u16 = 41;

fn quinn_server(cert: &TestCert) -> quinn::Endpoint {
    quinn_server_endpoint(quinn_server_crypto(cert), None)
}

fn quinn_client(cert: &TestCert, chacha_only: bool) -> (quinn::Endpoint, quinn::ClientConfig) {
    let provider = if chacha_only {
        chacha_provider()
    } else {
        provider()
    };
    let crypto = quinn_client_crypto(cert, provider);
    let crypto = if chacha_only {
        // Initial packets always use AES-128-GCM (RFC 9001 §5.2), whatever TLS offers
        let initial = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
            .tls13()
            .and_then(|s| s.quic_suite())
            .expect("AES-128-GCM QUIC suite");
        quinn::crypto::rustls::QuicClientConfig::with_initial(Arc::new(crypto), initial)
    } else {
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
    }
    .expect("QUIC-capable");
    quinn_client_endpoint(crypto)
}

fn our_server(cert: &TestCert, retry: bool) -> driver::Endpoint {
    let server = ServerConfig {
        retry,
        ..ServerConfig::new(Arc::new(our_server_crypto(cert, false)))
    };
    our_endpoint(EndpointConfig::default(), Some(server))
}

fn our_client_with(
    cert: &TestCert,
    chacha_only: bool,
    endpoint_config: EndpointConfig,
) -> (driver::Endpoint, ClientConfig) {
    let crypto = if chacha_only {
        // Built like quinn's client TLS so that the offered suites can be restricted
        quinn_client_crypto(cert, chacha_provider())
    } else {
        our_client_crypto(cert)
    };
    let endpoint = our_endpoint(endpoint_config, None);
    (endpoint, ClientConfig::new(Arc::new(crypto)))
}

fn our_client(cert: &TestCert) -> (driver::Endpoint, ClientConfig) {
    our_client_with(cert, false, EndpointConfig::default())
}

async fn with_timeout<F: std::future::Future>(f: F) -> F::Output {
    common::quinn_peer::with_timeout(TEST_TIMEOUT, f).await
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

/// Echo every bidirectional stream of `conn` until it closes
async fn quinn_echo(conn: quinn::Connection) -> quinn::ConnectionError {
    loop {
        match conn.accept_bi().await {
            Ok((mut send, mut recv)) => {
                tokio::spawn(async move {
                    let Ok(data) = recv.read_to_end(usize::MAX).await else {
                        return;
                    };
                    let _ = send.write_all(&data).await;
                    let _ = send.finish();
                });
            }
            Err(e) => return e,
        }
    }
}

/// quinn accepts connections and echoes on each; with `retry`, every unvalidated Initial gets
/// a Retry first. Returns, per accepted connection, whether its address was validated.
fn quinn_echo_server(endpoint: quinn::Endpoint, retry: bool) -> Arc<Mutex<Vec<bool>>> {
    let validated = Arc::new(Mutex::new(Vec::new()));
    let log = validated.clone();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            if retry && !incoming.remote_address_validated() {
                incoming.retry().expect("quinn sends a Retry");
                continue;
            }
            log.lock()
                .expect("lock")
                .push(incoming.remote_address_validated());
            if let Ok(conn) = incoming.await {
                tokio::spawn(quinn_echo(conn));
            }
        }
    });
    validated
}

/// Our server echoing every bidi stream; returns the stats of each connection when it closes
fn our_echo_server(
    endpoint: driver::Endpoint,
) -> tokio::sync::mpsc::UnboundedReceiver<quic_stack::ConnectionStats> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(conn) = endpoint.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if conn.handshake().await.is_err() {
                    return;
                }
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(data) = recv.read_to_end(64 << 20).await else {
                            return;
                        };
                        let _ = send.write_all(&data).await;
                        let _ = send.finish();
                    });
                }
                if let Some(stats) = conn.stats() {
                    let _ = tx.send(stats);
                }
            });
        }
    });
    rx
}

async fn echo_ours(conn: &driver::Connection, data: &[u8]) {
    let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
    send.write_all(data).await.expect("write");
    send.finish().expect("finish");
    let echoed = recv.read_to_end(data.len() + 1).await.expect("read echo");
    assert!(echoed == data, "echo mismatch");
}

async fn echo_quinn(conn: &quinn::Connection, data: &[u8]) {
    let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
    send.write_all(data).await.expect("write");
    send.finish().expect("finish");
    let echoed = recv.read_to_end(data.len() + 1).await.expect("read echo");
    assert!(echoed == data, "echo mismatch");
}

/// A quinn echo server (`quinn_echo_server`) behind a relay recording the wire
async fn quinn_behind_relay(cert: &TestCert, retry: bool) -> (Relay, Arc<Mutex<Vec<bool>>>) {
    let server = quinn_server(cert);
    let relay = Relay::start(server.local_addr().expect("quinn address")).await;
    (relay, quinn_echo_server(server, retry))
}

/// Our echo server (`our_echo_server`) behind a relay recording the wire
async fn ours_behind_relay(
    cert: &TestCert,
    retry: bool,
) -> (
    Relay,
    tokio::sync::mpsc::UnboundedReceiver<quic_stack::ConnectionStats>,
) {
    let server = our_server(cert, retry);
    let relay = Relay::start(server.local_addr()).await;
    (relay, our_echo_server(server))
}

/// Our client's connection to `addr` once the handshake completed; `what` names its failure
async fn our_connection(
    endpoint: &driver::Endpoint,
    config: ClientConfig,
    addr: SocketAddr,
    what: &str,
) -> driver::Connection {
    let conn = endpoint
        .connect(config, addr, "localhost")
        .expect("start connecting");
    conn.handshake().await.expect(what);
    conn
}

/// quinn's client connection to `addr` once the handshake completed; `what` names its failure
async fn quinn_connection(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    addr: SocketAddr,
    what: &str,
) -> quinn::Connection {
    endpoint
        .connect_with(config, addr, "localhost")
        .expect("start connecting")
        .await
        .expect(what)
}

/// Our client, made by `client`, connected through a recording relay to a quinn echo server
/// (`quinn_behind_relay`); `what` names a failed handshake
async fn ours_to_quinn(
    cert: &TestCert,
    retry: bool,
    client: (driver::Endpoint, ClientConfig),
    what: &str,
) -> (
    Relay,
    Arc<Mutex<Vec<bool>>>,
    driver::Endpoint,
    driver::Connection,
) {
    let (relay, validated) = quinn_behind_relay(cert, retry).await;
    let (endpoint, config) = client;
    let conn = our_connection(&endpoint, config, relay.addr, what).await;
    (relay, validated, endpoint, conn)
}

/// quinn's client, made by `client`, connected through a recording relay to our echo server
/// (`ours_behind_relay`); `what` names a failed handshake
async fn quinn_to_ours(
    cert: &TestCert,
    retry: bool,
    client: (quinn::Endpoint, quinn::ClientConfig),
    what: &str,
) -> (Relay, quinn::Endpoint, quinn::Connection) {
    let (relay, _stats) = ours_behind_relay(cert, retry).await;
    let (endpoint, config) = client;
    let conn = quinn_connection(&endpoint, config, relay.addr, what).await;
    (relay, endpoint, conn)
}

// ---- reading the wire the relay recorded ----

/// Long-header packets of a datagram as (type, version), following coalesced packets
fn long_headers(d: &[u8]) -> Vec<(packet::LongType, u32)> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < d.len() {
        let Ok(hdr) = packet::parse_header(&d[offset..], 8) else {
            break;
        };
        match (hdr.kind, hdr.version) {
            (packet::HeaderKind::Long(ty), Some(v)) => out.push((ty, v)),
            _ => break,
        }
        if hdr.packet_len == 0 {
            break;
        }
        offset += hdr.packet_len;
    }
    out
}

/// The TLS handshake message at the start of the CRYPTO stream of the first (Initial) packet
/// of `datagram`, decrypted with the v1 Initial keys for client DCID `dcid`; `sender` is the
/// side that sent it
fn initial_crypto(datagram: &[u8], dcid: &[u8], sender: Side) -> Option<Vec<u8>> {
    let hdr = packet::parse_header(datagram, 8).ok()?;
    let mut pkt = datagram.get(..hdr.packet_len)?.to_vec();
    // The receiver's keys open what the sender sealed
    let keys = initial_keys(VERSION_1, dcid, !sender).ok()?;
    keys.header.remote.decrypt(hdr.pn_offset, &mut pkt).ok()?;
    let header_len = hdr.pn_offset + usize::from(pkt[0] & 0x03) + 1;
    let truncated = pkt
        .get(hdr.pn_offset..header_len)?
        .iter()
        .fold(0u64, |a, &b| (a << 8) | u64::from(b));
    let pn = packet::decode_packet_number(0, truncated, header_len - hdr.pn_offset);
    let (header, payload) = pkt.split_at_mut(header_len);
    let len = keys.packet.remote.open(pn, header, payload).ok()?;
    let mut pieces: Vec<(u64, Vec<u8>)> = FrameIter::new(&payload[..len])
        .map_while(Result::ok)
        .filter_map(|f| match f {
            Frame::Crypto { offset, data } => Some((offset, data.to_vec())),
            _ => None,
        })
        .collect();
    pieces.sort();
    let mut out = Vec::new();
    for (offset, data) in pieces {
        if offset as usize != out.len() {
            break;
        }
        out.extend_from_slice(&data);
    }
    Some(out)
}

/// A bounds-checked reader over TLS structures
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// What a ClientHello offered: cipher suites
fn client_hello_suites(msg: &[u8]) -> Option<Vec<u16>> {
    let mut r = Reader(msg);
    (r.u8()? == 1).then_some(())?;
    r.take(3 + 2 + 32)?; // length, legacy_version, random
    let n = usize::from(r.u8()?);
    r.take(n)?;
    let n = usize::from(r.u16()?);
    let suites = r.take(n)?;
    Some(
        suites
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// What a ServerHello chose: (cipher suite, whether it accepted a PSK, i.e. resumed)
fn server_hello(msg: &[u8]) -> Option<(u16, bool)> {
    let mut r = Reader(msg);
    (r.u8()? == 2).then_some(())?;
    r.take(3 + 2 + 32)?;
    let n = usize::from(r.u8()?);
    r.take(n)?;
    let suite = r.u16()?;
    r.u8()?; // legacy_compression_method
    let n = usize::from(r.u16()?);
    let mut exts = Reader(r.take(n)?);
    let mut psk = false;
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let n = usize::from(exts.u16()?);
        exts.take(n)?;
        psk |= ty == EXT_PRE_SHARED_KEY;
    }
    Some((suite, psk))
}

/// One connection's handshake: the client's offered suites and the server's (suite, resumed)
/// choice, if its ServerHello was seen
type Handshake = (Vec<u16>, Option<(u16, bool)>);

/// Per connection seen by the relay, in order
fn handshakes(seen: &[Seen]) -> Vec<Handshake> {
    let mut out = Vec::new();
    let mut dcids: Vec<Vec<u8>> = Vec::new();
    for s in seen.iter().filter(|s| s.from_client) {
        let Ok(hdr) = packet::parse_header(&s.data, 8) else {
            continue;
        };
        if !matches!(
            hdr.kind,
            packet::HeaderKind::Long(packet::LongType::Initial)
        ) || dcids.iter().any(|d| d[..] == hdr.dcid[..])
        {
            continue;
        }
        let dcid = hdr.dcid.to_vec();
        let Some(suites) =
            initial_crypto(&s.data, &dcid, Side::Client).and_then(|m| client_hello_suites(&m))
        else {
            continue;
        };
        let chosen = seen
            .iter()
            .filter(|s| !s.from_client)
            .find_map(|s| server_hello(&initial_crypto(&s.data, &dcid, Side::Server)?));
        dcids.push(dcid);
        out.push((suites, chosen));
    }
    out
}

// ---- key update ----

#[tokio::test]
async fn key_update_initiated_by_us_towards_quinn() {
    with_timeout(async {
        let cert = test_cert();
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        quinn_echo_server(server, false);
        let (endpoint, config) = our_client(&cert);
        let conn = our_connection(&endpoint, config, server_addr, "handshake with quinn").await;
        let data = pattern(256 * 1024, 1);
        echo_ours(&conn, &data).await;
        // Each update needs the previous one answered by quinn (RFC 9001 §6.5), so every
        // round's increase proves quinn switched to our new keys and replied in them. quinn
        // also updates once by itself, after a random 10..1000 packets of the first phase:
        // that can account for one round's increase at most, never for all three.
        let mut before = conn.stats().expect("stats").key_updates;
        for round in 1..=3 {
            conn.initiate_key_update();
            echo_ours(&conn, &data).await;
            let stats = conn.stats().expect("stats");
            assert!(stats.key_updates > before, "round {round}: {stats:?}");
            before = stats.key_updates;
        }
        conn.close(0, b"");
        let _ = conn.closed().await;
    })
    .await;
}

#[tokio::test]
async fn key_update_initiated_by_quinn_towards_us() {
    with_timeout(async {
        let cert = test_cert();
        let server = our_server(&cert, false);
        let server_addr = server.local_addr();
        let mut stats = our_echo_server(server);
        let (endpoint, config) = quinn_client(&cert, false);
        let conn =
            quinn_connection(&endpoint, config, server_addr, "handshake with our server").await;
        let data = pattern(256 * 1024, 2);
        echo_quinn(&conn, &data).await;
        for _ in 0..2 {
            conn.force_key_update();
            echo_quinn(&conn, &data).await;
            // quinn ignores a forced update while it still keeps the previous keys (about
            // three PTOs after the last update); let that pass before the next one
            tokio::time::sleep(Duration::from_millis(500)).await;
            echo_quinn(&conn, &data).await;
        }
        conn.close(quinn::VarInt::from_u32(0), b"");
        let stats = stats.recv().await.expect("server stats");
        // We followed every update quinn made, forced or its own early one (a missed one would
        // have made quinn's packets undecryptable and the echo would have stalled)
        assert!((2..=3).contains(&stats.key_updates), "{stats:?}");
        endpoint.wait_idle().await;
    })
    .await;
}

// ---- Retry ----

/// A Retry from the server, then a client Initial echoing a token
fn assert_retry_seen(seen: &[Seen]) {
    let retry = seen.iter().position(|s| {
        !s.from_client && long_headers(&s.data).first() == Some(&(packet::LongType::Retry, 1))
    });
    let Some(retry) = retry else {
        panic!("no Retry on the wire");
    };
    let answered = seen[retry..].iter().any(|s| {
        s.from_client
            && packet::parse_header(&s.data, 8).is_ok_and(|h| {
                matches!(h.kind, packet::HeaderKind::Long(packet::LongType::Initial))
                    && !h.token.is_empty()
            })
    });
    assert!(answered, "no client Initial carried the Retry token");
}

#[tokio::test]
async fn retry_from_quinn_server() {
    with_timeout(async {
        let cert = test_cert();
        let (relay, validated, _endpoint, conn) =
            ours_to_quinn(&cert, true, our_client(&cert), "handshake after Retry").await;
        echo_ours(&conn, &pattern(10_000, 3)).await;
        // quinn only accepted the connection once our Initial carried its Retry token
        assert_eq!(*validated.lock().expect("lock"), [true]);
        assert_retry_seen(&relay.seen());
        conn.close(0, b"");
        let _ = conn.closed().await;
    })
    .await;
}

#[tokio::test]
async fn retry_from_our_server_to_quinn_client() {
    with_timeout(async {
        let cert = test_cert();
        let (relay, endpoint, conn) = quinn_to_ours(
            &cert,
            true,
            quinn_client(&cert, false),
            "handshake after Retry",
        )
        .await;
        echo_quinn(&conn, &pattern(10_000, 4)).await;
        assert_retry_seen(&relay.seen());
        conn.close(quinn::VarInt::from_u32(0), b"");
        endpoint.wait_idle().await;
    })
    .await;
}

// ---- resumption ----

/// The relay saw two connections: a full handshake, then one resumed with a PSK
fn assert_second_resumed(seen: &[Seen]) {
    let hs = handshakes(seen);
    assert_eq!(hs.len(), 2, "two connections expected");
    assert_eq!(
        hs[0].1.map(|(_, psk)| psk),
        Some(false),
        "first is a full handshake"
    );
    assert_eq!(
        hs[1].1.map(|(_, psk)| psk),
        Some(true),
        "second resumes with a PSK"
    );
}

#[tokio::test]
async fn resumption_with_quinn_server() {
    with_timeout(async {
        let cert = test_cert();
        let (relay, _) = quinn_behind_relay(&cert, false).await;
        // One rustls config, and so one session cache, for both connections
        let (endpoint, config) = our_client(&cert);
        for i in 0..2 {
            let conn = our_connection(
                &endpoint,
                config.clone(),
                relay.addr,
                "handshake with quinn",
            )
            .await;
            // The echo round trip also lets quinn's session ticket arrive before the close
            echo_ours(&conn, &pattern(5_000, i)).await;
            conn.close(0, b"");
        }
        assert_second_resumed(&relay.seen());
    })
    .await;
}

#[tokio::test]
async fn resumption_of_quinn_client_with_our_server() {
    with_timeout(async {
        let cert = test_cert();
        let (relay, _stats) = ours_behind_relay(&cert, false).await;
        let (endpoint, config) = quinn_client(&cert, false);
        for i in 0..2 {
            let conn = quinn_connection(
                &endpoint,
                config.clone(),
                relay.addr,
                "handshake with our server",
            )
            .await;
            echo_quinn(&conn, &pattern(5_000, i)).await;
            conn.close(quinn::VarInt::from_u32(0), b"");
        }
        assert_second_resumed(&relay.seen());
        endpoint.wait_idle().await;
    })
    .await;
}

// ---- ChaCha20 ----

/// The first connection the relay saw offered ChaCha20 only, and the server chose it
fn assert_chacha_only(seen: &[Seen], client_hello: &str, server_hello: &str) {
    let hs = handshakes(seen);
    assert_eq!(hs[0].0, [TLS_CHACHA20_POLY1305_SHA256], "{client_hello}");
    assert_eq!(
        hs[0].1.map(|(s, _)| s),
        Some(TLS_CHACHA20_POLY1305_SHA256),
        "{server_hello}"
    );
}

#[tokio::test]
async fn chacha20_only_client_both_ways() {
    with_timeout(async {
        let cert = test_cert();
        // our ChaCha20-only client → quinn
        let (relay, _, _endpoint, conn) = ours_to_quinn(
            &cert,
            false,
            our_client_with(&cert, true, EndpointConfig::default()),
            "handshake with quinn",
        )
        .await;
        echo_ours(&conn, &pattern(1 << 20, 5)).await;
        conn.close(0, b"");
        assert_chacha_only(&relay.seen(), "our ClientHello", "quinn's ServerHello");
        let _ = conn.closed().await;

        // quinn's ChaCha20-only client → our server
        let (relay, endpoint, conn) = quinn_to_ours(
            &cert,
            false,
            quinn_client(&cert, true),
            "handshake with our server",
        )
        .await;
        echo_quinn(&conn, &pattern(1 << 20, 6)).await;
        conn.close(quinn::VarInt::from_u32(0), b"");
        assert_chacha_only(&relay.seen(), "quinn's ClientHello", "our ServerHello");
        endpoint.wait_idle().await;
    })
    .await;
}

// ---- grease bit ----

/// Short-header datagrams from each side, and how many of them had the QUIC bit cleared (the
/// bit is outside header protection, so the relay sees it)
fn greased(seen: &[Seen], from_client: bool) -> (usize, usize) {
    let short: Vec<_> = seen
        .iter()
        .filter(|s| s.from_client == from_client && s.data.first().is_some_and(|b| b & 0x80 == 0))
        .collect();
    let cleared = short.iter().filter(|s| s.data[0] & 0x40 == 0).count();
    (short.len(), cleared)
}

#[tokio::test]
async fn grease_bit_both_ways_with_quinn() {
    with_timeout(async {
        let cert = test_cert();
        // Both sides advertise grease_quic_bit (RFC 9287) by default, so both may clear it
        let (relay, _, _endpoint, conn) =
            ours_to_quinn(&cert, false, our_client(&cert), "handshake with quinn").await;
        echo_ours(&conn, &pattern(1 << 20, 7)).await;
        conn.close(0, b"");
        let _ = conn.closed().await;
        let seen = relay.seen();
        let (ours, ours_cleared) = greased(&seen, true);
        let (theirs, theirs_cleared) = greased(&seen, false);
        // Every datagram got through (the echo completed), cleared bits included: we accept
        // quinn's greased packets and it accepts ours
        assert!(ours_cleared > 0, "we never greased: {ours_cleared}/{ours}");
        assert!(
            ours_cleared < ours,
            "we always greased?: {ours_cleared}/{ours}"
        );
        assert!(
            theirs_cleared > 0,
            "quinn never greased: {theirs_cleared}/{theirs}"
        );
    })
    .await;
}

#[tokio::test]
async fn no_grease_when_the_peer_does_not_advertise_it() {
    with_timeout(async {
        let cert = test_cert();
        let (relay, _stats) = ours_behind_relay(&cert, false).await;
        let (_, config) = quinn_client(&cert, false);
        let mut ep_config = quinn::EndpointConfig::default();
        ep_config.grease_quic_bit(false);
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let endpoint = quinn::Endpoint::new(ep_config, None, socket, Arc::new(quinn::TokioRuntime))
            .expect("quinn endpoint");
        let conn =
            quinn_connection(&endpoint, config, relay.addr, "handshake with our server").await;
        echo_quinn(&conn, &pattern(256 * 1024, 8)).await;
        conn.close(quinn::VarInt::from_u32(0), b"");
        endpoint.wait_idle().await;
        let (ours, ours_cleared) = greased(&relay.seen(), false);
        assert!(ours > 0);
        assert_eq!(
            ours_cleared, 0,
            "we greased towards a peer that did not allow it"
        );
    })
    .await;
}

// ---- versions ----

/// A Version Negotiation packet (version 0, RFC 9000 §17.2.1) sent by the server
fn is_version_negotiation_from_server(s: &Seen) -> bool {
    !s.from_client && s.data.get(1..5) == Some(&[0, 0, 0, 0][..])
}

/// A datagram from the client starting with an Initial packet of `version`
fn is_client_initial(s: &Seen, version: u32) -> bool {
    s.from_client && long_headers(&s.data).first() == Some(&(packet::LongType::Initial, version))
}

/// Our client sending its first Initial in v2, with the versions `endpoint_config` supports
fn our_v2_first_client(
    cert: &TestCert,
    endpoint_config: EndpointConfig,
) -> (driver::Endpoint, ClientConfig) {
    let (endpoint, config) = our_client_with(cert, false, endpoint_config);
    let config = ClientConfig {
        version: VERSION_2,
        ..config
    };
    (endpoint, config)
}

#[tokio::test]
async fn v1_client_offering_v2_stays_v1_with_quinn() {
    // Compatible version negotiation needs the server's cooperation; quinn 0.11 ignores our
    // version_information and answers in v1, and the connection must simply stay in v1
    with_timeout(async {
        let cert = test_cert();
        let client = our_client_with(
            &cert,
            false,
            EndpointConfig {
                supported_versions: vec![VERSION_1, VERSION_2],
                ..EndpointConfig::default()
            },
        );
        let (relay, _, _endpoint, conn) =
            ours_to_quinn(&cert, false, client, "handshake with quinn").await;
        echo_ours(&conn, &pattern(10_000, 9)).await;
        assert_eq!(conn.stats().expect("stats").version_upgrades, 0);
        conn.close(0, b"");
        let _ = conn.closed().await;
        let versions: Vec<u32> = relay
            .seen()
            .iter()
            .flat_map(|s| long_headers(&s.data))
            .map(|(_, v)| v)
            .collect();
        assert!(!versions.is_empty());
        assert!(versions.iter().all(|&v| v == VERSION_1), "{versions:x?}");
    })
    .await;
}

#[tokio::test]
async fn quinn_has_no_v2() {
    // A v2-only client: quinn answers with Version Negotiation (RFC 9000 §6), and with
    // nothing to fall back to the attempt fails
    with_timeout(async {
        let cert = test_cert();
        let (relay, _) = quinn_behind_relay(&cert, false).await;
        let (endpoint, config) = our_v2_first_client(
            &cert,
            EndpointConfig {
                supported_versions: vec![VERSION_2],
                ..EndpointConfig::default()
            },
        );
        let conn = endpoint
            .connect(config, relay.addr, "localhost")
            .expect("start connecting");
        // The driver may already have dropped the failed attempt when the waiter looks, and
        // then reports it as closed rather than with its reason
        match conn.handshake().await {
            Err(ConnectionError::VersionMismatch | ConnectionError::LocallyClosed) => {}
            other => panic!("expected a version mismatch, got {other:?}"),
        }
        let vn = relay.seen().iter().any(is_version_negotiation_from_server);
        assert!(vn, "no Version Negotiation packet from quinn");
    })
    .await;
}

#[tokio::test]
async fn v2_first_client_falls_back_to_v1_with_quinn_on_the_wire() {
    // The relay shows the sequence: our v2 Initial, quinn's Version Negotiation, our v1
    // Initial. quinn 0.11 sends no version_information, so the downgrade check of RFC 9368 §4
    // must be relaxed (`strict_version_negotiation: false`); interop_quinn.rs shows the strict
    // default refusing it
    with_timeout(async {
        let cert = test_cert();
        let client = our_v2_first_client(
            &cert,
            EndpointConfig {
                supported_versions: vec![VERSION_2, VERSION_1],
                strict_version_negotiation: false,
                ..EndpointConfig::default()
            },
        );
        let (relay, _, _endpoint, conn) =
            ours_to_quinn(&cert, false, client, "handshake after falling back").await;
        echo_ours(&conn, &pattern(10_000, 10)).await;
        conn.close(0, b"");
        let seen = relay.seen();
        let first_v2 = seen.iter().position(|s| is_client_initial(s, VERSION_2));
        let vn = seen.iter().position(is_version_negotiation_from_server);
        let first_v1 = seen.iter().position(|s| is_client_initial(s, VERSION_1));
        match (first_v2, vn, first_v1) {
            (Some(a), Some(b), Some(c)) => assert!(a < b && b < c, "{a} {b} {c}"),
            other => panic!("expected v2 Initial, VN, v1 Initial: {other:?}"),
        }
    })
    .await;
}
