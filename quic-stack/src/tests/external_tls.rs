//! External TLS: the test runs rustls's QUIC handshake itself on one side, moving handshake
//! bytes and traffic secrets through the connection's external-TLS controls, against a peer on
//! the built-in rustls session; the wire format must interoperate

use super::app_tls::{app_client, app_server, server_tls_config, AppTls};
use super::util::{Harness, Setup, ALPN};
use crate::connection::Event;
use crate::crypto::external::{Direction, ExternalTlsError};
use crate::crypto::Suite;
use crate::shared::{Dir, SpaceId};

/// The application's server TLS, started once the accepted connection (and its parameters)
/// exist
fn accept_with_app_server(h: &mut Harness) -> AppTls {
    let mut params_of_server = None;
    h.pair
        .drive_until(|p| {
            if let Some(&sh) = p.server().accepted.first() {
                params_of_server = p
                    .server_mut()
                    .conn(sh)
                    .external_local_params()
                    .map(<[u8]>::to_vec);
            }
            params_of_server.is_some()
        })
        .expect("accept");
    let params = params_of_server.expect("server connection accepted");
    app_server(&server_tls_config(&h.cert_key, false), params, false)
}

/// After the handshake: streams both ways and a datagram each way
fn exchange(h: &mut Harness) {
    let up = super::util::payload(50_000, 7);
    assert_eq!(h.transfer(Dir::Uni, &up), up);
    let bi = super::util::payload(20_000, 8);
    assert_eq!(h.transfer(Dir::Bi, &bi), bi);
    h.client_datagram(b"ping over external TLS");
    h.server_conn()
        .send_datagram(bytes::Bytes::from_static(b"pong"))
        .expect("server datagram");
    let (ch, sh) = (h.ch, h.sh.expect("server"));
    let (mut got_c, mut got_s) = (None, None);
    h.pair
        .drive_until(|p| {
            got_s = got_s
                .take()
                .or_else(|| p.server_mut().conn(sh).recv_datagram());
            got_c = got_c
                .take()
                .or_else(|| p.client_mut().conn(ch).recv_datagram());
            got_s.is_some() && got_c.is_some()
        })
        .expect("datagrams");
    assert_eq!(got_s.as_deref(), Some(&b"ping over external TLS"[..]));
    assert_eq!(got_c.as_deref(), Some(&b"pong"[..]));
}

#[test]
fn external_client_against_builtin_server() {
    let mut h = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    assert!(h.client_conn().is_external_tls());
    let client_config = super::util::tls_client(h.cert_key.0.clone());
    let mut app = app_client(&client_config, h.client_conn());
    let ch = h.ch;
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            app.pump(p.client_mut().conn(ch), now);
            let s = p.server();
            let server_done = s
                .accepted
                .first()
                .is_some_and(|&h| s.has_event(h, |e| *e == Event::Connected));
            server_done && p.client().has_event(ch, |e| *e == Event::Connected)
        })
        .expect("handshake");
    h.sh = h.server().accepted.first().copied();
    assert!(!app.tls.is_handshaking());
    // The built-in server saw the ALPN the application's TLS offered
    let alpn = h.server_conn().handshake_data().and_then(|d| d.alpn);
    assert_eq!(alpn.as_deref(), Some(ALPN));
    exchange(&mut h);
    // Key updates derive from the installed secrets (RFC 9001 §6)
    h.client_conn().initiate_key_update();
    let more = super::util::payload(10_000, 9);
    assert_eq!(h.transfer(Dir::Uni, &more), more);
    assert!(
        h.client_conn().key_phase(),
        "the client moved to the next key phase"
    );
    assert!(h.server_conn().key_phase(), "the server followed");
}

#[test]
fn external_server_against_builtin_client() {
    let mut h = Harness::new(Setup {
        server_external_tls: true,
        ..Setup::default()
    });
    let ch = h.ch;
    let mut app_tls = accept_with_app_server(&mut h);
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            let Some(&sh) = p.server().accepted.first() else {
                return false;
            };
            app_tls.pump(p.server_mut().conn(sh), now);
            let s = p.server();
            s.has_event(sh, |e| *e == Event::Connected)
                && p.client().has_event(ch, |e| *e == Event::Connected)
        })
        .expect("handshake");
    h.sh = h.server().accepted.first().copied();
    assert!(!app_tls.tls.is_handshaking());
    exchange(&mut h);
}

#[test]
fn secrets_follow_the_kernel_rules() {
    let mut h = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    let now = h.now();
    let c = h.client_conn();
    let secret = [7u8; 32];
    assert_eq!(
        c.external_install_secret(
            now,
            SpaceId::Initial,
            Direction::Send,
            Suite::Aes128Gcm,
            &secret
        ),
        Err(ExternalTlsError::InitialLevel)
    );
    assert_eq!(
        c.external_install_secret(
            now,
            SpaceId::Handshake,
            Direction::Send,
            Suite::Aes256Gcm,
            &secret
        ),
        Err(ExternalTlsError::SecretLength(32))
    );
    c.external_install_secret(
        now,
        SpaceId::Handshake,
        Direction::Send,
        Suite::Aes128Gcm,
        &secret,
    )
    .expect("first install");
    assert_eq!(
        c.external_install_secret(
            now,
            SpaceId::Handshake,
            Direction::Send,
            Suite::Aes128Gcm,
            &secret
        ),
        Err(ExternalTlsError::AlreadyInstalled)
    );
    // A built-in connection refuses the external controls
    let mut builtin = Harness::new(Setup::default());
    let now = builtin.now();
    assert_eq!(
        builtin
            .client_conn()
            .external_send_handshake(now, SpaceId::Initial, b"x"),
        Err(ExternalTlsError::NotExternal)
    );
    assert!(builtin.client_conn().external_local_params().is_none());
}

#[test]
fn bad_peer_parameters_close_the_connection() {
    let mut h = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    let now = h.now();
    let c = h.client_conn();
    // A truncated parameter (id 0x01 max_idle_timeout, length 4, one byte of value)
    let r = c.external_set_peer_params(now, &[0x01, 0x04, 0x05]);
    assert!(matches!(r, Err(ExternalTlsError::Failed(_))), "{r:?}");
    assert!(c.is_closed());
    // Only once
    assert_eq!(
        c.external_set_peer_params(now, &[]),
        Err(ExternalTlsError::PeerParamsSet)
    );
}

/// The client sends a datagram right behind its Finished; the server's application installs
/// the 1-RTT read secret only when it gets round to reading the Finished from the socket (here
/// 5 ms later). The datagram's packet waits for the key instead of being dropped (RFC 9001
/// §5.7), as the kernel keeps it too: a lost datagram is never resent.
#[test]
fn one_rtt_packets_wait_for_the_applications_secret() {
    let mut h = Harness::new(Setup {
        server_external_tls: true,
        ..Setup::default()
    });
    let ch = h.ch;
    let mut app_tls = accept_with_app_server(&mut h);
    let app_delay = std::time::Duration::from_millis(5);
    let mut next_pump = h.now();
    let mut datagram_queued = false;
    let mut got = None;
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            if !datagram_queued && p.client().has_event(ch, |e| *e == Event::Connected) {
                p.client_mut()
                    .conn(ch)
                    .send_datagram(bytes::Bytes::from_static(b"right behind Finished"))
                    .expect("datagram");
                datagram_queued = true;
            }
            let Some(&sh) = p.server().accepted.first() else {
                return false;
            };
            if now >= next_pump {
                app_tls.pump(p.server_mut().conn(sh), now);
                next_pump = now + app_delay;
            }
            if got.is_none() {
                got = p.server_mut().conn(sh).recv_datagram();
            }
            got.is_some()
        })
        .expect("the datagram reaches the server");
    assert_eq!(got.as_deref(), Some(&b"right behind Finished"[..]));
    let sh = h.server().accepted.first().copied().expect("accepted");
    h.pair
        .drive_until(|p| p.server().has_event(sh, |e| *e == Event::Connected))
        .expect("the server reports the handshake complete");
}
