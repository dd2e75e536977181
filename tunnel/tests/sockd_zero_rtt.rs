//! Preferred address, 0-RTT and raw session tickets over the service protocol (issue #6):
//! the test is the application, driving sockets as the C library does.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use quic_stack::config::{ClientConfig, TransportConfig};
use quic_stack::sockapi::consts::*;
use quic_stack::sockapi::events::Event;
use quic_stack::sockapi::msg::{HandshakeArgs, RawAddr, Request};
use quic_stack::sockapi::types::{EventOption, TransportParam};
use rustls::quic::{self as rq, KeyChange};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

mod common;
use common::app_tls::{cipher_of, flush_tls, install, install_both, Secrets};
use common::{Answer, Sock};

const EINVAL: i32 = nix::errno::Errno::EINVAL as i32;

fn start_service(tag: &str) -> (String, tokio::task::JoinHandle<()>) {
    common::start_service(&format!("quictun-sockd-0rtt-{tag}"))
}

/// A listening socket of the service on 127.0.0.1
async fn listener(name: &str) -> (Sock, SocketAddr) {
    let mut l = Sock::open(name).await;
    let addr = l.bind_listen(4).await;
    (l, addr)
}

fn sockaddr_in(a: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(a) = a else {
        panic!("IPv4 only here")
    };
    // struct sockaddr_in: family (host order), port and address (network order), padding
    let mut b = vec![0u8; 16];
    b[..2].copy_from_slice(&2u16.to_ne_bytes());
    b[2..4].copy_from_slice(&a.port().to_be_bytes());
    b[4..8].copy_from_slice(&a.ip().octets());
    b
}

/// Read one whole stream from a socket (events skipped): (stream id, data)
async fn read_stream(s: &mut Sock) -> (i64, Vec<u8>) {
    let mut data = Vec::new();
    for _ in 0..100 {
        if let Ok((Some(si), d)) = s.recv().await {
            data.extend_from_slice(&d);
            if si.stream_flags & MSG_QUIC_STREAM_FIN != 0 {
                return (si.stream_id, data);
            }
        }
    }
    panic!("stream did not end");
}

fn server_handshake() -> Request<'static> {
    Request::Handshake(HandshakeArgs {
        server: true,
        hostname: None,
        alpns: Some(b"sample"),
        pkey: None,
        cert: None,
    })
}

/// An accepted socket offers 127.0.0.2 as its preferred address before quic_server_handshake;
/// the client (also a service socket) moves there and data flows on the new path
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_socket_offers_a_preferred_address() {
    let (name, service) = start_service("pa");
    let (mut l, addr) = listener(&name).await;
    // A free port on another loopback address (the whole 127/8 is local on Linux)
    let preferred = {
        let probe = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).expect("probe 127.0.0.2");
        probe.local_addr().expect("probe address")
    };

    let name2 = name.clone();
    let client = tokio::spawn(async move {
        let mut c = Sock::open(&name2).await;
        c.connect(addr).await;
        // Only a server offers a preferred address: an establishing client gets EINVAL
        let r = c
            .set(QUIC_SOCKOPT_CONNECTION_MIGRATION, &sockaddr_in(preferred))
            .await;
        assert!(matches!(r, Answer::Err(e) if e == EINVAL), "{r:?}");
        let r = c.client_handshake().await;
        assert!(matches!(r, Answer::Ok(0)), "client handshake: {r:?}");
        c
    });

    let mut s = l.accept().await;
    // Refused like the kernel: port 0
    let zero = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0));
    let r = s
        .set(QUIC_SOCKOPT_CONNECTION_MIGRATION, &sockaddr_in(zero))
        .await;
    assert!(matches!(r, Answer::Err(e) if e == EINVAL), "{r:?}");
    let r = s
        .set(QUIC_SOCKOPT_CONNECTION_MIGRATION, &sockaddr_in(preferred))
        .await;
    assert!(matches!(r, Answer::Ok(0)), "preferred address: {r:?}");
    let r = s.call(&server_handshake()).await;
    assert!(matches!(r, Answer::Ok(0)), "server handshake: {r:?}");
    // Established server: servers do not migrate (RFC 9000 §9), deliberately EINVAL
    let r = s
        .set(QUIC_SOCKOPT_CONNECTION_MIGRATION, &sockaddr_in(preferred))
        .await;
    assert!(matches!(r, Answer::Err(e) if e == EINVAL), "{r:?}");

    let mut c = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client in time")
        .expect("client task");
    let mut moved = false;
    for _ in 0..250 {
        match c.call(&Request::GetPeerName).await {
            Answer::Addr(a) if a == preferred => {
                moved = true;
                break;
            }
            Answer::Addr(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("getpeername: {other:?}"),
        }
    }
    assert!(moved, "the client never moved to {preferred}");

    let r = c
        .send_stream(
            -1,
            MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN,
            b"via preferred",
        )
        .await;
    assert!(matches!(r, Answer::Ok(13)), "client send: {r:?}");
    let (sid, got) = read_stream(&mut s).await;
    assert_eq!(got, b"via preferred");
    let r = s.send_stream(sid, MSG_QUIC_STREAM_FIN, b"echo").await;
    assert!(matches!(r, Answer::Ok(4)), "server send: {r:?}");
    let (_, echo) = read_stream(&mut c).await;
    assert_eq!(echo, b"echo");
    // Still on the preferred address after the exchange
    assert!(matches!(c.call(&Request::GetPeerName).await, Answer::Addr(a) if a == preferred));
    for sock in [&mut c, &mut s, &mut l] {
        assert!(matches!(sock.call(&Request::Close).await, Answer::Ok(0)));
    }
    service.abort();
}

/// A quic-stack client resumes with 0-RTT against an accepted socket running the service's
/// TLS (quic_server_handshake): the early data is accepted and echoed
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_server_accepts_zero_rtt() {
    let (name, service) = start_service("builtin");
    let (mut l, addr) = listener(&name).await;
    let crypto = quic_stack::tls::danger_insecure_client_config(vec![b"sample".to_vec()])
        .expect("client TLS");
    let mut cfg = ClientConfig::new(Arc::new(crypto));
    cfg.transport = Arc::new(TransportConfig {
        zero_rtt: true,
        ..TransportConfig::default()
    });
    let ep = common::loopback_client();

    let mut results = Vec::new();
    for round in 0..2 {
        let conn = ep.connect(cfg.clone(), addr, "localhost").expect("connect");
        assert_eq!(conn.is_zero_rtt_available(), round == 1, "round {round}");
        let c = conn.clone();
        let client = tokio::spawn(async move {
            // Written before the handshake: 0-RTT on the second round
            let (mut send, mut recv) = c.open_bi().await.expect("open");
            send.write_all(b"early request").await.expect("write");
            send.finish().expect("finish");
            let echo = recv.read_to_end(1 << 16).await.expect("echo");
            c.handshake().await.expect("handshake");
            echo
        });
        let mut s = l.accept().await;
        let r = s.call(&server_handshake()).await;
        assert!(matches!(r, Answer::Ok(0)), "server handshake: {r:?}");
        let (sid, got) = read_stream(&mut s).await;
        assert_eq!(got, b"early request");
        let r = s.send_stream(sid, MSG_QUIC_STREAM_FIN, &got).await;
        assert!(matches!(r, Answer::Ok(13)), "echo: {r:?}");
        let echo = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("client in time")
            .expect("client task");
        assert_eq!(echo, b"early request");
        // Let the tickets (sent after the handshake) arrive before closing
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = conn.stats().expect("stats");
        results.push((conn.zero_rtt_accepted(), stats.zero_rtt_bytes_accepted));
        conn.close(0, b"done");
        assert!(matches!(s.call(&Request::Close).await, Answer::Ok(0)));
    }
    assert_eq!(results[0], (None, 0), "first connection: no ticket yet");
    assert_eq!(results[1].0, Some(true), "the service's TLS accepted 0-RTT");
    assert!(results[1].1 >= 13, "0-RTT bytes accepted: {}", results[1].1);
    assert!(matches!(l.call(&Request::Close).await, Answer::Ok(0)));
    service.abort();
}

/// Run the client handshake of `tls` over `s` (ClientHello already written by the caller
/// or not) until both 1-RTT secrets are installed
async fn drive_client(s: &mut Sock, tls: &mut rq::ClientConnection, secrets: &Secrets) {
    let mut level = QUIC_CRYPTO_INITIAL;
    let mut peer_params_set = false;
    for _ in 0..50 {
        loop {
            let (change, wrote) = flush_tls(s, level, |b| tls.write_hs(b)).await;
            let suite = tls.negotiated_cipher_suite().map(cipher_of);
            match change {
                Some(KeyChange::Handshake { .. }) => {
                    let (tx, rx) = (
                        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                    );
                    let c = suite.expect("suite");
                    install_both(s, c, QUIC_CRYPTO_HANDSHAKE, secrets, tx, rx).await;
                    level = QUIC_CRYPTO_HANDSHAKE;
                }
                Some(KeyChange::OneRtt { .. }) => {
                    let (tx, rx) = ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0");
                    let c = suite.expect("suite");
                    install_both(s, c, QUIC_CRYPTO_APP, secrets, tx, rx).await;
                    return;
                }
                None if !wrote => break,
                None => {}
            }
        }
        let (_, _, got_level, data) = s.recv_any().await;
        let got_level = got_level.expect("handshake message expected");
        tls.read_hs(&data).expect("server handshake data");
        // Only EncryptedExtensions (HANDSHAKE level) has this server's parameters: before it,
        // a resuming rustls reports the ticket's
        if !peer_params_set && got_level == QUIC_CRYPTO_HANDSHAKE {
            if let Some(p) = tls.quic_transport_parameters() {
                let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, p).await;
                assert!(matches!(r, Answer::Ok(0)), "peer params: {r:?}");
                peer_params_set = true;
            }
        }
    }
    panic!("handshake did not finish");
}

/// The application runs TLS itself (rustls's QUIC API) against a built-in quic-stack server:
/// the first connection gets the raw NewSessionTicket (event and getsockopt) and the server's
/// parameters (TRANSPORT_PARAM remote=1); the second sets them back, writes stream data
/// before the handshake and releases it as 0-RTT with the EARLY secret
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tls_client_resumes_with_zero_rtt() {
    let (name, service) = start_service("ext");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let stls = quic_stack::tls::server_config(
        vec![cert.clone()],
        key,
        vec![b"sample".to_vec()],
        None,
        true,
    )
    .expect("server tls");
    let transport = TransportConfig {
        zero_rtt: true,
        ..TransportConfig::default()
    };
    let (server, server_addr) = common::loopback_server(stls, transport);
    let srv = tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..2 {
            let conn = server.accept().await.expect("incoming");
            common::echo_bidi_streams(conn.clone());
            conns.push(conn);
        }
        (server, conns)
    });

    let secrets = Arc::new(Secrets::default());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let mut config =
        quic_stack::tls::client_config(roots, vec![b"sample".to_vec()], None).expect("config");
    config.key_log = secrets.clone();
    let config = Arc::new(config);
    let server_name = ServerName::try_from("localhost").expect("name");

    // First connection: full handshake, then the ticket and the server's parameters
    let mut s = Sock::open(&name).await;
    let on = EventOption {
        event_type: QUIC_EVENT_NEW_SESSION_TICKET,
        on: 1,
    };
    assert!(matches!(
        s.set(QUIC_SOCKOPT_EVENT, &on.encode()).await,
        Answer::Ok(0)
    ));
    s.connect(server_addr).await;
    // No ticket before the handshake: length 0
    assert!(
        matches!(s.get(QUIC_SOCKOPT_SESSION_TICKET, &[], 4096).await, Answer::OptVal(v) if v.is_empty())
    );
    let ours = match s.get(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[], 256).await {
        Answer::OptVal(v) => v,
        other => panic!("TRANSPORT_PARAM_EXT: {other:?}"),
    };
    let mut tls =
        rq::ClientConnection::new(config.clone(), rq::Version::V1, server_name.clone(), ours)
            .expect("rustls client");
    drive_client(&mut s, &mut tls, &secrets).await;
    let cipher = cipher_of(tls.negotiated_cipher_suite().expect("suite"));
    // The ticket arrives as an event with the raw TLS message, never as a handshake message
    let nst = loop {
        match s.recv().await {
            Err(Event::NewSessionTicket(t)) => break t,
            Err(_) => continue,
            Ok(other) => panic!("unexpected data {other:?}"),
        }
    };
    assert_eq!(nst[0], 4, "a TLS NewSessionTicket message");
    let len = usize::from(nst[1]) << 16 | usize::from(nst[2]) << 8 | usize::from(nst[3]);
    assert_eq!(nst.len(), len + 4);
    let got = match s.get(QUIC_SOCKOPT_SESSION_TICKET, &[], 4096).await {
        Answer::OptVal(v) => v,
        other => panic!("SESSION_TICKET: {other:?}"),
    };
    assert!(!got.is_empty());
    assert_eq!(got[0], 4);
    // Feed every ticket that came (rustls keeps the last) to the TLS session
    tls.read_hs(&nst).expect("ticket accepted by rustls");
    if got != nst {
        tls.read_hs(&got).expect("second ticket accepted by rustls");
    }
    let remote = TransportParam {
        remote: 1,
        ..TransportParam::default()
    };
    let cached = match s
        .get(QUIC_SOCKOPT_TRANSPORT_PARAM, &remote.encode(), 56)
        .await
    {
        Answer::OptVal(v) => TransportParam::decode(&v),
        other => panic!("TRANSPORT_PARAM remote: {other:?}"),
    };
    // The server's defaults (quic-stack TransportConfig): 16 MiB connection window
    assert_eq!(cached.remote, 1);
    assert_eq!(cached.max_data, 16 << 20, "{cached:?}");
    assert_eq!(cached.max_streams_bidi, 100);
    assert!(matches!(s.call(&Request::Close).await, Answer::Ok(0)));

    // Second connection: 0-RTT
    secrets.clear();
    let mut s = Sock::open(&name).await;
    // Stream data before connect or without saved parameters is refused
    let r = s
        .call(&Request::Connect(RawAddr::from_socket_addr(&server_addr)))
        .await;
    assert!(matches!(r, Answer::Ok(0)));
    let r = s
        .send_stream(-1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, b"x")
        .await;
    assert!(matches!(r, Answer::Err(_)), "no saved parameters: {r:?}");
    let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM, &cached.encode()).await;
    assert!(matches!(r, Answer::Ok(0)), "saved parameters: {r:?}");
    let early = b"0-RTT request through the service";
    let r = s
        .send_stream(-1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, early)
        .await;
    assert!(
        matches!(r, Answer::Ok(n) if n == early.len() as i64),
        "queued before the handshake: {r:?}"
    );
    let ours = match s.get(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[], 256).await {
        Answer::OptVal(v) => v,
        other => panic!("TRANSPORT_PARAM_EXT: {other:?}"),
    };
    let mut tls = rq::ClientConnection::new(config, rq::Version::V1, server_name, ours)
        .expect("rustls client");
    assert!(tls.zero_rtt_keys().is_some(), "rustls offers early data");
    let early_secret = secrets
        .get("CLIENT_EARLY_TRAFFIC_SECRET")
        .expect("early secret logged");
    install(&mut s, cipher, QUIC_CRYPTO_EARLY, 1, &early_secret).await;
    drive_client(&mut s, &mut tls, &secrets).await;
    assert!(tls.is_early_data_accepted(), "server accepted early data");
    let (sid, echo) = read_stream(&mut s).await;
    assert_eq!((sid, echo.as_slice()), (0, &early[..]));

    let (_server, conns) = tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .expect("server in time")
        .expect("server task");
    let stats = conns[1].stats().expect("server stats");
    assert!(
        stats.zero_rtt_bytes_accepted >= early.len() as u64,
        "server 0-RTT bytes: {stats:?}"
    );
    assert_eq!(conns[0].stats().expect("stats").zero_rtt_bytes_accepted, 0);
    assert!(matches!(s.call(&Request::Close).await, Answer::Ok(0)));
    service.abort();
}

/// Run the server handshake of `tls` on an accepted socket until the 1-RTT receive secret is
/// installed; with `early`, the 0-RTT receive secret goes in as soon as rustls accepted early
/// data. Returns whether it did. Then sends what TLS has left (the NewSessionTicket) at APP level.
async fn drive_server(s: &mut Sock, tls: &mut rq::ServerConnection, secrets: &Secrets) -> bool {
    let mut level = QUIC_CRYPTO_INITIAL;
    let mut peer_params_set = false;
    let mut early_installed = false;
    for _ in 0..50 {
        let (_, _, got_level, data) = s.recv_any().await;
        assert!(got_level.is_some(), "handshake message expected");
        tls.read_hs(&data).expect("client handshake data");
        if !peer_params_set {
            if let Some(p) = tls.quic_transport_parameters() {
                let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, p).await;
                assert!(matches!(r, Answer::Ok(0)), "peer params: {r:?}");
                peer_params_set = true;
            }
        }
        if !early_installed && tls.zero_rtt_keys().is_some() {
            let c = cipher_of(tls.negotiated_cipher_suite().expect("suite"));
            let secret = secrets
                .get("CLIENT_EARLY_TRAFFIC_SECRET")
                .expect("early secret logged");
            install(s, c, QUIC_CRYPTO_EARLY, 0, &secret).await;
            early_installed = true;
        }
        loop {
            let (change, wrote) = flush_tls(s, level, |b| tls.write_hs(b)).await;
            let c = tls.negotiated_cipher_suite().map(cipher_of);
            match change {
                Some(KeyChange::Handshake { .. }) => {
                    let (tx, rx) = (
                        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                    );
                    let c = c.expect("suite");
                    install_both(s, c, QUIC_CRYPTO_HANDSHAKE, secrets, tx, rx).await;
                    level = QUIC_CRYPTO_HANDSHAKE;
                }
                Some(KeyChange::OneRtt { .. }) => {
                    let tx = secrets.get("SERVER_TRAFFIC_SECRET_0").expect("sts");
                    install(s, c.expect("suite"), QUIC_CRYPTO_APP, 1, &tx).await;
                    level = QUIC_CRYPTO_APP;
                }
                None if !wrote => break,
                None => {}
            }
        }
        if !tls.is_handshaking() {
            let c = cipher_of(tls.negotiated_cipher_suite().expect("suite"));
            let rx = secrets.get("CLIENT_TRAFFIC_SECRET_0").expect("cts");
            install(s, c, QUIC_CRYPTO_APP, 0, &rx).await;
            // The tickets rustls writes once the handshake is done
            let _ = flush_tls(s, QUIC_CRYPTO_APP, |b| tls.write_hs(b)).await;
            return early_installed;
        }
    }
    panic!("server handshake did not finish");
}

/// An accepted socket whose application runs TLS itself takes 0-RTT: it installs the EARLY
/// receive secret once its TLS accepted early data; the early stream is readable after the
/// handshake (as in the kernel) and the quic-stack client learns its 0-RTT was accepted
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_socket_with_its_own_tls_takes_zero_rtt() {
    let (name, service) = start_service("srvext");
    let (mut l, addr) = listener(&name).await;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let secrets = Arc::new(Secrets::default());
    let mut stls = quic_stack::tls::server_config(
        vec![cert.clone()],
        key,
        vec![b"sample".to_vec()],
        None,
        true,
    )
    .expect("server tls");
    stls.key_log = secrets.clone();
    let stls = Arc::new(stls);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let ctls =
        quic_stack::tls::client_config(roots, vec![b"sample".to_vec()], None).expect("config");
    let mut cfg = ClientConfig::new(Arc::new(ctls));
    cfg.transport = Arc::new(TransportConfig {
        zero_rtt: true,
        ..TransportConfig::default()
    });
    let ep = common::loopback_client();

    let mut outcome = Vec::new();
    for round in 0..2 {
        secrets.clear();
        let conn = ep.connect(cfg.clone(), addr, "localhost").expect("connect");
        assert_eq!(conn.is_zero_rtt_available(), round == 1, "round {round}");
        let c = conn.clone();
        let client = tokio::spawn(async move {
            let (mut send, mut recv) = c.open_bi().await.expect("open");
            send.write_all(b"early to own TLS").await.expect("write");
            send.finish().expect("finish");
            let echo = recv.read_to_end(1 << 16).await.expect("echo");
            c.handshake().await.expect("handshake");
            echo
        });
        let mut s = l.accept().await;
        let ours = match s.get(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[], 256).await {
            Answer::OptVal(v) => v,
            other => panic!("TRANSPORT_PARAM_EXT: {other:?}"),
        };
        let mut tls =
            rq::ServerConnection::new(stls.clone(), rq::Version::V1, ours).expect("rustls server");
        let early = drive_server(&mut s, &mut tls, &secrets).await;
        let (sid, got) = read_stream(&mut s).await;
        assert_eq!(got, b"early to own TLS");
        let r = s.send_stream(sid, MSG_QUIC_STREAM_FIN, &got).await;
        assert!(matches!(r, Answer::Ok(16)), "echo: {r:?}");
        let echo = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("client in time")
            .expect("client task");
        assert_eq!(echo, b"early to own TLS");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = conn.stats().expect("stats");
        outcome.push((
            early,
            conn.zero_rtt_accepted(),
            stats.zero_rtt_bytes_accepted,
        ));
        conn.close(0, b"done");
        assert!(matches!(s.call(&Request::Close).await, Answer::Ok(0)));
    }
    assert_eq!(
        outcome[0],
        (false, None, 0),
        "first connection: full handshake"
    );
    assert!(outcome[1].0, "rustls accepted early data on the second");
    assert_eq!(
        outcome[1].1,
        Some(true),
        "the client saw its 0-RTT accepted"
    );
    assert!(outcome[1].2 >= 16, "0-RTT bytes accepted: {}", outcome[1].2);
    assert!(matches!(l.call(&Request::Close).await, Answer::Ok(0)));
    service.abort();
}
