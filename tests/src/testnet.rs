//! Multi-host test networks: network namespaces ("hosts") joined by veth pairs ("links")
//!
//! ```no_run
//! use quictun_tests::testnet::{self, TestNet};
//! if !testnet::require_root() { return; }
//! let net = TestNet::new().unwrap();
//! let a = net.host("a").unwrap();
//! let b = net.host("b").unwrap();
//! let link = net.link(&a, &b, None).unwrap();
//! let out = a.command(std::process::Command::new("ip").arg("addr")).unwrap();
//! # let _ = (link, out);
//! ```
//!
//! Rules this module enforces for every test: namespaces are named
//! `qtnet-<pid>-<net>-<host>` (see [`ns_prefix`]) and all of them are deleted when the
//! [`TestNet`] drops, also while a failing test unwinds; namespaces left by a killed test run
//! (whose pid no longer exists) are reaped by the next [`TestNet::new`]. Veth pairs are created
//! inside the hosts, never in the caller's namespace, and addresses come only from
//! 198.18.0.0/15 and fd00::/8.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netdev::{NetNs, Netlink, NetlinkError};

/// Prefix of every namespace this harness creates
pub const NS_PREFIX: &str = "qtnet-";

/// Bound on any single namespace configuration step
const STEP_LIMIT: Duration = Duration::from_secs(20);

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// `qtnet-<pid>-`: the prefix of the namespaces created by this process
pub fn ns_prefix() -> String {
    format!("{NS_PREFIX}{}-", std::process::id())
}

/// Names of the namespaces in /run/netns that start with `prefix`
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(netdev::netns::NETNS_RUN_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// True when running as root with /dev/net/tun; otherwise prints why the test is skipped
pub fn require_root() -> bool {
    let ok = nix::unistd::geteuid().is_root() && std::path::Path::new("/dev/net/tun").exists();
    if !ok {
        eprintln!("skipping: needs root and /dev/net/tun");
    }
    ok
}

/// Delete namespaces with our prefix whose creating process is gone (a test run that was killed
/// before its Drop guards could run). Only names of the form `qtnet-<pid>-...` are touched.
fn reap_stale() {
    for name in namespaces_with_prefix(NS_PREFIX) {
        let pid = name[NS_PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(ns) = NetNs::open(&name) {
            let _ = ns.delete();
        }
    }
}

/// Run `f` on a current-thread tokio runtime inside `ns`, bounded by `limit`
fn block_on_in<F, Fut, R>(ns: &NetNs, limit: Duration, f: F) -> anyhow::Result<R>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = R>,
    R: Send,
{
    ns.run_in(move || -> anyhow::Result<R> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?;
        rt.block_on(async move { tokio::time::timeout(limit, f()).await })
            .map_err(|_| anyhow::anyhow!("namespace step timed out after {limit:?}"))
    })
    .with_context(|| format!("enter namespace {}", ns.name()))?
}

/// A set of hosts and links; deletes every namespace it created when dropped
#[derive(Debug)]
pub struct TestNet {
    id: u32,
    namespaces: Mutex<Vec<String>>,
    next_link: AtomicU32,
}

impl TestNet {
    /// A new, empty test network (also reaps namespaces left behind by killed runs)
    pub fn new() -> anyhow::Result<Self> {
        reap_stale();
        Ok(Self {
            id: NEXT_NET.fetch_add(1, Ordering::Relaxed),
            namespaces: Mutex::new(Vec::new()),
            next_link: AtomicU32::new(0),
        })
    }

    /// Prefix of this network's namespaces: `qtnet-<pid>-<net>-`
    pub fn prefix(&self) -> String {
        format!("{}{}-", ns_prefix(), self.id)
    }

    /// Create a host: a namespace with `lo` up and IPv6 duplicate address detection off (so
    /// fd00:: addresses work at once instead of after ~1 s of DAD)
    pub fn host(&self, name: &str) -> anyhow::Result<Host> {
        let full = format!("{}{name}", self.prefix());
        let ns = NetNs::create(&full).with_context(|| format!("create namespace {full}"))?;
        // Record it before configuring, so a failure below still gets it deleted.
        self.namespaces
            .lock()
            .map_err(|_| anyhow::anyhow!("testnet lock poisoned"))?
            .push(full.clone());
        let host = Host {
            name: name.to_owned(),
            ns: Arc::new(ns),
        };
        for key in [
            "net/ipv6/conf/all/accept_dad",
            "net/ipv6/conf/default/accept_dad",
        ] {
            host.sysctl(key, "0")?;
        }
        host.netlink(|nl| async move {
            let lo = nl.link_index("lo").await?;
            nl.set_up(lo).await
        })
        .context("bring lo up")?;
        Ok(host)
    }

    /// Join `a` and `b` with a veth pair; `a` gets the first host address of the subnet, `b`
    /// the second, plus `fd00:18:<n>::1/64` and `::2/64`
    ///
    /// `subnet` must lie in 198.18.0.0/15 and hold at least two hosts; `None` allocates the next
    /// free /24 of 198.18.0.0/16 for this network (198.19.0.0/16 stays free for tunnels).
    pub fn link(&self, a: &Host, b: &Host, subnet: Option<Ipv4Net>) -> anyhow::Result<Link> {
        let n = self.next_link.fetch_add(1, Ordering::Relaxed) + 1;
        if n > 255 {
            bail!("too many links in one TestNet");
        }
        if Arc::ptr_eq(&a.ns, &b.ns) {
            bail!("a link needs two different hosts");
        }
        let pool: Ipv4Net = "198.18.0.0/15".parse()?;
        let subnet = match subnet {
            Some(s) => {
                if !pool.contains(&s) || s.prefix_len() > 30 {
                    bail!("subnet {s} must be inside 198.18.0.0/15 and at most a /30");
                }
                s.trunc()
            }
            None => Ipv4Net::new(Ipv4Addr::new(198, 18, n as u8, 0), 24)?,
        };
        let mut hosts = subnet.hosts();
        let (Some(a4), Some(b4)) = (hosts.next(), hosts.next()) else {
            bail!("subnet {subnet} has fewer than two host addresses");
        };
        let v6 = Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x18, n as u16, 0, 0, 0, 0, 0), 64)?;
        let a6 = Ipv6Addr::new(0xfd00, 0x18, n as u16, 0, 0, 0, 0, 1);
        let b6 = Ipv6Addr::new(0xfd00, 0x18, n as u16, 0, 0, 0, 0, 2);
        let link = Link {
            a: LinkEnd {
                host: a.clone(),
                ifname: format!("v{n}a"),
                v4: a4,
                v6: a6,
            },
            b: LinkEnd {
                host: b.clone(),
                ifname: format!("v{n}b"),
                v4: b4,
                v6: b6,
            },
            subnet,
            subnet6: v6,
        };
        let (ifa, ifb) = (link.a.ifname.clone(), link.b.ifname.clone());
        let b_ns = Arc::clone(&b.ns);
        // Create the pair inside `a` and move one end: the caller's namespace never sees it.
        a.netlink(|nl| async move {
            nl.add_veth(&ifa, &ifb).await?;
            let ib = nl.link_index(&ifb).await?;
            nl.move_to_netns_fd(ib, b_ns.fd()).await
        })
        .context("create veth pair")?;
        link.set_up()?;
        Ok(link)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let names = match self.namespaces.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for name in names {
            match NetNs::open(&name) {
                Ok(ns) => {
                    if let Err(e) = ns.delete() {
                        eprintln!("testnet: deleting namespace {name}: {e}");
                    }
                }
                Err(e) => eprintln!("testnet: namespace {name} already gone: {e}"),
            }
        }
    }
}

/// One test host: a network namespace. Cheap to clone; dies with its [`TestNet`].
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    ns: Arc<NetNs>,
}

impl Host {
    /// The short name given to [`TestNet::host`]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace (e.g. its full name for `ip netns exec`, or its fd)
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// Run `f` on a thread inside this host; sockets and runtimes created there belong to it
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> anyhow::Result<R> {
        self.ns
            .run_in(f)
            .with_context(|| format!("enter host {}", self.name))
    }

    /// Run an async closure on a fresh current-thread tokio runtime inside this host, failing
    /// after `limit`
    pub fn block_on<F, Fut, R>(&self, limit: Duration, f: F) -> anyhow::Result<R>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = R>,
        R: Send,
    {
        block_on_in(&self.ns, limit, f)
    }

    /// Run a netdev [`Netlink`] operation inside this host
    pub fn netlink<F, Fut, R>(&self, f: F) -> anyhow::Result<R>
    where
        F: FnOnce(Netlink) -> Fut + Send,
        Fut: Future<Output = Result<R, NetlinkError>>,
        R: Send,
    {
        block_on_in(&self.ns, STEP_LIMIT, || async move {
            let nl = Netlink::new()?;
            f(nl).await
        })?
        .with_context(|| format!("netlink in host {}", self.name))
    }

    /// Add `addr` (with prefix) to interface `ifname`
    pub fn add_address(&self, ifname: &str, addr: IpNet) -> anyhow::Result<()> {
        check_test_range(addr.addr())?;
        let ifname = ifname.to_owned();
        self.netlink(|nl| async move {
            let i = nl.link_index(&ifname).await?;
            nl.add_address(i, addr).await
        })
    }

    /// Remove `addr` from interface `ifname`
    pub fn del_address(&self, ifname: &str, addr: IpNet) -> anyhow::Result<()> {
        let ifname = ifname.to_owned();
        self.netlink(|nl| async move {
            let i = nl.link_index(&ifname).await?;
            nl.del_address(i, addr).await
        })
    }

    /// Addresses currently on `ifname`
    pub fn addresses(&self, ifname: &str) -> anyhow::Result<Vec<IpNet>> {
        let ifname = ifname.to_owned();
        self.netlink(|nl| async move {
            let i = nl.link_index(&ifname).await?;
            nl.addresses(i).await
        })
    }

    /// Write a sysctl of this host's namespace, e.g. `("net/ipv4/ip_forward", "1")`
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        // /proc/sys/net is resolved against the network namespace of the opening thread.
        let path = format!("/proc/sys/{key}");
        self.run(|| std::fs::write(&path, value))?
            .with_context(|| format!("sysctl {key}={value} in host {}", self.name))
    }

    /// Turn on IPv4 and IPv6 forwarding (a router host)
    pub fn enable_forwarding(&self) -> anyhow::Result<()> {
        self.sysctl("net/ipv4/ip_forward", "1")?;
        self.sysctl("net/ipv6/conf/all/forwarding", "1")
    }

    /// Run `cmd` inside this host to completion (not checked for success)
    pub fn command(&self, cmd: &mut Command) -> anyhow::Result<Output> {
        self.ns
            .output(cmd)
            .with_context(|| format!("run {cmd:?} in host {}", self.name))
    }

    /// Run `ip <args>` inside this host and fail unless it succeeds, e.g.
    /// `host.ip(&["route", "add", "198.18.9.0/24", "via", "198.18.1.1"])`
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(Command::new("ip").args(args))?;
        if !out.status.success() {
            bail!(
                "ip {} in host {}: {}",
                args.join(" "),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start `cmd` inside this host; the guard kills it (by pid) when dropped
    pub fn spawn(&self, cmd: &mut Command) -> anyhow::Result<ChildGuard> {
        let child = self
            .ns
            .spawn_command(cmd)
            .with_context(|| format!("spawn {cmd:?} in host {}", self.name))?;
        Ok(ChildGuard { child: Some(child) })
    }
}

/// Refuse addresses outside the ranges tests may use
fn check_test_range(ip: IpAddr) -> anyhow::Result<()> {
    let ok = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || (v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xff00) == 0xfd00,
    };
    if !ok {
        bail!("{ip} is outside the test ranges 198.18.0.0/15 and fd00::/8");
    }
    Ok(())
}

/// One side of a [`Link`]
#[derive(Debug, Clone)]
pub struct LinkEnd {
    /// The host this end lives in
    pub host: Host,
    /// Interface name inside that host
    pub ifname: String,
    /// IPv4 address (prefix length: [`Link::subnet`])
    pub v4: Ipv4Addr,
    /// IPv6 address in [`Link::subnet6`]
    pub v6: Ipv6Addr,
}

impl LinkEnd {
    fn nets(&self, prefix4: u8) -> anyhow::Result<[IpNet; 2]> {
        Ok([
            IpNet::V4(Ipv4Net::new(self.v4, prefix4)?),
            IpNet::V6(Ipv6Net::new(self.v6, 64)?),
        ])
    }

    /// Give the interface its addresses (those missing) and bring it up
    fn configure(&self, prefix4: u8) -> anyhow::Result<()> {
        let ifname = self.ifname.clone();
        let nets = self.nets(prefix4)?;
        self.host.netlink(|nl| async move {
            let i = nl.link_index(&ifname).await?;
            let have = nl.addresses(i).await?;
            for net in nets {
                if !have.contains(&net) {
                    match nl.add_address(i, net).await {
                        Ok(()) | Err(NetlinkError::Exists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            nl.set_up(i).await
        })
    }

    /// Wait (bounded) until no IPv6 address of the interface is tentative: even without DAD the
    /// kernel finishes address setup asynchronously after the carrier comes up, and binding a
    /// tentative address fails with EADDRNOTAVAIL
    fn wait_ready(&self) -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let out =
                self.host
                    .ip(&["-6", "-o", "addr", "show", "dev", &self.ifname, "tentative"])?;
            if out.trim().is_empty() {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "{} in host {}: addresses still tentative: {out}",
                    self.ifname,
                    self.host.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn set_down(&self) -> anyhow::Result<()> {
        let ifname = self.ifname.clone();
        self.host.netlink(|nl| async move {
            let i = nl.link_index(&ifname).await?;
            nl.set_down(i).await
        })
    }
}

/// A veth pair between two hosts
#[derive(Debug, Clone)]
pub struct Link {
    /// The first host's end (first address of the subnet)
    pub a: LinkEnd,
    /// The second host's end
    pub b: LinkEnd,
    /// The IPv4 subnet of the link
    pub subnet: Ipv4Net,
    /// The IPv6 subnet of the link (`fd00:18:<n>::/64`)
    pub subnet6: Ipv6Net,
}

impl Link {
    /// Take both ends down (traffic stops; connected routes disappear until [`Link::set_up`])
    pub fn set_down(&self) -> anyhow::Result<()> {
        self.a.set_down()?;
        self.b.set_down()
    }

    /// Bring both ends up (again), restoring any address the kernel dropped while down, and
    /// wait until their addresses are usable
    pub fn set_up(&self) -> anyhow::Result<()> {
        self.a.configure(self.subnet.prefix_len())?;
        self.b.configure(self.subnet.prefix_len())?;
        self.a.wait_ready()?;
        self.b.wait_ready()
    }
}

/// A child process that is terminated (SIGTERM, then SIGKILL after 2 s) by pid when dropped
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// The child's pid
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The child, e.g. to take its stdout
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Wait up to `limit` for the child to exit by itself
    pub fn wait_timeout(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Terminate now: SIGTERM, then SIGKILL if it has not exited within 2 s; returns its status
    pub fn terminate(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Graceful first so a daemon can remove its own state (routes, sockets).
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if let Some(st) = child.try_wait()? {
                return Ok(Some(st));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill()?;
        Ok(Some(child.wait()?))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}
