//! External TLS over the service protocol: the test is the application and runs TLS 1.3 with
//! rustls's QUIC API itself, moving handshake bytes with QUIC_HANDSHAKE_INFO, installing the
//! traffic secrets with QUIC_SOCKOPT_CRYPTO_SECRET and carrying the transport-parameters
//! extension with QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, exactly as libquic does with the kernel.
//! The peer is a plain quic-stack server on its built-in TLS: the wire format interoperates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quic_stack::config::TransportConfig;
use quic_stack::driver::Endpoint;
use quic_stack::sockapi::consts::*;
use quic_stack::sockapi::msg::{HandshakeArgs, Request};
use quic_stack::sockapi::types::{CryptoSecret, StreamInfo, TransportParam};
use rustls::quic::{self as rq, KeyChange};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

mod common;
use common::app_tls::{cipher_of, flush_tls, install as install_secret, install_both, Secrets};
use common::{loopback_server, start_service, Answer, Recvd, Sock};

/// Install the client's tx and rx secrets of `level`
async fn install(s: &mut Sock, tls: &rq::ClientConnection, secrets: &Secrets, level: u8) {
    let (tx, rx) = if level == QUIC_CRYPTO_HANDSHAKE {
        (
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        )
    } else {
        ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")
    };
    let cipher = cipher_of(tls.negotiated_cipher_suite().expect("suite"));
    install_both(s, cipher, level, secrets, tx, rx).await;
}

/// Install one traffic secret of `level` (`send`: ours) on an accepted socket
async fn install_server(
    s: &mut Sock,
    tls: &rq::ServerConnection,
    secrets: &Secrets,
    level: u8,
    send: u8,
) {
    let label = match (level == QUIC_CRYPTO_HANDSHAKE, send != 0) {
        (true, true) => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        (true, false) => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        (false, true) => "SERVER_TRAFFIC_SECRET_0",
        (false, false) => "CLIENT_TRAFFIC_SECRET_0",
    };
    let cipher = cipher_of(tls.negotiated_cipher_suite().expect("suite"));
    install_secret(s, cipher, level, send, &secrets.logged(label)).await;
}

fn server_endpoint(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> (Endpoint, SocketAddr) {
    let tls = quic_stack::tls::server_config(chain, key, vec![b"sample".to_vec()], None, false)
        .expect("tls");
    let transport = TransportConfig {
        datagram_receive_buffer_size: Some(1 << 16),
        ..TransportConfig::default()
    };
    loopback_server(tls, transport)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_runs_tls_against_a_builtin_server() {
    let (name, service) = start_service("quictun-sockd-exttls");

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cert = ck.cert.der().clone();
    let (server, server_addr) = server_endpoint(vec![cert.clone()], key);
    let srv = tokio::spawn(async move {
        let conn = server.accept().await.expect("incoming");
        conn.handshake().await.expect("server handshake");
        // Echo every bidirectional stream and every datagram
        common::echo_bidi_streams(conn.clone());
        let c = conn.clone();
        tokio::spawn(async move {
            while let Ok(d) = c.read_datagram().await {
                let _ = c.send_datagram(d);
            }
        });
        (server, conn)
    });

    let mut s = Sock::open(&name).await;
    let tp = TransportParam {
        max_datagram_frame_size: 1200,
        ..TransportParam::default()
    };
    let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM, &tp.encode()).await;
    assert!(matches!(r, Answer::Ok(0)), "transport param: {r:?}");
    // Before connect the socket is not ESTABLISHING: no secrets, no parameters
    let r = s.get(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[], 256).await;
    assert!(
        matches!(r, Answer::Err(e) if e == nix::errno::Errno::EINVAL as i32),
        "{r:?}"
    );
    s.connect(server_addr).await;
    let ours = match s.get(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[], 256).await {
        Answer::OptVal(v) => v,
        other => panic!("get TRANSPORT_PARAM_EXT: {other:?}"),
    };
    assert!(!ours.is_empty());

    let secrets = Arc::new(Secrets::default());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let mut config =
        quic_stack::tls::client_config(roots, vec![b"sample".to_vec()], None).expect("config");
    config.key_log = secrets.clone();
    let server_name = ServerName::try_from("localhost").expect("name");
    let mut tls = rq::ClientConnection::new(Arc::new(config), rq::Version::V1, server_name, ours)
        .expect("rustls client");

    let mut level = QUIC_CRYPTO_INITIAL;
    let mut peer_params_set = false;
    let mut established = false;
    for _ in 0..50 {
        loop {
            let (change, wrote) = flush_tls(&mut s, level, |b| tls.write_hs(b)).await;
            match change {
                Some(KeyChange::Handshake { .. }) => {
                    install(&mut s, &tls, &secrets, QUIC_CRYPTO_HANDSHAKE).await;
                    level = QUIC_CRYPTO_HANDSHAKE;
                }
                Some(KeyChange::OneRtt { .. }) => {
                    install(&mut s, &tls, &secrets, QUIC_CRYPTO_APP).await;
                    level = QUIC_CRYPTO_APP;
                    established = true;
                }
                None if !wrote => break,
                None => {}
            }
        }
        if established {
            break;
        }
        let (_, _, got_level, data) = s.recv_any().await;
        let got_level = got_level.expect("handshake message carries QUIC_HANDSHAKE_INFO");
        assert!(
            got_level == QUIC_CRYPTO_INITIAL || got_level == QUIC_CRYPTO_HANDSHAKE,
            "level {got_level}"
        );
        tls.read_hs(&data).expect("server handshake data");
        if !peer_params_set {
            if let Some(p) = tls.quic_transport_parameters() {
                let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, p).await;
                assert!(matches!(r, Answer::Ok(0)), "peer params: {r:?}");
                peer_params_set = true;
            }
        }
    }
    assert!(
        established && !tls.is_handshaking(),
        "handshake did not finish"
    );
    let (_server, conn) = tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .expect("server in time")
        .expect("server task");
    assert_eq!(
        conn.with_core(|c, _| c.handshake_data().and_then(|d| d.alpn))
            .flatten()
            .as_deref(),
        Some(&b"sample"[..])
    );
    // ESTABLISHED: secrets can no longer be installed
    let late = CryptoSecret {
        send: 1,
        level: QUIC_CRYPTO_HANDSHAKE,
        cipher_type: TLS_CIPHER_AES_GCM_128,
        secret: [0; QUIC_CRYPTO_SECRET_BUFFER_SIZE],
    };
    let r = s.set(QUIC_SOCKOPT_CRYPTO_SECRET, &late.encode()).await;
    assert!(
        matches!(r, Answer::Err(e) if e == nix::errno::Errno::EINVAL as i32),
        "{r:?}"
    );

    // A stream and a datagram, both echoed by the built-in server
    let r = s
        .call(&Request::SendMsg {
            flags: 0,
            stream_info: Some(StreamInfo {
                stream_id: -1,
                stream_flags: MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN,
            }),
            handshake_level: None,
            payload: b"over external TLS",
        })
        .await;
    assert!(matches!(r, Answer::Ok(17)), "stream send: {r:?}");
    let r = s
        .call(&Request::SendMsg {
            flags: MSG_QUIC_DATAGRAM,
            stream_info: None,
            handshake_level: None,
            payload: b"datagram",
        })
        .await;
    assert!(matches!(r, Answer::Ok(8)), "datagram send: {r:?}");
    let (mut stream_echo, mut dgram_echo) = (Vec::new(), None);
    for _ in 0..50 {
        let (flags, si, lvl, data) = s.recv_any().await;
        if lvl.is_some() || flags & MSG_QUIC_NOTIFICATION != 0 {
            // A NewSessionTicket (APP level) or an event: not what this test reads
            continue;
        }
        if flags & MSG_QUIC_DATAGRAM != 0 {
            dgram_echo = Some(data);
        } else if let Some(si) = si {
            stream_echo.extend_from_slice(&data);
            if si.stream_flags & MSG_QUIC_STREAM_FIN != 0 && dgram_echo.is_some() {
                break;
            }
            continue;
        }
        if dgram_echo.is_some() && stream_echo.len() == 17 {
            break;
        }
    }
    assert_eq!(stream_echo, b"over external TLS");
    assert_eq!(dgram_echo.as_deref(), Some(&b"datagram"[..]));
    let r = s.call(&Request::Close).await;
    assert!(matches!(r, Answer::Ok(0)));
    service.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peer_parameters_fail_like_the_kernel() {
    let (name, service) = start_service("quictun-sockd-exttls-bad");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let (_server, server_addr) = server_endpoint(vec![ck.cert.der().clone()], key);

    let mut s = Sock::open(&name).await;
    s.connect(server_addr).await;
    let einval = nix::errno::Errno::EINVAL as i32;
    // Handshake bytes at 0-RTT level: external TLS offers no early data
    let r = s.send_handshake(QUIC_CRYPTO_EARLY, b"x").await;
    assert!(matches!(r, Answer::Err(e) if e == einval), "{r:?}");
    // Stream data before ESTABLISHED
    let r = s
        .call(&Request::SendMsg {
            flags: 0,
            stream_info: Some(StreamInfo {
                stream_id: -1,
                stream_flags: MSG_QUIC_STREAM_NEW,
            }),
            handshake_level: None,
            payload: b"early",
        })
        .await;
    assert!(
        matches!(r, Answer::Err(e) if e == nix::errno::Errno::ENOTCONN as i32),
        "{r:?}"
    );
    // AES-128-CCM has no QUIC packet protection here
    let ccm = CryptoSecret {
        send: 1,
        level: QUIC_CRYPTO_HANDSHAKE,
        cipher_type: TLS_CIPHER_AES_CCM_128,
        secret: [1; QUIC_CRYPTO_SECRET_BUFFER_SIZE],
    };
    let r = s.set(QUIC_SOCKOPT_CRYPTO_SECRET, &ccm.encode()).await;
    assert!(
        matches!(r, Answer::Err(e) if e == nix::errno::Errno::EOPNOTSUPP as i32),
        "{r:?}"
    );
    // The application's TLS started the connection: the built-in helper is refused now
    let r = s.client_handshake().await;
    assert!(matches!(r, Answer::Err(e) if e == einval), "{r:?}");
    // A truncated parameter: refused, and the connection is gone
    let r = s
        .set(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[0x01, 0x04, 0x05])
        .await;
    assert!(matches!(r, Answer::Err(e) if e == einval), "{r:?}");
    let mut gone = false;
    for _ in 0..100 {
        match s.recvmsg_once(1024).await {
            Recvd::NotConnected => {
                gone = true;
                break;
            }
            Recvd::Again => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("recvmsg after failure: {other:?}"),
        }
    }
    assert!(gone, "recvmsg never reported the closed connection");
    service.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_socket_runs_the_applications_tls() {
    let (name, service) = start_service("quictun-sockd-exttls-srv");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cert = ck.cert.der().clone();
    let einval = nix::errno::Errno::EINVAL as i32;

    let mut l = Sock::open(&name).await;
    let tp = TransportParam {
        max_datagram_frame_size: 1200,
        ..TransportParam::default()
    };
    let r = l.set(QUIC_SOCKOPT_TRANSPORT_PARAM, &tp.encode()).await;
    assert!(matches!(r, Answer::Ok(0)), "transport param: {r:?}");
    // No listener flag: as in the kernel, accepted sockets decide their TLS after accept()
    let addr = l.bind_listen(4).await;

    // The peer: a plain quic-stack client on its built-in TLS, echoing what the server sends
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let ctls =
        quic_stack::tls::client_config(roots, vec![b"sample".to_vec()], None).expect("config");
    let mut ccfg = quic_stack::config::ClientConfig::new(Arc::new(ctls));
    ccfg.transport = Arc::new(TransportConfig {
        datagram_receive_buffer_size: Some(1 << 16),
        ..TransportConfig::default()
    });
    let cep = common::loopback_client();
    let conn = cep.connect(ccfg, addr, "localhost").expect("connect");
    let client = tokio::spawn(async move {
        conn.handshake().await.expect("client handshake");
        let alpn = conn
            .with_core(|c, _| c.handshake_data().and_then(|d| d.alpn))
            .flatten();
        let (mut s, mut r) = conn.open_bi().await.expect("open stream");
        s.write_all(b"to an accepted socket").await.expect("write");
        s.finish().expect("finish");
        conn.send_datagram(bytes::Bytes::from_static(b"ping"))
            .expect("datagram");
        let echo = r.read_to_end(1 << 16).await.expect("stream echo");
        let dgram = conn.read_datagram().await.expect("datagram echo");
        (cep, conn, alpn, echo, dgram)
    });

    let mut s = l.accept().await;
    let ours = match s.get(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &[], 256).await {
        Answer::OptVal(v) => v,
        other => panic!("get TRANSPORT_PARAM_EXT: {other:?}"),
    };
    let secrets = Arc::new(Secrets::default());
    let mut config =
        quic_stack::tls::server_config(vec![cert], key, vec![b"sample".to_vec()], None, false)
            .expect("server tls");
    config.key_log = secrets.clone();
    let mut tls =
        rq::ServerConnection::new(Arc::new(config), rq::Version::V1, ours).expect("rustls server");

    let mut level = QUIC_CRYPTO_INITIAL;
    let mut peer_params_set = false;
    let mut app_rx = false;
    let mut took_part = false;
    for _ in 0..50 {
        let (_, _, got_level, data) = s.recv_any().await;
        let got_level = got_level.expect("handshake message carries QUIC_HANDSHAKE_INFO");
        assert!(
            got_level == QUIC_CRYPTO_INITIAL || got_level == QUIC_CRYPTO_HANDSHAKE,
            "level {got_level}"
        );
        tls.read_hs(&data).expect("client handshake data");
        if !peer_params_set {
            if let Some(p) = tls.quic_transport_parameters() {
                let r = s.set(QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, p).await;
                assert!(matches!(r, Answer::Ok(0)), "peer params: {r:?}");
                peer_params_set = true;
            }
        }
        loop {
            let (change, wrote) = flush_tls(&mut s, level, |b| tls.write_hs(b)).await;
            if wrote && !took_part {
                // Having sent its first flight, the application owns the handshake: the
                // service's TLS can no longer take it over
                took_part = true;
                let r = s
                    .call(&Request::Handshake(HandshakeArgs {
                        server: true,
                        hostname: None,
                        alpns: Some(b"sample"),
                        pkey: None,
                        cert: None,
                    }))
                    .await;
                assert!(matches!(r, Answer::Err(e) if e == einval), "{r:?}");
            }
            match change {
                Some(KeyChange::Handshake { .. }) => {
                    install_server(&mut s, &tls, &secrets, QUIC_CRYPTO_HANDSHAKE, 1).await;
                    install_server(&mut s, &tls, &secrets, QUIC_CRYPTO_HANDSHAKE, 0).await;
                    level = QUIC_CRYPTO_HANDSHAKE;
                }
                Some(KeyChange::OneRtt { .. }) => {
                    // The 1-RTT read key follows the client's Finished (as with GnuTLS)
                    install_server(&mut s, &tls, &secrets, QUIC_CRYPTO_APP, 1).await;
                    level = QUIC_CRYPTO_APP;
                }
                None if !wrote => break,
                None => {}
            }
        }
        if !tls.is_handshaking() {
            install_server(&mut s, &tls, &secrets, QUIC_CRYPTO_APP, 0).await;
            app_rx = true;
            break;
        }
    }
    assert!(app_rx, "handshake did not finish");

    // The client's stream and datagram arrive; echo both
    let (mut got, mut dgram, mut sid) = (Vec::new(), None, None);
    for _ in 0..50 {
        let (flags, si, lvl, data) = s.recv_any().await;
        if lvl.is_some() || flags & MSG_QUIC_NOTIFICATION != 0 {
            continue;
        }
        if flags & MSG_QUIC_DATAGRAM != 0 {
            dgram = Some(data);
        } else if let Some(si) = si {
            got.extend_from_slice(&data);
            sid = Some(si.stream_id);
            if si.stream_flags & MSG_QUIC_STREAM_FIN == 0 {
                continue;
            }
        }
        if dgram.is_some() && got.len() == 21 {
            break;
        }
    }
    assert_eq!(got, b"to an accepted socket");
    assert_eq!(dgram.as_deref(), Some(&b"ping"[..]));
    let r = s
        .call(&Request::SendMsg {
            flags: 0,
            stream_info: Some(StreamInfo {
                stream_id: sid.expect("stream id"),
                stream_flags: MSG_QUIC_STREAM_FIN,
            }),
            handshake_level: None,
            payload: b"echo",
        })
        .await;
    assert!(matches!(r, Answer::Ok(4)), "stream send: {r:?}");
    let r = s
        .call(&Request::SendMsg {
            flags: MSG_QUIC_DATAGRAM,
            stream_info: None,
            handshake_level: None,
            payload: b"pong",
        })
        .await;
    assert!(matches!(r, Answer::Ok(4)), "datagram send: {r:?}");
    let (_cep, _conn, alpn, echo, dgram) = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client in time")
        .expect("client task");
    assert_eq!(alpn.as_deref(), Some(&b"sample"[..]));
    assert_eq!(echo, b"echo");
    assert_eq!(&dgram[..], b"pong");
    let r = s.call(&Request::Close).await;
    assert!(matches!(r, Answer::Ok(0)));
    let r = l.call(&Request::Close).await;
    assert!(matches!(r, Answer::Ok(0)));
    service.abort();
}
