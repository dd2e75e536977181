//! Deferred TLS on the server: every accepted connection starts in external mode (the
//! kernel's accept-before-handshake model), and the built-in rustls session is attached
//! afterwards with a certificate chosen then ([`Connection::attach_server_tls`])

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::util::{cert, payload, tls_server_with, Harness, Setup};
use crate::config::TransportConfig;
use crate::connection::{Connection, Event};
use crate::crypto::external::{Direction, ExternalTlsError};
use crate::crypto::Suite;
use crate::endpoint::ConnectionHandle;
use crate::shared::{Dir, StreamId};

fn deferred_setup(seed: u64) -> Setup {
    Setup {
        seed,
        server_external_tls: true,
        ..Setup::default()
    }
}

/// Drive until the server has accepted connection number `index`, and return its handle
fn accepted(h: &mut Harness, index: usize) -> ConnectionHandle {
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| p.server().accepted.len() > index)
        .unwrap_or_else(|e| panic!("seed {seed}: no connection accepted: {e:?}"));
    h.server().accepted[index]
}

fn attach(h: &mut Harness, sh: ConnectionHandle, crypto: Arc<rustls::ServerConfig>) {
    let now = h.now();
    h.server()
        .conn(sh)
        .attach_server_tls(now, crypto)
        .expect("attach built-in TLS");
}

#[test]
fn built_in_tls_attached_after_accept_serves_its_certificate() {
    let mut h = Harness::new(deferred_setup(71));
    let ch = h.ch;
    let sh = accepted(&mut h, 0);
    assert!(h.server().conn(sh).is_external_tls());
    // Nobody decided yet: the client waits (its Initials are only acknowledged)
    let until = h.now() + Duration::from_millis(500);
    h.pair.net.run_to(until).expect("run");
    assert!(!h.client().has_event(ch, |e| *e == Event::Connected));
    assert!(!h.server().conn(sh).is_closed());

    // The harness's client trusts the harness certificate; give the server that one (a
    // fresh one would fail verification, see below)
    let (c, k) = (h.cert_key.0.clone(), h.cert_key.1.clone_key());
    attach(&mut h, sh, tls_server_with(c.clone(), k, false));
    assert!(!h.server().conn(sh).is_external_tls());
    h.handshake();
    assert_eq!(h.sh, Some(sh));
    assert_eq!(
        h.client_conn().peer_identity().as_deref(),
        Some(&[c.to_vec()][..]),
        "the client saw the attached certificate"
    );
    let alpn = h.server_conn().handshake_data().and_then(|d| d.alpn);
    assert_eq!(alpn.as_deref(), Some(super::util::ALPN));
    let data = payload(40_000, 71);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

#[test]
fn attached_certificate_is_the_one_verified() {
    let mut h = Harness::new(deferred_setup(72));
    let ch = h.ch;
    let sh = accepted(&mut h, 0);
    // A certificate the client does not trust: the client refuses it, so the attached
    // session (not some listener default) is what answered
    let (other, key) = cert();
    attach(&mut h, sh, tls_server_with(other, key, false));
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .expect("client refuses the certificate");
}

#[test]
fn attach_refused_once_the_application_took_part() {
    let mut h = Harness::new(deferred_setup(73));
    let sh = accepted(&mut h, 0);
    let now = h.now();
    let (c, k) = (h.cert_key.0.clone(), h.cert_key.1.clone_key());
    let crypto = tls_server_with(c, k, false);
    let conn: &mut Connection = h.server().conn(sh);
    // Reading the ClientHello and our parameters is not taking part
    assert!(conn.external_local_params().is_some());
    let (_, hello) = conn
        .external_recv_handshake()
        .expect("the ClientHello waits");
    assert_eq!(
        hello.first(),
        Some(&1),
        "a ClientHello (TLS handshake type 1)"
    );
    conn.external_install_secret(
        now,
        crate::SpaceId::Handshake,
        Direction::Send,
        Suite::Aes128Gcm,
        &[7; 32],
    )
    .expect("secret");
    assert_eq!(
        conn.attach_server_tls(now, crypto.clone()),
        Err(ExternalTlsError::Committed)
    );
    assert!(conn.is_external_tls());
    // A built-in connection cannot take a second TLS session, nor can a client
    let mut h2 = Harness::new(Setup::default());
    h2.handshake();
    let now = h2.now();
    assert_eq!(
        h2.server_conn().attach_server_tls(now, crypto.clone()),
        Err(ExternalTlsError::NotExternal)
    );
    let mut h3 = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    let now = h3.now();
    assert_eq!(
        h3.client_conn().attach_server_tls(now, crypto),
        Err(ExternalTlsError::Committed)
    );
}

#[test]
fn late_attach_after_the_client_read_the_hello_still_works() {
    // The application peeked at the ClientHello (recvmsg) and then chose the built-in TLS:
    // the replay holds everything, not just what is unread
    let mut h = Harness::new(deferred_setup(74));
    let sh = accepted(&mut h, 0);
    while h.server().conn(sh).external_recv_handshake().is_some() {}
    let until = h.now() + Duration::from_millis(300);
    h.pair.net.run_to(until).expect("run");
    let (c, k) = (h.cert_key.0.clone(), h.cert_key.1.clone_key());
    attach(&mut h, sh, tls_server_with(c, k, false));
    h.handshake();
    let data = payload(5_000, 74);
    assert_eq!(h.transfer(Dir::Uni, &data), data);
}

/// Resumption and 0-RTT of the built-in server survive the deferral: the second connection
/// resumes with the first one's ticket, its early data is accepted and arrives intact
#[test]
fn resumption_and_zero_rtt_after_attach() {
    let mut h = Harness::new(Setup {
        transport: TransportConfig {
            zero_rtt: true,
            ..TransportConfig::default()
        },
        ..deferred_setup(75)
    });
    let (c, k) = (h.cert_key.0.clone(), h.cert_key.1.clone_key());
    // One config for both connections: rustls resumes from its session store / ticketer
    let crypto = tls_server_with(c, k, true);
    let sh = accepted(&mut h, 0);
    attach(&mut h, sh, crypto.clone());
    h.handshake();
    h.pair.drive().expect("settle: the ticket arrives");

    let ch2 = h.connect_again();
    let data = payload(3_000, 75);
    let c2 = h.client().conn(ch2);
    assert!(c2.is_zero_rtt_available(), "the ticket allows 0-RTT");
    let id = c2.open(Dir::Bi).expect("0-RTT stream");
    assert_eq!(c2.write(id, &data).expect("0-RTT write"), data.len());
    c2.finish(id).expect("finish");
    c2.send_datagram(Bytes::from_static(b"early"))
        .expect("0-RTT datagram");

    let sh2 = accepted(&mut h, 1);
    assert!(h.server().conn(sh2).is_external_tls());
    attach(&mut h, sh2, crypto);
    let mut got = Vec::new();
    let mut stream: Option<StreamId> = None;
    let mut fin = false;
    let mut buf = vec![0u8; 16 * 1024];
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            let s = p.server_mut().conn(sh2);
            if stream.is_none() {
                stream = s.accept(Dir::Bi);
            }
            if let Some(sid) = stream {
                while !fin {
                    match s.read(sid, &mut buf) {
                        Ok(Some(r)) if r.len > 0 || r.fin => {
                            got.extend_from_slice(&buf[..r.len]);
                            fin = r.fin;
                        }
                        _ => break,
                    }
                }
            }
            fin && p.client().has_event(ch2, |e| *e == Event::Connected)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: resumed transfer: {e:?}"));
    assert_eq!(got, data);
    assert_eq!(
        h.client().conn(ch2).zero_rtt_accepted(),
        Some(true),
        "the attached session accepted early data"
    );
    // The 0-RTT packets that came before the attach were kept and opened, not resent
    assert!(h.server().conn(sh2).stats().zero_rtt_bytes_accepted > 0);
    assert_eq!(h.client().conn(ch2).stats().zero_rtt_packets_resent, 0);
    assert!(h.server().has_event(sh2, |e| *e == Event::DatagramReceived));
}

/// Nobody attaches and the application runs no TLS: the client waits, and the idle timeout
/// ends both sides (what the socket service documents for such an accepted socket)
#[test]
fn undecided_connection_ends_at_idle_timeout() {
    let mut h = Harness::new(Setup {
        transport: TransportConfig {
            idle_timeout: Some(Duration::from_secs(5)),
            ..TransportConfig::default()
        },
        ..deferred_setup(76)
    });
    let ch = h.ch;
    let sh = accepted(&mut h, 0);
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            p.client().lost_reason(ch).is_some() && p.server().lost_reason(sh).is_some()
        })
        .unwrap_or_else(|e| panic!("seed {seed}: still alive: {e:?}"));
    assert!(!h.client().has_event(ch, |e| *e == Event::Connected));
    assert!(h.now() - h.pair.net.start() >= Duration::from_secs(5));
}
