//! 0-RTT with external TLS on both sides (the kernel model, RFC 9001 §4.6): the client's
//! application saves the server's transport parameters and its TLS keeps the ticket; on the
//! next connection it sets the saved parameters, writes, and installs the early secret, which
//! releases the data as 0-RTT. The server's application installs the early read secret once
//! its TLS accepts, and the 0-RTT packets that arrived before are processed then.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::app_tls::{app_client, app_server, server_tls_config, AppTls};
use super::util::{payload, tls_client, write_early, Harness, Setup, StreamReader};
use crate::connection::{Connection, Event, RememberedParamsError};
use crate::crypto::external::{Direction, ExternalTlsError};
use crate::crypto::Suite;
use crate::endpoint::ConnectionHandle;
use crate::shared::{Dir, StreamId};
use crate::transport_params::TransportParameters;

/// Both TLS configurations, shared by the connections so the second one resumes the first
struct Tls {
    client: Arc<rustls::ClientConfig>,
    server: rustls::ServerConfig,
}

/// What the application of a resumed connection did and saw
struct Resumed {
    ch: ConnectionHandle,
    sh: ConnectionHandle,
    received: Vec<u8>,
    read_during_handshake: bool,
    datagram: Option<Bytes>,
    client_app: AppTls,
}

fn harness(seed: u64) -> (Harness, Tls) {
    lossy_harness(seed, 0.0)
}

fn lossy_harness(seed: u64, loss: f64) -> (Harness, Tls) {
    let h = Harness::new(Setup {
        seed,
        client_external_tls: true,
        server_external_tls: true,
        link: crate::sim::LinkConfig {
            loss,
            ..crate::sim::LinkConfig::default()
        },
        ..Setup::default()
    });
    let tls = Tls {
        client: tls_client(h.cert_key.0.clone()),
        server: server_tls_config(&h.cert_key, true),
    };
    (h, tls)
}

/// The server application's TLS on accepted connection `s`: started on the first call, once
/// the connection's parameters exist, then pumped
fn pump_server(
    app: &mut Option<AppTls>,
    config: &rustls::ServerConfig,
    reject: bool,
    s: &mut Connection,
    now: Instant,
) {
    app.get_or_insert_with(|| {
        let params = s.external_local_params().expect("external").to_vec();
        app_server(config, params, reject)
    })
    .pump(s, now);
}

/// Both applications' TLS until connected, then until the ticket reached the client; returns
/// the server's parameters as the client application saves them (TRANSPORT_PARAM, remote=1)
fn first_connection(h: &mut Harness, tls: &Tls) -> TransportParameters {
    let ch = h.ch;
    let mut client = app_client(&tls.client, h.client_conn());
    let mut server: Option<AppTls> = None;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            client.pump(p.client_mut().conn(ch), now);
            let Some(&sh) = p.server().accepted.first() else {
                return false;
            };
            let s = p.server_mut().conn(sh);
            pump_server(&mut server, &tls.server, false, s, now);
            // The NewSessionTicket follows the handshake at the 1-RTT level
            client.app_level_reads > 0 && p.server().has_event(sh, |e| *e == Event::Connected)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: first connection: {e:?}"));
    h.sh = h.server().accepted.first().copied();
    h.client_conn()
        .peer_params()
        .cloned()
        .expect("server parameters after the handshake")
}

/// What the client application tells the connection about the server's 0-RTT verdict
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// Nothing (the kernel API has no way to)
    Untold,
    /// What its TLS saw
    Reported,
    /// The opposite of the truth: a broken application
    Misreported(bool),
}

/// A second connection: saved parameters, data written, then the application's TLS resumes
/// with early data; drive until the server read the whole stream and both are connected
fn resumed(
    h: &mut Harness,
    tls: &Tls,
    saved: &TransportParameters,
    data: &[u8],
    reject: bool,
    verdict: Verdict,
) -> Resumed {
    let accepted_before = h.server().accepted.len();
    let now = h.now();
    let ch = h.connect_again();
    let c = h.client().conn(ch);
    assert_eq!(
        c.open(Dir::Bi),
        None,
        "no stream credit before the saved parameters"
    );
    c.set_remembered_peer_params(saved)
        .expect("client still establishing");
    let id = c.open(Dir::Bi).expect("remembered stream limit");
    write_early(c, id, data);
    assert!(!c.is_zero_rtt_available(), "no early secret yet");
    let mut client_app = app_client(&tls.client, c);
    client_app.report_early_verdict = verdict != Verdict::Untold;
    if let Verdict::Misreported(v) = verdict {
        client_app.false_verdict = Some(v);
    }
    client_app.pump(c, now);
    assert!(client_app.early_installed(), "rustls offers early data");
    assert!(
        c.is_zero_rtt_available(),
        "the early secret releases the data"
    );

    let mut server_app: Option<AppTls> = None;
    let mut reader = StreamReader::new();
    let mut server_stream: Option<StreamId> = None;
    let mut datagram = None;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            client_app.pump(p.client_mut().conn(ch), now);
            let Some(&sh) = p.server().accepted.get(accepted_before) else {
                return false;
            };
            let s = p.server_mut().conn(sh);
            pump_server(&mut server_app, &tls.server, reject, s, now);
            datagram = datagram.take().or_else(|| s.recv_datagram());
            if server_stream.is_none() {
                server_stream = s.accept(Dir::Bi);
            }
            if let Some(sid) = server_stream {
                reader.read(s, sid);
            }
            let done = reader.fin
                && p.server().has_event(sh, |e| *e == Event::Connected)
                && p.client().has_event(ch, |e| *e == Event::Connected);
            done || p.client().lost_reason(ch).is_some()
        })
        .unwrap_or_else(|e| {
            panic!(
                "seed {seed}: resumed transfer stalled at {} bytes: {e:?}",
                reader.received.len()
            )
        });
    let sh = h.server().accepted[accepted_before];
    Resumed {
        ch,
        sh,
        received: reader.received,
        read_during_handshake: reader.read_during_handshake,
        datagram,
        client_app,
    }
}

/// A first connection, then a resumed one carrying 6000 bytes of 0-RTT data that the server
/// accepts or (`reject`) refuses, its verdict reported to the client or not
fn resumed_case(seed: u64, reject: bool, report_verdict: bool) -> (Harness, Vec<u8>, Resumed) {
    let (mut h, tls) = harness(seed);
    let saved = first_connection(&mut h, &tls);
    let data = payload(6_000, seed);
    let verdict = if report_verdict {
        Verdict::Reported
    } else {
        Verdict::Untold
    };
    let r = resumed(&mut h, &tls, &saved, &data, reject, verdict);
    (h, data, r)
}

fn accepted_case(seed: u64, report_verdict: bool) {
    let (mut h, data, r) = resumed_case(seed, false, report_verdict);
    assert!(r.received == data, "seed {seed}: payload mismatch");
    assert!(
        r.read_during_handshake,
        "seed {seed}: the server delivers 0-RTT data before its handshake completes"
    );
    assert_eq!(r.datagram.as_deref(), Some(&b"early datagram"[..]));
    let s = h.server().conn(r.sh);
    assert_eq!(s.zero_rtt_accepted(), Some(true));
    let ss = s.stats();
    let c = h.client().conn(r.ch);
    let cs = c.stats();
    assert!(cs.zero_rtt_packets_sent >= 1, "{cs:?}");
    assert_eq!(ss.zero_rtt_bytes_accepted, cs.zero_rtt_bytes_sent, "{ss:?}");
    if report_verdict {
        assert_eq!(c.zero_rtt_accepted(), Some(true));
        assert_eq!(cs.zero_rtt_bytes_accepted, cs.zero_rtt_bytes_sent);
    } else {
        // Nobody told the client: the outcome stays unknown, nothing was resent
        assert_eq!(c.zero_rtt_accepted(), None);
    }
    assert_eq!(cs.zero_rtt_packets_resent, 0, "{cs:?}");
    assert!(!r.client_app.tls.is_handshaking());
    // The connection goes on in 1-RTT
    h.ch = r.ch;
    h.sh = Some(r.sh);
    let more = payload(40_000, seed + 1);
    assert_eq!(h.transfer(Dir::Uni, &more), more);
}

fn rejected_case(seed: u64, report_verdict: bool) {
    let (mut h, data, r) = resumed_case(seed, true, report_verdict);
    assert!(
        r.received == data,
        "seed {seed}: payload mismatch after rejection"
    );
    assert!(
        !r.read_during_handshake,
        "seed {seed}: rejected 0-RTT data was processed"
    );
    let s = h.server().conn(r.sh);
    assert_eq!(s.zero_rtt_accepted(), None);
    assert_eq!(s.stats().zero_rtt_bytes_accepted, 0);
    let c = h.client().conn(r.ch);
    let cs = c.stats();
    assert!(cs.zero_rtt_packets_sent >= 1, "{cs:?}");
    if report_verdict {
        // Taken back at once, all of them, without a congestion signal
        assert_eq!(c.zero_rtt_accepted(), Some(false));
        assert_eq!(
            cs.zero_rtt_packets_resent, cs.zero_rtt_packets_sent,
            "{cs:?}"
        );
        assert_eq!(cs.congestion_events, 0, "{cs:?}");
    } else {
        // The kernel way: loss detection found the packets the server never acknowledged
        assert_eq!(c.zero_rtt_accepted(), None);
        assert!(cs.packets_lost >= 1, "{cs:?}");
    }
    h.ch = r.ch;
    h.sh = Some(r.sh);
    let more = payload(20_000, seed + 1);
    assert_eq!(h.transfer(Dir::Uni, &more), more);
}

#[test]
fn external_zero_rtt_accepted() {
    accepted_case(111, false);
}

#[test]
fn external_zero_rtt_accepted_with_reported_verdict() {
    accepted_case(112, true);
}

#[test]
fn external_zero_rtt_rejected_data_arrives_anyway() {
    rejected_case(113, false);
}

#[test]
fn external_zero_rtt_rejected_with_reported_verdict() {
    rejected_case(114, true);
}

#[test]
fn early_secret_and_saved_parameters_follow_the_rules() {
    let (mut h, tls) = harness(115);
    let secret = [9u8; 32];
    let now = h.now();
    let c = h.client_conn();
    // 0-RTT runs client to server: a client's early secret is for sending
    assert_eq!(
        c.external_install_early_secret(now, Direction::Receive, Suite::Aes128Gcm, &secret),
        Err(ExternalTlsError::EarlyDirection)
    );
    assert_eq!(
        c.external_install_early_secret(now, Direction::Send, Suite::Aes256Gcm, &secret),
        Err(ExternalTlsError::SecretLength(32))
    );
    c.external_install_early_secret(now, Direction::Send, Suite::Aes128Gcm, &secret)
        .expect("client early secret");
    assert_eq!(
        c.external_install_early_secret(now, Direction::Send, Suite::Aes128Gcm, &secret),
        Err(ExternalTlsError::AlreadyInstalled)
    );
    // Without saved parameters nothing can be written, so nothing goes out as 0-RTT
    assert!(!c.is_zero_rtt_available());
    let saved = first_connection(&mut h, &tls);
    let now = h.now();
    // Too late once connected
    assert_eq!(
        h.client_conn().set_remembered_peer_params(&saved),
        Err(RememberedParamsError::TooLate)
    );
    let s = h.server_conn();
    assert_eq!(
        s.set_remembered_peer_params(&saved),
        Err(RememberedParamsError::NotClient)
    );
    assert_eq!(
        s.external_set_early_data_accepted(now, true),
        Err(ExternalTlsError::EarlyDirection)
    );
    assert_eq!(
        s.external_install_early_secret(now, Direction::Receive, Suite::Aes128Gcm, &secret),
        Err(ExternalTlsError::Complete)
    );
}

#[test]
fn packets_ahead_of_their_keys_wait_for_them() {
    // The server's Handshake flight rides with its ServerHello, its 1-RTT packets can beat the
    // client's 1-RTT keys, the client's 1-RTT packets ride with its Finished: with both
    // handshakes run by applications, none of them may be lost to a missing key
    let (mut h, tls) = harness(116);
    let _ = first_connection(&mut h, &tls);
    h.pair.drive().expect("settle");
    for (side, stats) in [
        ("client", h.client_conn().stats()),
        ("server", h.server_conn().stats()),
    ] {
        assert_eq!(stats.packets_dropped, 0, "{side}: {stats:?}");
        assert_eq!(stats.packets_lost, 0, "{side}: {stats:?}");
        assert_eq!(stats.pto_count, 0, "{side}: {stats:?}");
    }
}

/// A 0-RTT packet to `dcid` that no key opens (v1 long header, type 0-RTT, 4-byte number)
fn fake_zero_rtt(dcid: &[u8], pn: u32) -> Vec<u8> {
    let mut p = vec![0xd3];
    p.extend_from_slice(&1u32.to_be_bytes());
    p.push(dcid.len() as u8);
    p.extend_from_slice(dcid);
    p.push(0);
    let body = 4 + 100;
    p.extend_from_slice(&(0x4000u16 | body as u16).to_be_bytes());
    p.extend_from_slice(&pn.to_be_bytes());
    p.extend_from_slice(&[0x5a; 100]);
    p
}

#[test]
fn packets_kept_for_missing_keys_are_bounded_and_rejected_0rtt_is_never_read() {
    let (mut h, tls) = harness(117);
    let ch = h.ch;
    let mut client = app_client(&tls.client, h.client_conn());
    let now = h.now();
    client.pump(h.client_conn(), now);
    h.pair
        .drive_until(|p| !p.server().accepted.is_empty())
        .expect("accept");
    let sh = h.server().accepted[0];
    let dcid = h.server().conn(sh).original_dcid();
    let client_addr = h.pair.client_addr();
    let before = h.server().conn(sh).stats().packets_dropped;
    for pn in 0..40 {
        let meta = crate::shared::RecvMeta {
            remote: client_addr,
            local_ip: None,
            ecn: None,
        };
        let mut d = fake_zero_rtt(&dcid, pn);
        let now = h.now();
        h.server().ep.handle_datagram(now, meta, &mut d);
    }
    // Kept while the application may still accept early data, up to the bound
    let kept_limit = 32;
    let dropped = h.server().conn(sh).stats().packets_dropped - before;
    assert_eq!(dropped, 40 - kept_limit);
    // The server's TLS never accepts early data here: once the handshake is done, the kept
    // 0-RTT packets are dropped unread (RFC 9001 §4.6.2)
    let mut server: Option<AppTls> = None;
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            client.pump(p.client_mut().conn(ch), now);
            let s = p.server_mut().conn(sh);
            pump_server(&mut server, &tls.server, false, s, now);
            p.server().has_event(sh, |e| *e == Event::Connected)
                && p.client().has_event(ch, |e| *e == Event::Connected)
        })
        .expect("handshake");
    let s = h.server().conn(sh);
    // (the full buffer may also have turned away a real packet that beat its keys)
    let st = s.stats();
    assert!(st.packets_dropped - before >= 40, "{st:?}");
    assert_eq!(s.zero_rtt_accepted(), None);
    assert_eq!(s.stats().zero_rtt_bytes_accepted, 0);
}

#[test]
fn ack_of_0rtt_after_a_reported_rejection_is_a_protocol_violation() {
    // The server accepted and acknowledges the 0-RTT packets, but the client's application
    // claims a rejection (RFC 9001 §4.6.2: the client SHOULD treat that ACK as an error)
    let (mut h, tls) = harness(118);
    let saved = first_connection(&mut h, &tls);
    let data = payload(3_000, 118);
    let r = resumed(
        &mut h,
        &tls,
        &saved,
        &data,
        false,
        Verdict::Misreported(false),
    );
    assert_eq!(h.server().conn(r.sh).zero_rtt_accepted(), Some(true));
    let ch = r.ch;
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .expect("the client closes");
    let reason = h.client().lost_reason(ch);
    match reason {
        Some(crate::connection::ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, crate::error::TransportErrorCode::PROTOCOL_VIOLATION);
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[test]
fn external_zero_rtt_under_loss() {
    // Lost 0-RTT packets, lost handshake packets and kept packets together: whatever the
    // server's TLS decides and whether the client hears of it, the stream arrives intact
    for seed in 130..136u64 {
        let (mut h, tls) = lossy_harness(seed, 0.15);
        let saved = first_connection(&mut h, &tls);
        let data = payload(8_000, seed);
        let reject = seed % 2 == 0;
        let verdict = if seed % 3 == 0 {
            Verdict::Reported
        } else {
            Verdict::Untold
        };
        let r = resumed(&mut h, &tls, &saved, &data, reject, verdict);
        assert!(
            r.received == data,
            "seed {seed} reject {reject} {verdict:?}: payload mismatch"
        );
        assert!(h.client().lost_reason(r.ch).is_none(), "seed {seed}");
        let s = h.server().conn(r.sh);
        assert_eq!(
            s.zero_rtt_accepted(),
            (!reject).then_some(true),
            "seed {seed}"
        );
        if reject {
            assert!(
                !r.read_during_handshake,
                "seed {seed}: rejected data was read"
            );
        }
    }
}
