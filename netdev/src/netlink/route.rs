//! Underlay route lookup and endpoint host routes, for full tunnels
//!
//! A tunnel whose allowed prefixes cover its own server endpoint would route the encrypted
//! UDP packets into itself. The fix is a host route to the endpoint through whatever the
//! underlay used before the tunnel came up. Those host routes carry their own protocol number
//! so a later lookup can ignore them and find the underlay's current route again after the
//! network changed under a roaming client.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};

use super::{Netlink, NetlinkError};

/// Protocol number stamped on our endpoint host routes (rtnetlink protocols above 4 are free
/// for daemons; 0x71 is otherwise unassigned in /etc/iproute2/rt_protos)
const ENDPOINT_ROUTE_PROTOCOL: u8 = 0x71;

/// How the main routing table reaches an address
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderlayRoute {
    /// Next hop, or `None` for an on-link destination
    pub gateway: Option<IpAddr>,
    /// Outgoing interface index
    pub oif: u32,
}

/// One unicast route of the main table, reduced to what a lookup needs
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    prefix_len: u8,
    metric: u32,
    route: UnderlayRoute,
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// `dst` lies in `network`/`len`
fn covers(network: IpAddr, len: u8, dst: IpAddr) -> bool {
    match (network, dst) {
        (IpAddr::V4(n), IpAddr::V4(d)) => ipnet::Ipv4Net::new(n, len).is_ok_and(|p| p.contains(&d)),
        (IpAddr::V6(n), IpAddr::V6(d)) => ipnet::Ipv6Net::new(n, len).is_ok_and(|p| p.contains(&d)),
        _ => false,
    }
}

/// The route `msg` offers towards `dst`, if it is a usable main-table unicast route that
/// covers it and does not leave through `skip_oif`
fn candidate(msg: &RouteMessage, dst: IpAddr, skip_oif: u32) -> Option<Candidate> {
    let h = &msg.header;
    if h.kind != RouteType::Unicast || h.protocol == RouteProtocol::Other(ENDPOINT_ROUTE_PROTOCOL) {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut network = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => network = address(a),
            RouteAttribute::Gateway(a) => gateway = address(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) => {
                // Equal-cost routes: the first next hop is as good as any for one host route
                if let Some(hop) = hops.first() {
                    oif = oif.or(Some(hop.interface_index));
                    gateway = gateway.or_else(|| {
                        hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => address(g),
                            _ => None,
                        })
                    });
                }
            }
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let oif = oif?;
    if oif == skip_oif {
        return None;
    }
    let unspecified = match dst {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u8; 16]),
    };
    let network = network.unwrap_or(unspecified);
    if !covers(network, h.destination_prefix_length, dst) {
        return None;
    }
    Some(Candidate {
        prefix_len: h.destination_prefix_length,
        metric,
        route: UnderlayRoute { gateway, oif },
    })
}

/// Longest prefix first, then the lowest metric, as the kernel's FIB picks
fn best(candidates: impl IntoIterator<Item = Candidate>) -> Option<UnderlayRoute> {
    candidates
        .into_iter()
        .max_by(|a, b| {
            a.prefix_len
                .cmp(&b.prefix_len)
                .then(b.metric.cmp(&a.metric))
        })
        .map(|c| c.route)
}

impl Netlink {
    /// How the main table reaches `dst` when routes through `skip_oif` (the tunnel) and our own
    /// endpoint host routes are left out; `None` if nothing but the tunnel reaches it
    ///
    /// Policy-routing rules are not consulted: a setup that steers the endpoint with `ip rule`
    /// needs no host route from us anyway.
    pub async fn underlay_route(
        &self,
        dst: IpAddr,
        skip_oif: u32,
    ) -> Result<Option<UnderlayRoute>, NetlinkError> {
        let family = match dst {
            IpAddr::V4(_) => rtnetlink::IpVersion::V4,
            IpAddr::V6(_) => rtnetlink::IpVersion::V6,
        };
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(family)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::from_rtnl("dump routes", e))?;
        Ok(best(
            routes.iter().filter_map(|m| candidate(m, dst, skip_oif)),
        ))
    }

    /// The host route message; `None` when the gateway's family does not match `dst`'s
    fn host_route_message(&self, dst: IpAddr, via: &UnderlayRoute) -> Option<RouteMessage> {
        let req = self
            .handle
            .route()
            .add()
            .output_interface(via.oif)
            .protocol(RouteProtocol::Other(ENDPOINT_ROUTE_PROTOCOL));
        match (dst, via.gateway) {
            (IpAddr::V4(d), gw) => {
                let mut r = req.v4().destination_prefix(d, 32);
                match gw {
                    Some(IpAddr::V4(g)) => r = r.gateway(g),
                    Some(IpAddr::V6(_)) => return None,
                    None => {}
                }
                Some(r.message_mut().clone())
            }
            (IpAddr::V6(d), gw) => {
                let mut r = req.v6().destination_prefix(d, 128);
                match gw {
                    Some(IpAddr::V6(g)) => r = r.gateway(g),
                    Some(IpAddr::V4(_)) => return None,
                    None => {}
                }
                Some(r.message_mut().clone())
            }
        }
    }

    /// Route `dst` alone through `via`; `Ok(false)` if a host route to it exists already (the
    /// administrator's own, which we leave alone)
    pub async fn add_endpoint_route(
        &self,
        dst: IpAddr,
        via: &UnderlayRoute,
    ) -> Result<bool, NetlinkError> {
        let Some(msg) = self.host_route_message(dst, via) else {
            return Ok(false);
        };
        let mut req = self.handle.route().add();
        *req.message_mut() = msg;
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(e) => match NetlinkError::from_rtnl("add endpoint route", e) {
                NetlinkError::Exists { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Remove a route added by [`Netlink::add_endpoint_route`]
    pub async fn del_endpoint_route(
        &self,
        dst: IpAddr,
        via: &UnderlayRoute,
    ) -> Result<(), NetlinkError> {
        let Some(msg) = self.host_route_message(dst, via) else {
            return Ok(());
        };
        self.handle
            .route()
            .del(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnl("delete endpoint route", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::AddressFamily;
    use std::net::Ipv4Addr;

    fn route(
        dst: Option<Ipv4Addr>,
        len: u8,
        gw: Option<Ipv4Addr>,
        oif: u32,
        metric: u32,
    ) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = len;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.kind = RouteType::Unicast;
        m.header.protocol = RouteProtocol::Boot;
        if let Some(d) = dst {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(d)));
        }
        if let Some(g) = gw {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(g)));
        }
        m.attributes.push(RouteAttribute::Oif(oif));
        m.attributes.push(RouteAttribute::Priority(metric));
        m
    }

    fn lookup(routes: &[RouteMessage], dst: [u8; 4], skip: u32) -> Option<UnderlayRoute> {
        best(
            routes
                .iter()
                .filter_map(|m| candidate(m, IpAddr::from(dst), skip)),
        )
    }

    #[test]
    fn longest_prefix_then_metric_and_the_tunnel_is_skipped() {
        let gw_a = Ipv4Addr::new(198, 18, 0, 1);
        let gw_b = Ipv4Addr::new(198, 18, 1, 1);
        let routes = vec![
            route(None, 0, Some(gw_a), 2, 100),
            route(None, 0, Some(gw_b), 3, 50),
            route(Some(Ipv4Addr::new(0, 0, 0, 0)), 1, None, 9, 0),
            route(Some(Ipv4Addr::new(128, 0, 0, 0)), 1, None, 9, 0),
            route(Some(Ipv4Addr::new(198, 18, 7, 0)), 24, None, 4, 0),
        ];
        // The tunnel's /1 routes (oif 9) are ignored; of the two defaults the lower metric wins
        assert_eq!(
            lookup(&routes, [198, 18, 0, 9], 9),
            Some(UnderlayRoute {
                gateway: Some(IpAddr::V4(gw_b)),
                oif: 3
            })
        );
        // An on-link /24 beats the defaults
        assert_eq!(
            lookup(&routes, [198, 18, 7, 5], 9),
            Some(UnderlayRoute {
                gateway: None,
                oif: 4
            })
        );
        // Without skipping, the tunnel's /1 is the longest match
        assert_eq!(
            lookup(&routes, [198, 18, 0, 9], 0),
            Some(UnderlayRoute {
                gateway: None,
                oif: 9
            })
        );
    }

    #[test]
    fn our_own_host_routes_and_other_tables_are_ignored() {
        let mut ours = route(Some(Ipv4Addr::new(198, 18, 0, 9)), 32, None, 5, 0);
        ours.header.protocol = RouteProtocol::Other(ENDPOINT_ROUTE_PROTOCOL);
        let mut local = route(Some(Ipv4Addr::new(198, 18, 0, 9)), 32, None, 6, 0);
        local.header.table = 255;
        let routes = vec![
            ours,
            local,
            route(None, 0, Some(Ipv4Addr::new(198, 18, 0, 1)), 2, 0),
        ];
        assert_eq!(lookup(&routes, [198, 18, 0, 9], 0).map(|r| r.oif), Some(2));
        assert_eq!(lookup(&routes[..2], [198, 18, 0, 9], 0), None);
    }
}
