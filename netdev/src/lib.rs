//! netdev: the virtual network device layer of quictun
//!
//! TUN devices ([`TunDevice`], Linux implementation on tun-rs and an in-memory pair for tests),
//! addresses/routes/MTU through netlink, network namespaces, IP header views and ICMP Packet Too
//! Big synthesis. Only `sys` may contain `unsafe`.
//!
//! - [`ip`]: zero-copy IPv4/IPv6 header view and flow hash; accessors never panic after the check
//! - [`icmp`]: ICMPv4 Fragmentation Needed / ICMPv6 Packet Too Big replies and a rate limiter
//! - [`mem`]: [`MemTun`] pair for tests without root
//! - [`tun`]: [`LinuxTun`], the tun-rs device with offload and batching
//! - [`netlink`]: links, addresses, routes, veth, namespace moves, and the [`NetWatcher`]
//! - [`netns`]: `ip netns` compatible namespaces, running closures and commands inside them
//!
//! Rules: everything that touches the kernel returns a typed error whose message names the fix
//! when there is one (root, CAP_NET_ADMIN, modprobe tun); devices, netlink handles and watchers
//! need a tokio runtime and belong to the network namespace of the thread that created them.

#![deny(unsafe_code)]

pub mod icmp;
pub mod ip;
pub mod mem;
pub mod netlink;
pub mod netns;
mod sys;
pub mod tun;

pub use icmp::{packet_too_big, IcmpError, RateLimiter};
pub use ip::{IpError, IpPacket, IpVersion};
pub use mem::MemTun;
pub use netlink::{NetEvent, NetWatcher, Netlink, NetlinkError, UnderlayRoute};
pub use netns::{NetNs, NetNsError, NetNsGuard};
pub use sys::accept_owned;
pub use tun::{LinuxTun, TunConfig, TunError, RECV_BATCH, RECV_BUF_SIZE};

use std::future::Future;
use std::io;

/// A layer-3 virtual interface that reads and writes whole IP packets
///
/// Implementations must be usable from two tasks at once (one reading, one writing).
pub trait TunDevice: Send + Sync + 'static {
    /// Interface name, e.g. `qt0`
    fn name(&self) -> &str;
    /// Interface MTU in bytes
    fn mtu(&self) -> usize;
    /// Read one IP packet into `buf`; returns its length
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Write one IP packet
    fn send(&self, packet: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Read up to `bufs.len()` packets; `sizes[i]` receives the length of packet `i`. Returns
    /// how many were read (at least one). Devices with offload split super-packets here.
    fn recv_batch(
        &self,
        bufs: &mut [Vec<u8>],
        sizes: &mut [usize],
    ) -> impl Future<Output = io::Result<usize>> + Send {
        async move {
            let Some(first) = bufs.first_mut() else {
                return Ok(0);
            };
            sizes[0] = self.recv(first).await?;
            Ok(1)
        }
    }
    /// Write several IP packets; devices with offload may coalesce them
    fn send_batch(&self, packets: &[&[u8]]) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            for packet in packets {
                self.send(packet).await?;
            }
            Ok(())
        }
    }
}
