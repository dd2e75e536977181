//! Test harness: endpoints as simulator nodes, certificates, TLS configs and app-level pumps

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::{RngCore, SeedableRng};

use crate::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use crate::connection::{Connection, Event};
use crate::endpoint::{ConnectionHandle, Endpoint};
use crate::shared::{Dir, RecvMeta, StreamId, Transmit};
use crate::sim::{LinkConfig, Node, Pair};

pub(super) const ALPN: &[u8] = b"quictun-test";

/// An endpoint plus the events and accepted handles it produced
pub(super) struct TestNode {
    pub(super) ep: Endpoint,
    pub(super) events: Vec<(ConnectionHandle, Event)>,
    pub(super) accepted: Vec<ConnectionHandle>,
    /// Datagram sizes sent, in order (for padding checks)
    pub(super) sent_sizes: Vec<usize>,
}

impl TestNode {
    fn collect(&mut self) {
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        while let Some(h) = self.ep.accept() {
            self.accepted.push(h);
        }
    }

    pub(super) fn conn(&mut self, h: ConnectionHandle) -> &mut Connection {
        self.ep.connection_mut(h).expect("connection exists")
    }

    pub(super) fn has_event(&self, h: ConnectionHandle, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|(eh, e)| *eh == h && f(e))
    }

    pub(super) fn lost_reason(
        &self,
        h: ConnectionHandle,
    ) -> Option<crate::connection::ConnectionError> {
        self.events.iter().find_map(|(eh, e)| match e {
            Event::ConnectionLost { reason } if *eh == h => Some(reason.clone()),
            _ => None,
        })
    }
}

impl Node for TestNode {
    fn handle_datagram(&mut self, now: Instant, meta: RecvMeta, data: &mut [u8]) {
        self.ep.handle_datagram(now, meta, data);
        self.collect();
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.collect();
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        let t = self.ep.poll_transmit(now, max_datagrams, buf);
        if let Some(t) = &t {
            match t.segment_size {
                Some(s) => {
                    let mut left = t.size;
                    while left > 0 {
                        self.sent_sizes.push(left.min(s));
                        left = left.saturating_sub(s);
                    }
                }
                None => self.sent_sizes.push(t.size),
            }
        }
        self.collect();
        t
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
}

/// A self-signed certificate for "localhost"
pub(super) fn cert() -> (
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    (ck.cert.der().clone(), key)
}

/// A server TLS config whose tickets allow early data when `early_data` is set
pub(super) fn tls_server_with(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    early_data: bool,
) -> Arc<rustls::ServerConfig> {
    Arc::new(
        crate::tls::server_config(vec![cert], key, vec![ALPN.to_vec()], None, early_data)
            .expect("server config"),
    )
}

pub(super) fn tls_client(
    cert: rustls_pki_types::CertificateDer<'static>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    Arc::new(crate::tls::client_config(roots, vec![ALPN.to_vec()], None).expect("client config"))
}

/// What a scenario varies
pub(super) struct Setup {
    pub(super) seed: u64,
    pub(super) version: u32,
    pub(super) transport: TransportConfig,
    pub(super) link: LinkConfig,
    /// Versions the server endpoint accepts (default: all)
    pub(super) server_versions: Option<Vec<u32>>,
    /// Versions the client endpoint supports, by preference (default: all)
    pub(super) client_versions: Option<Vec<u32>>,
    /// The server endpoint advertises grease_quic_bit (default: yes)
    pub(super) server_grease_quic_bit: bool,
    /// The server validates addresses with Retry
    pub(super) retry: bool,
    /// Name the client asks for (the certificate is for "localhost")
    pub(super) server_name: &'static str,
    /// The server's TLS config issues tickets that allow early data
    pub(super) server_early_data: bool,
    /// The server advertises this preferred address and listens on it too
    pub(super) server_preferred_v4: Option<std::net::SocketAddrV4>,
    /// The client's / server's TLS handshake is run by the test (external TLS)
    pub(super) client_external_tls: bool,
    pub(super) server_external_tls: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            seed: 1,
            version: crate::crypto::VERSION_1,
            transport: TransportConfig::default(),
            link: LinkConfig::default(),
            server_versions: None,
            client_versions: None,
            server_grease_quic_bit: true,
            retry: false,
            server_name: "localhost",
            server_early_data: false,
            server_preferred_v4: None,
            client_external_tls: false,
            server_external_tls: false,
        }
    }
}

/// A client and a server endpoint on a simulated link, with one connection started
pub(super) struct Harness {
    pub(super) pair: Pair<TestNode>,
    /// The client's connection
    pub(super) ch: ConnectionHandle,
    /// The server's connection, once accepted
    pub(super) sh: Option<ConnectionHandle>,
    pub(super) server_endpoint_config: Arc<EndpointConfig>,
    pub(super) server_config: Arc<ServerConfig>,
    /// The client's configuration, for further connections
    pub(super) client_config: ClientConfig,
    /// The server's certificate and key, for TLS run outside the stack
    pub(super) cert_key: (
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
}

impl Harness {
    pub(super) fn new(setup: Setup) -> Self {
        let (cert, key) = cert();
        let transport = Arc::new(setup.transport);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(setup.seed);
        let mut seed = || {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        };
        let mut endpoint_config = EndpointConfig::default();
        if let Some(v) = setup.client_versions {
            endpoint_config.supported_versions = v;
        }
        let endpoint_config = Arc::new(endpoint_config);
        let server_config = Arc::new(ServerConfig {
            transport: transport.clone(),
            retry: setup.retry,
            preferred_address_v4: setup.server_preferred_v4,
            external_tls: setup.server_external_tls,
            ..ServerConfig::new(tls_server_with(
                cert.clone(),
                key.clone_key(),
                setup.server_early_data,
            ))
        });
        let mut server_endpoint_config = EndpointConfig {
            reset_key: Some([0x5e; 32]),
            grease_quic_bit: setup.server_grease_quic_bit,
            ..EndpointConfig::default()
        };
        if let Some(v) = setup.server_versions {
            server_endpoint_config.supported_versions = v;
        }
        let server_endpoint_config = Arc::new(server_endpoint_config);
        let server = Endpoint::new(
            server_endpoint_config.clone(),
            Some(server_config.clone()),
            seed(),
        );
        let client = Endpoint::new(endpoint_config, None, seed());
        let node = |ep| TestNode {
            ep,
            events: Vec::new(),
            accepted: Vec::new(),
            sent_sizes: Vec::new(),
        };
        let mut pair = Pair::new(setup.seed, node(client), node(server));
        pair.set_links(setup.link);
        if let Some(pa) = setup.server_preferred_v4 {
            let server = pair.server;
            pair.net.add_alias(server, pa.into());
        }
        let now = pair.net.now();
        let server_addr = pair.server_addr();
        let config = ClientConfig {
            crypto: tls_client(cert.clone()),
            transport,
            version: setup.version,
            external_tls: setup.client_external_tls,
        };
        let client_config = config.clone();
        let ch = pair
            .client_mut()
            .ep
            .connect(now, config, server_addr, setup.server_name)
            .expect("connect");
        Self {
            pair,
            ch,
            sh: None,
            server_endpoint_config,
            server_config,
            client_config,
            cert_key: (cert, key),
        }
    }

    pub(super) fn now(&self) -> Instant {
        self.pair.net.now()
    }

    pub(super) fn client(&mut self) -> &mut TestNode {
        self.pair.client_mut()
    }

    pub(super) fn server(&mut self) -> &mut TestNode {
        self.pair.server_mut()
    }

    pub(super) fn client_conn(&mut self) -> &mut Connection {
        let h = self.ch;
        self.client().conn(h)
    }

    pub(super) fn client_conn_stats(&mut self) -> Option<crate::connection::ConnectionStats> {
        let h = self.ch;
        self.client().ep.connection(h).map(|c| c.stats())
    }

    pub(super) fn server_conn(&mut self) -> &mut Connection {
        let h = self.sh.expect("server connection accepted");
        self.server().conn(h)
    }

    /// Drive until the client has tried the server's preferred address; whether it moved there
    pub(super) fn preferred_address_outcome(&mut self) -> Option<bool> {
        let ch = self.ch;
        let seed = self.pair.net.seed();
        self.pair
            .drive_until(|p| {
                p.client()
                    .ep
                    .connection(ch)
                    .is_some_and(|c| c.preferred_address_outcome().is_some())
            })
            .unwrap_or_else(|e| panic!("seed {seed}: no preferred-address outcome: {e:?}"));
        self.client_conn().preferred_address_outcome()
    }

    /// A further connection from the client endpoint to the server (resumption, 0-RTT, tokens)
    pub(super) fn connect_again(&mut self) -> ConnectionHandle {
        let now = self.now();
        let server_addr = self.pair.server_addr();
        let config = self.client_config.clone();
        self.client()
            .ep
            .connect(now, config, server_addr, "localhost")
            .expect("connect again")
    }

    /// Drive until both sides report `Connected`
    pub(super) fn handshake(&mut self) {
        let ch = self.ch;
        let seed = self.pair.net.seed();
        self.pair
            .drive_until(|p| {
                let s = p.server();
                let server_done = s
                    .accepted
                    .first()
                    .is_some_and(|&h| s.has_event(h, |e| *e == Event::Connected));
                server_done && p.client().has_event(ch, |e| *e == Event::Connected)
            })
            .unwrap_or_else(|e| panic!("handshake failed (seed {seed}): {e:?}"));
        self.sh = self.server().accepted.first().copied();
    }

    /// Send `data` from the client on a new stream of `dir` and return what the server read
    pub(super) fn transfer(&mut self, dir: Dir, data: &[u8]) -> Vec<u8> {
        self.transfer_with(dir, data, |_, _, _| {})
    }

    /// Like [`Self::transfer`], calling `hook(pair, client, server)` before every step so a
    /// scenario can move nodes, inject packets or change links mid-transfer
    pub(super) fn transfer_with(
        &mut self,
        dir: Dir,
        data: &[u8],
        mut hook: impl FnMut(&mut Pair<TestNode>, ConnectionHandle, ConnectionHandle),
    ) -> Vec<u8> {
        let id = self.client_conn().open(dir).expect("stream open");
        let mut sent = 0;
        let mut finished = false;
        let mut received = Vec::new();
        let mut fin = false;
        let sh = self.sh.expect("server");
        let ch = self.ch;
        let seed = self.pair.net.seed();
        let mut server_stream: Option<StreamId> = None;
        let mut buf = vec![0u8; 64 * 1024];
        self.pair
            .drive_until(|p| {
                hook(p, ch, sh);
                let c = p.client_mut().conn(ch);
                while sent < data.len() {
                    match c.write(id, &data[sent..]) {
                        Ok(n) if n > 0 => sent += n,
                        _ => break,
                    }
                }
                if sent == data.len() && !finished {
                    c.finish(id).expect("finish");
                    finished = true;
                }
                let s = p.server_mut().conn(sh);
                if server_stream.is_none() {
                    server_stream = s.accept(dir);
                }
                if let Some(sid) = server_stream {
                    while let Ok(Some(r)) = s.read(sid, &mut buf) {
                        received.extend_from_slice(&buf[..r.len]);
                        if r.fin {
                            fin = true;
                            break;
                        }
                        if r.len == 0 {
                            break;
                        }
                    }
                }
                fin
            })
            .unwrap_or_else(|e| {
                panic!(
                    "transfer stalled (seed {seed}): sent {sent}, received {}: {e:?}",
                    received.len()
                )
            });
        received
    }

    /// Queue a datagram on the client
    pub(super) fn client_datagram(&mut self, data: &'static [u8]) {
        self.client_conn()
            .send_datagram(Bytes::from_static(data))
            .expect("send datagram");
    }
}

/// Deterministic pseudo-random payload
pub(super) fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Write all of `data` on `id` with its FIN, then a datagram behind it: what a resuming client
/// queues before its first packet leaves, so all of it can go as 0-RTT
pub(super) fn write_early(c: &mut Connection, id: StreamId, data: &[u8]) {
    let mut sent = 0;
    while sent < data.len() {
        match c.write(id, &data[sent..]) {
            Ok(n) if n > 0 => sent += n,
            other => panic!("0-RTT write refused after {sent} bytes: {other:?}"),
        }
    }
    c.finish(id).expect("finish");
    c.send_datagram(Bytes::from_static(b"early datagram"))
        .expect("remembered max_datagram_frame_size allows datagrams");
}

/// The server's reading of one stream across drive steps, noting whether any data came while
/// its handshake was still running (0-RTT)
pub(super) struct StreamReader {
    pub(super) received: Vec<u8>,
    pub(super) read_during_handshake: bool,
    pub(super) fin: bool,
    buf: Vec<u8>,
}

impl StreamReader {
    pub(super) fn new() -> Self {
        Self {
            received: Vec::new(),
            read_during_handshake: false,
            fin: false,
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// Read what `sid` holds now; whether its end is in
    pub(super) fn read(&mut self, s: &mut Connection, sid: StreamId) -> bool {
        while let Ok(Some(r)) = s.read(sid, &mut self.buf) {
            if r.len > 0 && s.is_handshaking() {
                self.read_during_handshake = true;
            }
            self.received.extend_from_slice(&self.buf[..r.len]);
            self.fin |= r.fin;
            if r.fin || r.len == 0 {
                break;
            }
        }
        self.fin
    }
}
