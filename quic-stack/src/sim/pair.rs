//! Two-node harness (quinn's `Pair`): a client and a server joined by a configurable path

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::link::{Link, LinkConfig};
use super::network::{Advance, Network, NodeId, SimError};
use super::Node;

/// Default simulated client address (198.18.0.0/15 is reserved for benchmarking, RFC 2544)
pub const CLIENT_V4: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 50_000));
/// Default simulated server address
pub const SERVER_V4: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 4433));
/// Default simulated IPv6 client address (fd00::/8 is unique-local)
pub const CLIENT_V6: SocketAddr = SocketAddr::V6(SocketAddrV6::new(
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    50_000,
    0,
    0,
));
/// Default simulated IPv6 server address
pub const SERVER_V6: SocketAddr = SocketAddr::V6(SocketAddrV6::new(
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    4433,
    0,
    0,
));

/// A client and a server on a two-way path, driven on the virtual clock
///
/// Derefs to the underlying [`Network`] for everything else (interceptor, trace, rebinding).
pub struct Pair<N> {
    /// The network holding both nodes
    pub net: Network<N>,
    /// The client's id
    pub client: NodeId,
    /// The server's id
    pub server: NodeId,
    /// Virtual time budget of one `drive`/`drive_until` call
    pub time_limit: Duration,
    /// `drive` stops once nothing is in flight and no timer is due within this period
    pub quiet_period: Duration,
}

impl<N: Node> Pair<N> {
    /// Client at [`CLIENT_V4`], server at [`SERVER_V4`], default links
    pub fn new(seed: u64, client: N, server: N) -> Self {
        Self::with_addrs(seed, client, CLIENT_V4, server, SERVER_V4)
    }
    /// Client at [`CLIENT_V6`], server at [`SERVER_V6`], default links
    pub fn new_v6(seed: u64, client: N, server: N) -> Self {
        Self::with_addrs(seed, client, CLIENT_V6, server, SERVER_V6)
    }
    /// Client and server at the given addresses
    pub fn with_addrs(
        seed: u64,
        client: N,
        client_addr: SocketAddr,
        server: N,
        server_addr: SocketAddr,
    ) -> Self {
        let mut net = Network::new(seed);
        let client = net.add_node(client, client_addr);
        let server = net.add_node(server, server_addr);
        Self {
            net,
            client,
            server,
            time_limit: Duration::from_secs(600),
            quiet_period: Duration::from_secs(1),
        }
    }

    /// The client node
    pub fn client(&self) -> &N {
        self.net.node(self.client)
    }
    /// The client node, mutably
    pub fn client_mut(&mut self) -> &mut N {
        self.net.node_mut(self.client)
    }
    /// The server node
    pub fn server(&self) -> &N {
        self.net.node(self.server)
    }
    /// The server node, mutably
    pub fn server_mut(&mut self) -> &mut N {
        self.net.node_mut(self.server)
    }
    /// The client's bound address
    pub fn client_addr(&self) -> SocketAddr {
        self.net.addr(self.client)
    }
    /// The server's bound address
    pub fn server_addr(&self) -> SocketAddr {
        self.net.addr(self.server)
    }
    /// The client → server link
    pub fn to_server(&mut self) -> &mut Link {
        let (c, s) = (self.client, self.server);
        self.net.link_mut(c, s)
    }
    /// The server → client link
    pub fn to_client(&mut self) -> &mut Link {
        let (c, s) = (self.client, self.server);
        self.net.link_mut(s, c)
    }
    /// Configure both directions alike
    pub fn set_links(&mut self, config: LinkConfig) {
        let (c, s) = (self.client, self.server);
        self.net.set_path(c, s, config);
    }
    /// NAT rebinding of the client now: the server sees `external` as its source
    pub fn rebind_client(&mut self, external: SocketAddr) {
        let c = self.client;
        self.net.rebind(c, external);
    }
    /// NAT rebinding of the client at virtual time `at`
    pub fn rebind_client_at(&mut self, at: Instant, external: SocketAddr) {
        let c = self.client;
        self.net.rebind_at(c, at, external);
    }

    /// Run until nothing is in flight and no timer is due within [`Self::quiet_period`]
    pub fn drive(&mut self) -> Result<(), SimError> {
        self.net.drive(self.quiet_period, self.time_limit)
    }

    /// Run until `pred` holds (checked before every step), within [`Self::time_limit`]
    pub fn drive_until<F>(&mut self, mut pred: F) -> Result<(), SimError>
    where
        F: FnMut(&mut Self) -> bool,
    {
        let deadline = self.net.now() + self.time_limit;
        loop {
            if pred(self) {
                return Ok(());
            }
            match self.net.advance(deadline)? {
                Advance::Progressed => {}
                Advance::Idle => return Err(self.net.idle_error()),
                Advance::Beyond => return Err(self.net.time_limit_error()),
            }
        }
    }

    /// Run until virtual time `at` (or until idle), processing everything due by then
    pub fn drive_to(&mut self, at: Instant) -> Result<(), SimError> {
        self.net.run_to(at)
    }
}

impl<N> Deref for Pair<N> {
    type Target = Network<N>;
    fn deref(&self) -> &Network<N> {
        &self.net
    }
}

impl<N> DerefMut for Pair<N> {
    fn deref_mut(&mut self) -> &mut Network<N> {
        &mut self.net
    }
}
