//! Full tunnels: routes that take everything without swallowing the tunnel's own packets
//!
//! A client whose allowed prefixes include `0.0.0.0/0` (or any prefix covering its server's
//! endpoint) would send its encrypted UDP packets into its own TUN: a routing loop, the
//! second most common VPN complaint. Two measures:
//! - a `/0` becomes two `/1` routes, which win over the existing default route by prefix length
//!   without replacing it (so teardown has nothing to restore);
//! - each covered endpoint gets a host route through the underlay route that reached it before,
//!   refreshed when the underlay changes (a roaming client's new uplink).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netdev::{Netlink, NetlinkError, UnderlayRoute};

use crate::config::Config;

/// The routes to install into the TUN for the allowed prefix `net`: a default route becomes
/// its two halves
pub fn tunnel_routes(net: IpNet) -> Vec<IpNet> {
    match net {
        IpNet::V4(n) if n.prefix_len() == 0 => vec![
            IpNet::V4(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 1).unwrap_or(n)),
            IpNet::V4(Ipv4Net::new(Ipv4Addr::new(128, 0, 0, 0), 1).unwrap_or(n)),
        ],
        IpNet::V6(n) if n.prefix_len() == 0 => vec![
            IpNet::V6(Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 1).unwrap_or(n)),
            IpNet::V6(Ipv6Net::new(Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0), 1).unwrap_or(n)),
        ],
        other => vec![other],
    }
}

/// Endpoints of client peers that one of the routes sent into the TUN would capture
pub fn captured_endpoints(config: &Config, routed: &[IpNet]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = config
        .peers
        .iter()
        .filter_map(|p| p.endpoint)
        .map(|e| e.ip())
        .filter(|ip| routed.iter().any(|r| r.contains(ip)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Why a full tunnel could not keep its endpoint outside the tunnel
#[derive(Debug, thiserror::Error)]
pub enum BypassError {
    /// Nothing but the tunnel routes to the endpoint
    #[error(
        "no route to peer endpoint {0} outside the tunnel: add a default route on the underlay \
         before `quictun up`, or leave the endpoint out of allowed_ips"
    )]
    NoUnderlayRoute(IpAddr),
    /// The kernel refused the lookup or the host route
    #[error("host route to peer endpoint {endpoint}: {source}")]
    Netlink {
        /// The peer endpoint
        endpoint: IpAddr,
        /// The kernel's answer
        source: NetlinkError,
    },
}

/// One endpoint's host route, as installed
#[derive(Debug, Clone, Copy)]
struct Installed {
    endpoint: IpAddr,
    /// The route we added, or `None` while the underlay offers none (or an administrator's own
    /// host route was already there)
    via: Option<UnderlayRoute>,
}

/// Host routes that keep peer endpoints out of the tunnel
#[derive(Debug)]
pub struct EndpointBypass {
    tun_index: u32,
    routes: Vec<Installed>,
}

impl EndpointBypass {
    /// Route each of `endpoints` through the underlay route that reaches it now
    pub async fn install(
        nl: &Netlink,
        tun_index: u32,
        endpoints: &[IpAddr],
    ) -> Result<Self, BypassError> {
        let mut bypass = Self {
            tun_index,
            routes: Vec::new(),
        };
        for &endpoint in endpoints {
            let via = match nl.underlay_route(endpoint, tun_index).await {
                Ok(Some(via)) => via,
                Ok(None) => {
                    bypass.remove(nl).await;
                    return Err(BypassError::NoUnderlayRoute(endpoint));
                }
                Err(source) => {
                    bypass.remove(nl).await;
                    return Err(BypassError::Netlink { endpoint, source });
                }
            };
            match nl.add_endpoint_route(endpoint, &via).await {
                Ok(added) => {
                    tracing::info!(
                        "full tunnel: peer endpoint {endpoint} stays on the underlay (via {:?} on link {})",
                        via.gateway,
                        via.oif
                    );
                    bypass.routes.push(Installed {
                        endpoint,
                        via: added.then_some(via),
                    });
                }
                Err(source) => {
                    bypass.remove(nl).await;
                    return Err(BypassError::Netlink { endpoint, source });
                }
            }
        }
        Ok(bypass)
    }

    /// Nothing to keep out of the tunnel
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Follow underlay changes: move each host route to the route that reaches the endpoint now
    ///
    /// Returns how many routes changed. When no underlay route is left (uplink down) the old
    /// host route is removed; the tunnel cannot carry its own packets, so traffic waits for
    /// the next uplink instead of looping.
    pub async fn refresh(&mut self, nl: &Netlink) -> usize {
        let mut changed = 0;
        for r in &mut self.routes {
            let now = match nl.underlay_route(r.endpoint, self.tun_index).await {
                Ok(now) => now,
                Err(e) => {
                    tracing::debug!("full tunnel: route lookup for {}: {e}", r.endpoint);
                    continue;
                }
            };
            if now == r.via {
                continue;
            }
            if let Some(old) = r.via.take() {
                if let Err(e) = nl.del_endpoint_route(r.endpoint, &old).await {
                    tracing::debug!("full tunnel: removing old route to {}: {e}", r.endpoint);
                }
            }
            if let Some(via) = now {
                match nl.add_endpoint_route(r.endpoint, &via).await {
                    Ok(true) => r.via = Some(via),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("full tunnel: route to {}: {e}", r.endpoint),
                }
            }
            tracing::info!(
                "full tunnel: peer endpoint {} now via {:?}",
                r.endpoint,
                r.via
            );
            changed += 1;
        }
        changed
    }

    /// Remove every host route we added
    pub async fn remove(&mut self, nl: &Netlink) {
        for r in self.routes.drain(..) {
            if let Some(via) = r.via {
                if let Err(e) = nl.del_endpoint_route(r.endpoint, &via).await {
                    tracing::debug!("removing route to {}: {e}", r.endpoint);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    #[test]
    fn default_routes_split_into_halves_and_others_stay() {
        assert_eq!(
            tunnel_routes(net("0.0.0.0/0")),
            vec![net("0.0.0.0/1"), net("128.0.0.0/1")]
        );
        assert_eq!(
            tunnel_routes(net("::/0")),
            vec![net("::/1"), net("8000::/1")]
        );
        assert_eq!(
            tunnel_routes(net("198.19.0.0/24")),
            vec![net("198.19.0.0/24")]
        );
        // The halves together cover exactly what the default did
        for ip in ["198.18.0.1", "1.2.3.4", "255.255.255.255", "0.0.0.0"] {
            let ip: IpAddr = ip.parse().expect("address");
            assert!(tunnel_routes(net("0.0.0.0/0"))
                .iter()
                .any(|r| r.contains(&ip)));
        }
    }
}
