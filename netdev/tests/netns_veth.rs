//! Two network namespaces joined by a veth pair, configured through netdev's netlink API
//!
//! Root only: skips with a message otherwise. Everything lives inside namespaces this test
//! creates (the veth pair is created inside the first one), and the namespace guards delete
//! them on drop, also when an assertion fails.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipnet::IpNet;
use netdev::{IpVersion, NetEvent, NetNs, NetNsGuard, NetWatcher, Netlink, NetlinkError};

const A_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const LIMIT: Duration = Duration::from_secs(20);

fn privileged() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping: netns/veth tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
    }
    root
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

/// Run an async block on a current-thread runtime inside `ns`, bounded by [`LIMIT`]
fn in_ns<F, Fut, R>(ns: &NetNs, f: F) -> R
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = R>,
    R: Send,
{
    ns.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            tokio::time::timeout(LIMIT, f())
                .await
                .expect("namespace step timed out")
        })
    })
    .expect("enter namespace")
}

/// Wait for the first watcher event matching `want`
async fn expect_event(w: &mut NetWatcher, want: impl Fn(&NetEvent) -> bool, what: &str) {
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = w.next().await {
            if want(&ev) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "watcher never reported {what}");
}

#[test]
fn veth_between_namespaces() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let a: NetNsGuard = NetNs::create(&format!("qtnd-{pid}-a"))
        .expect("create ns a")
        .into_guard();
    let b: NetNsGuard = NetNs::create(&format!("qtnd-{pid}-b"))
        .expect("create ns b")
        .into_guard();
    let va = format!("qva{}", pid % 1_000_000);
    let vb = format!("qvb{}", pid % 1_000_000);
    let b_ns: &NetNs = &b;

    // Namespace A: create the pair, hand one end to B, configure A's end, exercise the API
    // and the watcher.
    let ia = in_ns(&a, || async {
        let nl = Netlink::new().expect("netlink");
        let mut watcher = NetWatcher::new().expect("watcher");
        nl.add_veth(&va, &vb).await.expect("veth");
        let ia = nl.link_index(&va).await.expect("index a");
        let ib = nl.link_index(&vb).await.expect("index b");
        nl.move_to_netns_fd(ib, b_ns.fd()).await.expect("move to b");
        assert!(matches!(
            nl.link_index(&vb).await,
            Err(NetlinkError::NoSuchLink(_))
        ));

        nl.set_mtu(ia, 1400).await.expect("mtu");
        nl.add_address(ia, net("198.18.0.1/30"))
            .await
            .expect("address");
        expect_event(
            &mut watcher,
            |e| {
                *e == NetEvent::AddressAdded {
                    index: ia,
                    addr: net("198.18.0.1/30"),
                }
            },
            "198.18.0.1/30 added",
        )
        .await;
        assert!(matches!(
            nl.add_address(ia, net("198.18.0.1/30")).await,
            Err(NetlinkError::Exists { .. })
        ));
        nl.add_address(ia, net("fd00:18::1/64")).await.expect("v6");
        nl.set_up(ia).await.expect("up");

        // A second address, removed again: the watcher must see both edges.
        nl.add_address(ia, net("198.18.0.9/32")).await.expect("add");
        let addrs = nl.addresses(ia).await.expect("list");
        for want in ["198.18.0.1/30", "198.18.0.9/32", "fd00:18::1/64"] {
            assert!(addrs.contains(&net(want)), "{want} missing from {addrs:?}");
        }
        nl.del_address(ia, net("198.18.0.9/32")).await.expect("del");
        expect_event(
            &mut watcher,
            |e| {
                *e == NetEvent::AddressRemoved {
                    index: ia,
                    addr: net("198.18.0.9/32"),
                }
            },
            "198.18.0.9/32 removed",
        )
        .await;
        assert!(!nl
            .addresses(ia)
            .await
            .expect("list")
            .contains(&net("198.18.0.9/32")));

        // Routes: a prefix and a default route via the device, added and deleted.
        nl.add_route(net("198.18.4.0/24"), ia).await.expect("route");
        expect_event(
            &mut watcher,
            |e| *e == NetEvent::RouteChanged,
            "a route change",
        )
        .await;
        nl.del_route(net("198.18.4.0/24"), ia)
            .await
            .expect("del route");
        nl.add_default_route(IpVersion::V4, ia)
            .await
            .expect("default route");
        nl.del_default_route(IpVersion::V4, ia)
            .await
            .expect("del default route");
        assert!(nl.del_route(net("198.18.4.0/24"), ia).await.is_err());
        ia
    });

    // Namespace B: configure its end.
    in_ns(&b, || async {
        let nl = Netlink::new().expect("netlink");
        let ib = nl.link_index(&vb).await.expect("index b in ns b");
        nl.add_address(ib, net("198.18.0.2/30"))
            .await
            .expect("address b");
        nl.set_up(ib).await.expect("up b");
    });

    // UDP across: sockets are created inside each namespace and stay there when used here.
    let sa = a
        .run_in(|| UdpSocket::bind((A_ADDR, 0)))
        .expect("ns a")
        .expect("bind a");
    let sb = b
        .run_in(|| UdpSocket::bind((B_ADDR, 0)))
        .expect("ns b")
        .expect("bind b");
    sb.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let to = sb.local_addr().expect("addr");
    let mut buf = [0u8; 64];
    // The first datagram can be lost while ARP resolves; retry a few times.
    let mut got = None;
    for _ in 0..5 {
        sa.send_to(b"across", to).expect("send");
        if let Ok((n, from)) = sb.recv_from(&mut buf) {
            got = Some((n, from));
            break;
        }
    }
    let (n, from) = got.expect("UDP datagram crossed the veth");
    assert_eq!(&buf[..n], b"across");
    assert_eq!(from.ip(), IpAddr::V4(A_ADDR));
    assert_ne!(from, SocketAddr::from((B_ADDR, 0)));

    // ping across, when iputils-ping is installed.
    if Command::new("ping").arg("-V").output().is_ok() {
        let mut ping = Command::new("ping");
        ping.args(["-c", "1", "-W", "5", &B_ADDR.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = a.output(&mut ping).expect("run ping").status;
        assert!(status.success(), "ping from ns a to 198.18.0.2 failed");
    } else {
        eprintln!("ping not installed (apt-get install -y iputils-ping): checked with UDP only");
    }

    // Tear down explicitly (deleting one end removes both), then the namespaces.
    in_ns(&a, || async {
        let nl = Netlink::new().expect("netlink");
        nl.delete_link(ia).await.expect("delete veth");
        assert!(matches!(
            nl.link_index(&va).await,
            Err(NetlinkError::NoSuchLink(_))
        ));
    });
    let names = [a.name().to_owned(), b.name().to_owned()];
    a.delete().expect("delete ns a");
    b.delete().expect("delete ns b");
    for name in names {
        assert!(matches!(
            NetNs::open(&name),
            Err(netdev::NetNsError::NotFound(_))
        ));
    }
}

#[test]
fn guard_deletes_on_panic() {
    if !privileged() {
        return;
    }
    let name = format!("qtnd-{}-panic", std::process::id());
    let inner = name.clone();
    let result = std::panic::catch_unwind(move || {
        let ns = NetNs::create(&inner).expect("create").into_guard();
        assert!(NetNs::open(ns.name()).is_ok());
        panic!("simulated test failure");
    });
    assert!(result.is_err());
    assert!(matches!(
        NetNs::open(&name),
        Err(netdev::NetNsError::NotFound(_))
    ));
    // Creating an existing name is refused.
    let ns = NetNs::create(&name).expect("create").into_guard();
    assert!(matches!(
        NetNs::create(&name),
        Err(netdev::NetNsError::Exists(_))
    ));
    ns.delete().expect("delete");
}
