//! The SOL_QUIC socket API spoken directly over the service protocol (`quic_stack::sockapi::msg`),
//! without the C library: a client socket of an in-process `sockd` against a plain quic-stack
//! server on loopback. Checks the connection controls and their events from the Rust side:
//! KEY_UPDATE (the server's key phase flips), MAX_STREAMS past a limit of 2, NEW_TOKEN and
//! getsockopt(TOKEN), getsockopt(CONNECTION_ID), STREAM_UPDATE states.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quic_stack::config::TransportConfig;
use quic_stack::driver::Endpoint;
use quic_stack::sockapi::consts::*;
use quic_stack::sockapi::events::Event;
use quic_stack::sockapi::msg::{HandshakeArgs, Request};
use quic_stack::sockapi::types::{ConnectionIdInfo, TransportParam};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

mod common;
use common::{libc_eagain, loopback_server, start_service, Answer, Recvd, Sock};

fn server_endpoint() -> (Endpoint, SocketAddr) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let chain: Vec<CertificateDer<'static>> = vec![ck.cert.der().clone()];
    let tls = quic_stack::tls::server_config(chain, key, vec![b"sample".to_vec()], None, false)
        .expect("tls");
    let transport = TransportConfig {
        max_concurrent_bidi_streams: 2,
        ..TransportConfig::default()
    };
    loopback_server(tls, transport)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_controls_over_the_protocol() {
    let (name, service) = start_service("quictun-sockd-api");

    let (server, server_addr) = server_endpoint();
    let srv = tokio::spawn(async move {
        let conn = server.accept().await.expect("incoming");
        conn.handshake().await.expect("server handshake");
        // Echo every bidirectional stream.
        common::echo_bidi_streams(conn.clone());
        (server, conn)
    });

    let mut s = Sock::open(&name).await;
    for t in QUIC_EVENT_STREAM_UPDATE..QUIC_EVENT_MAX {
        let r = s.set(QUIC_SOCKOPT_EVENT, &[t, 1]).await;
        assert!(matches!(r, Answer::Ok(0)), "event {t}: {r:?}");
    }
    // No connection yet: EPIPE, like the kernel
    let r = s.set(QUIC_SOCKOPT_KEY_UPDATE, &[]).await;
    assert!(matches!(r, Answer::Err(e) if e == nix::errno::Errno::EPIPE as i32));
    // Transport parameters set on the socket reach the wire (zero fields stay unchanged)
    let tp = TransportParam {
        max_ack_delay: 10_000,
        ack_delay_exponent: 5,
        active_connection_id_limit: 4,
        ..TransportParam::default()
    };
    let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM, &tp.encode()).await;
    assert!(matches!(r, Answer::Ok(0)), "transport param: {r:?}");
    s.connect_and_handshake(server_addr).await;
    let (_server, conn) = tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .expect("server in time")
        .expect("server task");

    let seen = conn.with_core(|c, _| {
        c.peer_params().map(|p| {
            (
                p.max_ack_delay,
                p.ack_delay_exponent,
                p.active_connection_id_limit,
            )
        })
    });
    assert_eq!(
        seen,
        Some(Some((10, 5, 4))),
        "the server saw the socket's parameters"
    );

    let r = s.set(QUIC_SOCKOPT_KEY_UPDATE, &[]).await;
    assert!(matches!(r, Answer::Ok(0)), "key update: {r:?}");

    // Three streams through a limit of two: the third waits for MAX_STREAMS.
    let mut events = Vec::new();
    let mut echoed = 0;
    for i in 0..3u8 {
        let msg = [b'm', b'0' + i];
        loop {
            match s
                .send_stream(-1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, &msg)
                .await
            {
                Answer::Ok(2) => break,
                Answer::Err(e) if e == libc_eagain() => {
                    // Over the limit: read what has come (echoes close streams).
                    match s.recv().await {
                        Ok((Some(si), _)) if si.stream_flags & MSG_QUIC_STREAM_FIN != 0 => {
                            echoed += 1
                        }
                        Ok(_) => {}
                        Err(ev) => events.push(ev),
                    }
                }
                other => panic!("send {i}: {other:?}"),
            }
        }
    }
    while echoed < 3
        || !events.iter().any(|e| matches!(e, Event::KeyUpdate(1)))
        || !events.iter().any(|e| matches!(e, Event::NewToken(_)))
        || !events.iter().any(|e| matches!(e, Event::MaxStream(_)))
    {
        match s.recv().await {
            Ok((Some(si), _)) if si.stream_flags & MSG_QUIC_STREAM_FIN != 0 => echoed += 1,
            Ok(_) => {}
            Err(ev) => events.push(ev),
        }
    }
    assert_eq!(
        conn.with_core(|c, _| c.key_phase()),
        Some(true),
        "the server follows the client's key update"
    );
    // MAX_STREAMS: highest openable client bidi id (type bits 0), beyond the first limit
    let max = events
        .iter()
        .filter_map(|e| match e {
            Event::MaxStream(m) => Some(*m),
            _ => None,
        })
        .max()
        .expect("MAX_STREAMS event");
    assert!(max >= 8 && max % 4 == 0, "max stream id {max}");
    // STREAM_UPDATE: receive side RECV and RECVD for the echoes
    for state in [stream_state::RECV_RECV, stream_state::RECV_RECVD] {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::StreamUpdate(u) if u.state == state)),
            "STREAM_UPDATE state {state} in {events:?}"
        );
    }
    // NEW_TOKEN: the bytes of the event are what getsockopt(TOKEN) returns
    let token = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::NewToken(t) => Some(t.clone()),
            _ => None,
        })
        .expect("token");
    match s.get(QUIC_SOCKOPT_TOKEN, &[], 256).await {
        Answer::OptVal(v) => assert_eq!(v, token),
        other => panic!("get token: {other:?}"),
    }
    // CONNECTION_ID of the destination set: nothing retired yet
    let input = ConnectionIdInfo {
        dest: 1,
        active: 0,
        prior_to: 0,
    }
    .encode();
    match s.get(QUIC_SOCKOPT_CONNECTION_ID, &input, 12).await {
        Answer::OptVal(v) => {
            let ci = ConnectionIdInfo::decode(&v);
            assert_eq!((ci.dest, ci.active, ci.prior_to), (1, 0, 0));
        }
        other => panic!("get cid: {other:?}"),
    }
    let r = s.call(&Request::Close).await;
    assert!(matches!(r, Answer::Ok(0)));
    service.abort();
}

/// What a client of [`client_of`] saw: its endpoint (kept alive), the server's certificate
/// chain, the negotiated ALPN, the echo of its stream
type Seen = (Endpoint, Option<Vec<Vec<u8>>>, Option<Vec<u8>>, Vec<u8>);

/// A client of the service's listener: a plain quic-stack client that trusts only `cert`
/// and reports the certificate it saw and the negotiated ALPN
fn client_of(addr: SocketAddr, cert: CertificateDer<'static>) -> tokio::task::JoinHandle<Seen> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let tls = quic_stack::tls::client_config(roots, vec![b"sample".to_vec()], None).expect("tls");
    let cfg = quic_stack::config::ClientConfig::new(Arc::new(tls));
    let ep = common::loopback_client();
    let conn = ep.connect(cfg, addr, "localhost").expect("connect");
    tokio::spawn(async move {
        conn.handshake().await.expect("client handshake");
        let seen = conn.with_core(|c, _| c.peer_identity()).flatten();
        let alpn = conn
            .with_core(|c, _| c.handshake_data().and_then(|d| d.alpn))
            .flatten();
        let (mut s, mut r) = conn.open_bi().await.expect("open");
        s.write_all(b"hello").await.expect("write");
        s.finish().expect("finish");
        let echo = r.read_to_end(1 << 16).await.expect("echo");
        (ep, seen, alpn, echo)
    })
}

/// Accepted sockets choose their TLS after accept(): the certificate given to
/// quic_server_handshake is what the very first client sees; the server's
/// getsockopt(SESSION_TICKET) is a per-peer key (same peer, same key; a listener: EPIPE)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_socket_handshakes_with_its_own_certificate() {
    let (name, service) = start_service("quictun-sockd-api-cert");
    let epipe = nix::errno::Errno::EPIPE as i32;

    let (mut l, addr) = Sock::listener(&name, 4).await;
    let r = l.get(QUIC_SOCKOPT_SESSION_TICKET, &[], 64).await;
    assert!(matches!(r, Answer::Err(e) if e == epipe), "listener: {r:?}");

    // The application's own certificate, which the client alone trusts
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_pem = ck.cert.pem();
    let key_pem = ck.key_pair.serialize_pem();
    let cert = ck.cert.der().clone();

    let client = client_of(addr, cert.clone());
    let mut s = l.accept().await;
    let key1 = match s.get(QUIC_SOCKOPT_SESSION_TICKET, &[], 64).await {
        Answer::OptVal(v) => v,
        other => panic!("server ticket key: {other:?}"),
    };
    assert_eq!(key1.len(), 64);
    let r = s
        .call(&Request::Handshake(HandshakeArgs {
            server: true,
            hostname: None,
            alpns: None,
            pkey: Some(key_pem.as_bytes()),
            cert: Some(cert_pem.as_bytes()),
        }))
        .await;
    assert!(matches!(r, Answer::Ok(0)), "server handshake: {r:?}");
    // Echo the client's stream
    let mut got = Vec::new();
    let sid = loop {
        if let Ok((Some(si), data)) = s.recv().await {
            got.extend_from_slice(&data);
            if si.stream_flags & MSG_QUIC_STREAM_FIN != 0 {
                break si.stream_id;
            }
        }
    };
    assert_eq!(got, b"hello");
    let r = s.send_stream(sid, MSG_QUIC_STREAM_FIN, b"world").await;
    assert!(matches!(r, Answer::Ok(5)), "echo: {r:?}");
    let (_cep, seen, alpn, echo) = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client in time")
        .expect("client task");
    assert_eq!(
        seen.as_deref(),
        Some(&[cert.to_vec()][..]),
        "the first client saw the certificate given to quic_server_handshake"
    );
    assert_eq!(
        alpn.as_deref(),
        Some(&b"sample"[..]),
        "ALPN from the listener"
    );
    assert_eq!(echo, b"world");

    // A second client from the same address: the same derived key; a key the application
    // sets is what it gets back
    let client2 = client_of(addr, cert.clone());
    let mut s2 = l.accept().await;
    match s2.get(QUIC_SOCKOPT_SESSION_TICKET, &[], 64).await {
        Answer::OptVal(v) => assert_eq!(v, key1, "same peer address, same key"),
        other => panic!("second ticket key: {other:?}"),
    }
    let own = [0x5au8; 64];
    assert!(matches!(
        s2.set(QUIC_SOCKOPT_SESSION_TICKET, &own).await,
        Answer::Ok(0)
    ));
    match s2.get(QUIC_SOCKOPT_SESSION_TICKET, &[], 64).await {
        Answer::OptVal(v) => assert_eq!(v, own),
        other => panic!("own ticket key: {other:?}"),
    }
    client2.abort();
    for sock in [&mut s2, &mut s, &mut l] {
        assert!(matches!(sock.call(&Request::Close).await, Answer::Ok(0)));
    }
    service.abort();
}

/// A UDP relay between one client and `server` that, once `hold` is set, delays every large
/// datagram from the server for a while: a stream's last (small) packet with the FIN then
/// overtakes the data before it
async fn delaying_relay(
    server: SocketAddr,
    hold: Arc<std::sync::atomic::AtomicBool>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering;
    let sock = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("relay socket"),
    );
    let addr = sock.local_addr().expect("relay addr");
    let task = tokio::spawn(async move {
        let mut client = None;
        let mut buf = vec![0u8; 65536];
        let mut hold_until: Option<tokio::time::Instant> = None;
        // Bounded by the test: the task is aborted at its end
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let data = buf[..n].to_vec();
            if from != server {
                client = Some(from);
                let _ = sock.send_to(&data, server).await;
                continue;
            }
            let Some(to) = client else { continue };
            if hold.load(Ordering::SeqCst) && hold_until.is_none() {
                hold_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
            }
            let holding = hold_until.is_some_and(|t| tokio::time::Instant::now() < t);
            if holding && n > 1000 {
                let s = sock.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let _ = s.send_to(&data, to).await;
                });
            } else {
                let _ = sock.send_to(&data, to).await;
            }
        }
    });
    (addr, task)
}

/// STREAM_UPDATE carries final sizes: RECV_SIZE_KNOWN when the FIN overtakes the stream's
/// data, RECVD once all of it is in, and on the send side RECVD with the bytes we sent
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_updates_carry_final_sizes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (name, service) = start_service("quictun-sockd-api-finalsz");

    let (server, server_addr) = server_endpoint();
    let hold = Arc::new(AtomicBool::new(false));
    let (relay_addr, relay) = delaying_relay(server_addr, hold.clone()).await;
    let data = vec![0x42u8; 3000];
    let sent = data.clone();
    let srv = tokio::spawn(async move {
        let conn = server.accept().await.expect("incoming");
        conn.handshake().await.expect("server handshake");
        // Let the handshake's stragglers pass before the relay starts holding
        tokio::time::sleep(Duration::from_millis(100)).await;
        hold.store(true, Ordering::SeqCst);
        let mut s = conn.open_uni().await.expect("open uni");
        s.write_all(&sent).await.expect("write");
        s.finish().expect("finish");
        let (_, mut r) = conn.accept_bi().await.expect("client stream");
        let got = r.read_to_end(1 << 16).await.expect("read");
        (server, conn, got)
    });

    let mut s = Sock::open(&name).await;
    let r = s
        .set(QUIC_SOCKOPT_EVENT, &[QUIC_EVENT_STREAM_UPDATE, 1])
        .await;
    assert!(matches!(r, Answer::Ok(0)), "{r:?}");
    s.connect_and_handshake(relay_addr).await;

    let mut events = Vec::new();
    let mut got = Vec::new();
    let mut fin = false;
    while !fin {
        match s.recv().await {
            Ok((Some(si), d)) => {
                got.extend_from_slice(&d);
                fin = si.stream_flags & MSG_QUIC_STREAM_FIN != 0;
            }
            Ok(_) => {}
            Err(ev) => events.push(ev),
        }
    }
    assert_eq!(got, data);
    let r = s
        .send_stream(-1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, b"hello")
        .await;
    assert!(matches!(r, Answer::Ok(5)), "send: {r:?}");
    let (_server, _conn, echoed) = tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .expect("server in time")
        .expect("server task");
    assert_eq!(echoed, b"hello");
    // Our FIN acknowledged: send-side RECVD with the final size
    while !events
        .iter()
        .any(|e| matches!(e, Event::StreamUpdate(u) if u.state == stream_state::SEND_RECVD))
    {
        match s.recv().await {
            Err(ev) => events.push(ev),
            Ok(other) => panic!("unexpected data {other:?}"),
        }
    }
    let updates: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::StreamUpdate(u) => Some((u.id, u.state, u.finalsz)),
            _ => None,
        })
        .collect();
    // Server uni stream 3: SIZE_KNOWN before RECVD, both with 3000; client bidi 0: 5 bytes
    let known = updates
        .iter()
        .position(|u| *u == (3, stream_state::RECV_SIZE_KNOWN, 3000));
    let recvd = updates
        .iter()
        .position(|u| *u == (3, stream_state::RECV_RECVD, 3000));
    assert!(
        known.is_some() && known < recvd,
        "SIZE_KNOWN then RECVD: {updates:?}"
    );
    assert!(
        updates.contains(&(0, stream_state::SEND_RECVD, 5)),
        "{updates:?}"
    );
    let r = s.call(&Request::Close).await;
    assert!(matches!(r, Answer::Ok(0)));
    relay.abort();
    service.abort();
}

/// Connections wait in the accept queue before any TLS; beyond the backlog they are refused
/// (closed at once), and a waiting client is not answered until its socket is accepted
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backlog_refuses_and_waiting_clients_wait() {
    let (name, service) = start_service("quictun-sockd-api-backlog");

    let (mut l, addr) = Sock::listener(&name, 1).await;
    let tls = quic_stack::tls::danger_insecure_client_config(vec![b"sample".to_vec()])
        .expect("client tls");
    let cfg = quic_stack::config::ClientConfig::new(Arc::new(tls));
    let ep = common::loopback_client();
    let first = ep.connect(cfg.clone(), addr, "localhost").expect("connect");
    // The first fills the backlog of one (it waits there, un-accepted)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = ep.connect(cfg, addr, "localhost").expect("connect");
    let refused = tokio::time::timeout(Duration::from_secs(5), second.handshake())
        .await
        .expect("refused in time");
    match refused {
        // The service refuses with an application close; before the handshake RFC 9000
        // §10.2.3 turns that into a transport close with APPLICATION_ERROR (0x0c)
        Err(quic_stack::connection::ConnectionError::ConnectionClosed { error_code, .. }) => {
            assert_eq!(error_code, 0x0c);
        }
        other => panic!("second connection: {other:?}"),
    }
    // Nobody accepted the first: its handshake has not moved
    assert_eq!(first.with_core(|c, _| c.is_handshaking()), Some(true));
    let mut s = l.accept().await;
    let r = s
        .call(&Request::Handshake(HandshakeArgs {
            server: true,
            hostname: None,
            alpns: None,
            pkey: None,
            cert: None,
        }))
        .await;
    assert!(matches!(r, Answer::Ok(0)), "server handshake: {r:?}");
    tokio::time::timeout(Duration::from_secs(5), first.handshake())
        .await
        .expect("first in time")
        .expect("first handshake, with the service's own certificate");
    for sock in [&mut s, &mut l] {
        assert!(matches!(sock.call(&Request::Close).await, Answer::Ok(0)));
    }
    service.abort();
}

/// Data the peer sent right before it closed stays readable: the socket reports the close
/// only after its receive pumps moved what the connection had already received, as the
/// kernel keeps such data queued. The server closes as soon as its streams are written, so
/// data and CONNECTION_CLOSE arrive close together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sent_before_the_peers_close_stays_readable() {
    const STREAMS: usize = 3;
    const LEN: usize = 20_000;
    let (name, service) = start_service("quictun-sockd-api-close");
    let (server, server_addr) = server_endpoint();
    let server = Arc::new(server);
    for round in 0..4 {
        let (go, ready) = tokio::sync::oneshot::channel::<()>();
        let srv = {
            let server = server.clone();
            tokio::spawn(async move {
                let conn = server.accept().await.expect("incoming");
                conn.handshake().await.expect("server handshake");
                // The client's handshake call returns first (a close during it is a failure)
                ready.await.expect("client ready");
                let base = conn
                    .with_core(|c, _| c.stats().udp_tx_bytes)
                    .expect("connection");
                for _ in 0..STREAMS {
                    let mut w = conn.open_uni().await.expect("open");
                    w.write_all(&[round as u8; LEN]).await.expect("write");
                    w.finish().expect("finish");
                }
                // Close as soon as everything has left: the payload plus at least 24 bytes of
                // header and tag on each of its 40-odd packets
                let sent = |c: &quic_stack::driver::Connection| {
                    c.with_core(|c, _| c.stats().udp_tx_bytes)
                        .unwrap_or(u64::MAX)
                };
                let goal = base + (STREAMS * LEN) as u64 + 1000;
                for _ in 0..100_000 {
                    if sent(&conn) >= goal {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                conn.close(7, b"done");
            })
        };
        let mut s = Sock::open(&name).await;
        s.connect_and_handshake(server_addr).await;
        go.send(()).expect("server waits");
        srv.await.expect("server task");
        let (mut bytes, mut fins) = (0usize, 0usize);
        for _ in 0..1000 {
            match s.recvmsg_once(65536).await {
                Recvd::Msg {
                    msg_flags,
                    stream,
                    data,
                    ..
                } => {
                    if msg_flags & MSG_QUIC_NOTIFICATION == 0 {
                        bytes += data.len();
                        if stream.is_some_and(|si| si.stream_flags & MSG_QUIC_STREAM_FIN != 0) {
                            fins += 1;
                        }
                    }
                }
                Recvd::Again => tokio::time::sleep(Duration::from_millis(5)).await,
                Recvd::NotConnected => break,
            }
        }
        assert_eq!(
            (bytes, fins),
            (STREAMS * LEN, STREAMS),
            "round {round}: everything sent before the close is readable"
        );
    }
    service.abort();
}

/// An application that writes and closes at once: its data leaves before the
/// CONNECTION_CLOSE, as with the kernel, whose sendmsg transmits before returning (the
/// service hands writes to the driver asynchronously, and the close used to overtake them)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_right_after_writing_sends_the_data_first() {
    const STREAMS: usize = 3;
    const LEN: usize = 20_000;
    let (name, service) = start_service("quictun-sockd-api-flush");
    let (mut l, addr) = Sock::listener(&name, 4).await;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert_pem, key_pem) = (ck.cert.pem(), ck.key_pair.serialize_pem());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("root");
    let tls = quic_stack::tls::client_config(roots, vec![b"sample".to_vec()], None).expect("tls");
    let ep = common::loopback_client();
    let conn = ep
        .connect(
            quic_stack::config::ClientConfig::new(Arc::new(tls)),
            addr,
            "localhost",
        )
        .expect("connect");
    let client = tokio::spawn(async move {
        conn.handshake().await.expect("client handshake");
        let mut got = Vec::new();
        for _ in 0..STREAMS {
            let Ok(mut r) = conn.accept_uni().await else {
                break;
            };
            match r.read_to_end(1 << 20).await {
                Ok(d) => got.push(d.len()),
                Err(_) => break,
            }
        }
        (ep, got)
    });
    let mut s = l.accept().await;
    let r = s
        .call(&Request::Handshake(HandshakeArgs {
            server: true,
            hostname: None,
            alpns: None,
            pkey: Some(key_pem.as_bytes()),
            cert: Some(cert_pem.as_bytes()),
        }))
        .await;
    assert!(matches!(r, Answer::Ok(0)), "server handshake: {r:?}");
    let data = vec![7u8; LEN];
    for _ in 0..STREAMS {
        let flags = MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN | MSG_QUIC_STREAM_UNI;
        let r = s.send_stream(-1, flags, &data).await;
        assert!(
            matches!(r, Answer::Ok(n) if n as usize == LEN),
            "write: {r:?}"
        );
    }
    assert!(matches!(s.call(&Request::Close).await, Answer::Ok(0)));
    let (_ep, got) = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client in time")
        .expect("client task");
    assert_eq!(got, vec![LEN; STREAMS], "every stream arrived whole");
    assert!(matches!(l.call(&Request::Close).await, Answer::Ok(0)));
    service.abort();
}
