//! Links, addresses and routes through rtnetlink, plus an address/route change watcher
//!
//! A [`Netlink`] handle talks to the kernel of the network namespace it was created in (the
//! socket is bound at creation), so create it inside [`crate::NetNs::run_in`] to manage another
//! namespace. It needs a tokio runtime: the netlink connection runs as a task on it and is
//! aborted when the handle drops.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::LinkFlag;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};
use tokio::task::JoinHandle;

mod route;
pub use route::UnderlayRoute;

/// Netlink operation failures
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// Called outside a tokio runtime, which drives the netlink connection
    #[error("netlink needs a tokio runtime: create the handle inside one")]
    NoRuntime,
    /// Opening or binding the netlink socket failed
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// No link of that name
    #[error("no network interface named {0:?}")]
    NoSuchLink(String),
    /// The kernel refused: the object exists already
    #[error("{op}: already exists (EEXIST)")]
    Exists {
        /// What was attempted
        op: &'static str,
    },
    /// The kernel refused: no such device / address / route
    #[error("{op}: not found ({errno})")]
    NotFound {
        /// What was attempted
        op: &'static str,
        /// The errno name
        errno: nix::errno::Errno,
    },
    /// The kernel refused for lack of privilege
    #[error("{op}: permission denied: run as root or grant CAP_NET_ADMIN")]
    PermissionDenied {
        /// What was attempted
        op: &'static str,
    },
    /// Any other kernel error
    #[error("{op}: kernel error {errno}")]
    Kernel {
        /// What was attempted
        op: &'static str,
        /// The errno the kernel returned
        errno: nix::errno::Errno,
    },
    /// rtnetlink failed without a kernel errno (unexpected reply, decoding)
    #[error("{op}: {message}")]
    Protocol {
        /// What was attempted
        op: &'static str,
        /// rtnetlink's description
        message: String,
    },
}

impl NetlinkError {
    fn from_rtnl(op: &'static str, e: rtnetlink::Error) -> Self {
        use nix::errno::Errno;
        match e {
            rtnetlink::Error::NetlinkError(msg) => {
                // Kernel errors come back negated (-errno).
                let code = msg.code.map(|c| c.get().abs()).unwrap_or(0);
                match Errno::from_raw(code) {
                    Errno::EEXIST => Self::Exists { op },
                    Errno::EPERM | Errno::EACCES => Self::PermissionDenied { op },
                    errno @ (Errno::ENODEV
                    | Errno::ENOENT
                    | Errno::ESRCH
                    | Errno::EADDRNOTAVAIL) => Self::NotFound { op, errno },
                    errno => Self::Kernel { op, errno },
                }
            }
            other => Self::Protocol {
                op,
                message: other.to_string(),
            },
        }
    }
}

/// A netlink route socket bound to the current network namespace
#[derive(Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    conn: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Netlink {
    /// Open a netlink connection in the calling thread's network namespace (needs a tokio runtime)
    pub fn new() -> Result<Self, NetlinkError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        let conn = rt.spawn(conn);
        Ok(Self { handle, conn })
    }

    /// Interface index of the link called `name`
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(NetlinkError::NoSuchLink(name.to_owned())),
            Err(rtnetlink::Error::NetlinkError(msg))
                if msg.code.map(|c| c.get().abs()) == Some(libc::ENODEV) =>
            {
                Err(NetlinkError::NoSuchLink(name.to_owned()))
            }
            Err(e) => Err(NetlinkError::from_rtnl("get link", e)),
        }
    }

    /// Bring a link up
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let req = self.handle.link().set(index).up();
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("set link up", e))
    }

    /// Bring a link down
    pub async fn set_down(&self, index: u32) -> Result<(), NetlinkError> {
        let req = self.handle.link().set(index).down();
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("set link down", e))
    }

    /// Set a link's MTU
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let req = self.handle.link().set(index).mtu(mtu);
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("set MTU", e))
    }

    /// Add an IPv4 or IPv6 address with its prefix, e.g. `198.18.0.1/30`
    pub async fn add_address(&self, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
        let req = self
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix_len());
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("add address", e))
    }

    /// Delete an address previously added with [`Netlink::add_address`]
    pub async fn del_address(&self, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
        // rtnetlink deletes by message; the add request builds exactly the message that names
        // this address (index, family, prefix length, IFA_LOCAL/IFA_ADDRESS).
        let mut add = self
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix_len());
        let msg = add.message_mut().clone();
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("delete address", e))
    }

    /// Addresses currently assigned to a link (both families)
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::from_rtnl("list addresses", e))?;
        Ok(msgs
            .iter()
            // The filter is applied in userspace by rtnetlink; keep the check explicit anyway.
            .filter(|m| m.header.index == index)
            .filter_map(address_of)
            .collect())
    }

    /// Whether `ip` is assigned here and can carry traffic: `None` when no link holds it,
    /// otherwise whether its link is up with a carrier (an address stays assigned on a link
    /// that went down, so presence alone does not make it usable)
    pub async fn address_usable(&self, ip: IpAddr) -> Result<Option<bool>, NetlinkError> {
        let msgs: Vec<AddressMessage> =
            self.handle
                .address()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| NetlinkError::from_rtnl("list addresses", e))?;
        let Some(index) = msgs
            .iter()
            .find(|m| address_of(m).is_some_and(|a| a.addr() == ip))
            .map(|m| m.header.index)
        else {
            return Ok(None);
        };
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(Some(link)) => {
                let flags = &link.header.flags;
                let up = flags.contains(&LinkFlag::Up)
                    && (flags.contains(&LinkFlag::LowerUp) || flags.contains(&LinkFlag::Running));
                Ok(Some(up))
            }
            // The link vanished between the two requests: the address went with it
            Ok(None) => Ok(None),
            Err(e) => Err(NetlinkError::from_rtnl("get link", e)),
        }
    }

    /// Route `dest` through the link `index` (no gateway); `0.0.0.0/0` or `::/0` is a default
    pub async fn add_route(&self, dest: IpNet, index: u32) -> Result<(), NetlinkError> {
        match dest {
            IpNet::V4(d) => {
                let req = self
                    .handle
                    .route()
                    .add()
                    .v4()
                    .destination_prefix(d.network(), d.prefix_len())
                    .output_interface(index);
                req.execute().await
            }
            IpNet::V6(d) => {
                let req = self
                    .handle
                    .route()
                    .add()
                    .v6()
                    .destination_prefix(d.network(), d.prefix_len())
                    .output_interface(index);
                req.execute().await
            }
        }
        .map_err(|e| NetlinkError::from_rtnl("add route", e))
    }

    /// Default route of `family` through the link `index`
    pub async fn add_default_route(
        &self,
        family: crate::IpVersion,
        index: u32,
    ) -> Result<(), NetlinkError> {
        self.add_route(default_net(family), index).await
    }

    /// Delete a route added with [`Netlink::add_route`]
    pub async fn del_route(&self, dest: IpNet, index: u32) -> Result<(), NetlinkError> {
        // As for addresses: build the matching message with the add builder, then delete it.
        let msg = match dest {
            IpNet::V4(d) => {
                let mut req = self
                    .handle
                    .route()
                    .add()
                    .v4()
                    .destination_prefix(d.network(), d.prefix_len())
                    .output_interface(index);
                req.message_mut().clone()
            }
            IpNet::V6(d) => {
                let mut req = self
                    .handle
                    .route()
                    .add()
                    .v6()
                    .destination_prefix(d.network(), d.prefix_len())
                    .output_interface(index);
                req.message_mut().clone()
            }
        };
        self.handle
            .route()
            .del(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("delete route", e))
    }

    /// Delete the default route of `family` through the link `index`
    pub async fn del_default_route(
        &self,
        family: crate::IpVersion,
        index: u32,
    ) -> Result<(), NetlinkError> {
        self.del_route(default_net(family), index).await
    }

    /// Move a link into the network namespace behind `ns` (e.g. [`crate::NetNs::fd`])
    pub async fn move_to_netns_fd(
        &self,
        index: u32,
        ns: BorrowedFd<'_>,
    ) -> Result<(), NetlinkError> {
        let req = self.handle.link().set(index).setns_by_fd(ns.as_raw_fd());
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("move link to namespace", e))
    }

    /// Move a link into the network namespace of process `pid`
    pub async fn move_to_netns_pid(&self, index: u32, pid: u32) -> Result<(), NetlinkError> {
        let req = self.handle.link().set(index).setns_by_pid(pid);
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("move link to namespace", e))
    }

    /// Create a veth pair `name` <-> `peer` (both down)
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), NetlinkError> {
        let req = self
            .handle
            .link()
            .add()
            .veth(name.to_owned(), peer.to_owned());
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("create veth pair", e))
    }

    /// Delete a link (deleting one end of a veth pair deletes both)
    pub async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        let mut links = self.handle.link();
        links
            .del(index)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("delete link", e))
    }
}

fn default_net(family: crate::IpVersion) -> IpNet {
    match family {
        crate::IpVersion::V4 => IpNet::V4(ipnet::Ipv4Net::default()),
        crate::IpVersion::V6 => IpNet::V6(ipnet::Ipv6Net::default()),
    }
}

/// The address (with prefix) an RTM_NEWADDR/RTM_DELADDR message carries
fn address_of(msg: &AddressMessage) -> Option<IpNet> {
    // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS the peer on
    // point-to-point links; IPv6 only sends IFA_ADDRESS. Prefer LOCAL.
    let mut addr: Option<IpAddr> = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => addr = Some(*a),
            AddressAttribute::Address(a) if addr.is_none() => addr = Some(*a),
            _ => {}
        }
    }
    IpNet::new(addr?, msg.header.prefix_len).ok()
}

/// A change reported by [`NetWatcher`]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEvent {
    /// An address appeared on link `index`
    AddressAdded {
        /// Link index
        index: u32,
        /// The address and its prefix length
        addr: IpNet,
    },
    /// An address was removed from link `index`
    AddressRemoved {
        /// Link index
        index: u32,
        /// The address and its prefix length
        addr: IpNet,
    },
    /// An IPv4 or IPv6 route was added or removed
    RouteChanged,
    /// A link changed state (up, down, carrier)
    LinkChanged {
        /// Link index
        index: u32,
        /// Administratively up with a carrier
        up: bool,
    },
}

// RTMGRP_* bitmask values for bind(2) (linux/rtnetlink.h): the legacy group mask equals
// 1 << (RTNLGRP_* - 1) for these groups.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// Subscribes to address and route notifications of the current network namespace
///
/// Used for roaming: a new local address is a reason to migrate the QUIC path.
#[derive(Debug)]
pub struct NetWatcher {
    messages: futures::channel::mpsc::UnboundedReceiver<(
        netlink_packet_core::NetlinkMessage<RouteNetlinkMessage>,
        SocketAddr,
    )>,
    conn: JoinHandle<()>,
}

impl Drop for NetWatcher {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl NetWatcher {
    /// Subscribe to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE
    /// and RTNLGRP_IPV6_ROUTE (needs a tokio runtime)
    pub fn new() -> Result<Self, NetlinkError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let (mut conn, _handle, messages) =
            rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE;
        conn.socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, groups))
            .map_err(NetlinkError::Socket)?;
        let conn = rt.spawn(conn);
        Ok(Self { messages, conn })
    }

    /// The next event; `None` once the netlink connection has ended
    pub async fn next(&mut self) -> Option<NetEvent> {
        while let Some((msg, _)) = self.messages.next().await {
            let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                continue;
            };
            let event = match inner {
                RouteNetlinkMessage::NewAddress(a) => {
                    address_of(&a).map(|addr| NetEvent::AddressAdded {
                        index: a.header.index,
                        addr,
                    })
                }
                RouteNetlinkMessage::DelAddress(a) => {
                    address_of(&a).map(|addr| NetEvent::AddressRemoved {
                        index: a.header.index,
                        addr,
                    })
                }
                RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => {
                    Some(NetEvent::RouteChanged)
                }
                RouteNetlinkMessage::NewLink(l) => {
                    let f = &l.header.flags;
                    Some(NetEvent::LinkChanged {
                        index: l.header.index,
                        up: f.contains(&LinkFlag::Up)
                            && (f.contains(&LinkFlag::LowerUp) || f.contains(&LinkFlag::Running)),
                    })
                }
                RouteNetlinkMessage::DelLink(l) => Some(NetEvent::LinkChanged {
                    index: l.header.index,
                    up: false,
                }),
                _ => None,
            };
            if event.is_some() {
                return event;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_runtime() {
        assert!(matches!(Netlink::new(), Err(NetlinkError::NoRuntime)));
        assert!(matches!(NetWatcher::new(), Err(NetlinkError::NoRuntime)));
    }

    #[test]
    fn kernel_errors_are_classified() {
        let e = NetlinkError::PermissionDenied { op: "set MTU" };
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
        assert_eq!(
            default_net(crate::IpVersion::V6),
            "::/0".parse::<IpNet>().expect("net")
        );
    }
}
