//! The Linux [`TunDevice`] on tun-rs
//!
//! With offload (IFF_VNET_HDR + TSO/USO, on by default when the kernel supports it) the kernel
//! hands us up to 64 KiB TCP/UDP super-packets behind a virtio-net header; `recv_batch` splits
//! them into MTU-sized packets with tun-rs `recv_multiple`, and `send_batch` coalesces packets of
//! one flow with tun-rs `send_multiple` and a GRO table. `recv`/`send` stay correct in that mode:
//! `recv` hands out the split packets one at a time, `send` prepends an empty virtio header.
//! Without kernel support the device opens without offload and behaves as a plain TUN.
//!
//! The device belongs to the network namespace of the thread that opens it: open it inside
//! [`crate::NetNs::run_in`] to place it in another namespace.

use std::io;

use ipnet::{Ipv4Net, Ipv6Net};
use nix::errno::Errno;
use tokio::sync::Mutex;
use tun_rs::{AsyncDevice, DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use crate::TunDevice;

/// Largest read from an offloaded TUN: the virtio header plus a 64 KiB super-packet
/// The largest IP packet (the 16-bit total length), which bounds any MTU
const MAX_IP_PACKET: usize = 65535;
const OFFLOAD_READ_BUF: usize = VIRTIO_NET_HDR_LEN + 65535;

/// Capacity of each write buffer: tun-rs coalesces a flow's packets into the first buffer of
/// the group only when it can hold a whole 64 KiB super-packet plus twice the header room
/// without reallocating; smaller buffers silently turn GRO off (one write per packet)
const OFFLOAD_WRITE_BUF: usize = 2 * VIRTIO_NET_HDR_LEN + 65535;

/// Buffers to offer [`TunDevice::recv_batch`] on an offloaded device so that it splits a
/// super-packet straight into them (each at least [`RECV_BUF_SIZE`] bytes): one copy per
/// packet fewer than with fewer or smaller buffers, which go through a staging area
pub const RECV_BATCH: usize = IDEAL_BATCH_SIZE;
/// Size of each buffer for the direct split (any IP packet fits, whatever the MTU becomes)
pub const RECV_BUF_SIZE: usize = MAX_IP_PACKET;

/// Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL)
const IFNAME_MAX: usize = 15;

/// How to open a [`LinuxTun`]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes)
    pub name: String,
    /// Interface MTU
    pub mtu: u16,
    /// IPv4 address and prefix to assign, e.g. `198.18.0.1/24`
    pub ipv4: Option<Ipv4Net>,
    /// IPv6 address and prefix to assign, e.g. `fd00::1/64`
    pub ipv6: Option<Ipv6Net>,
    /// Ask for offload (TSO/USO + GRO); silently off when the kernel refuses
    pub offload: bool,
    /// Open with IFF_MULTI_QUEUE so [`LinuxTun::clone_queue`] can add queues
    pub multi_queue: bool,
}

impl TunConfig {
    /// A config with `name` and `mtu`, no addresses, offload on, single queue
    pub fn new(name: impl Into<String>, mtu: u16) -> Self {
        Self {
            name: name.into(),
            mtu,
            ipv4: None,
            ipv6: None,
            offload: true,
            multi_queue: false,
        }
    }
}

/// Failures opening or configuring a TUN device; messages name the fix
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunError {
    /// /dev/net/tun is missing
    #[error("/dev/net/tun not found: load the tun module (modprobe tun) or run in a container with /dev/net/tun")]
    NoTunDevice,
    /// EPERM/EACCES from the kernel
    #[error("creating TUN device {0:?}: permission denied: run as root or grant CAP_NET_ADMIN")]
    PermissionDenied(String),
    /// An interface of that name exists already
    #[error("interface name {0:?} is in use: choose another interface name")]
    NameInUse(String),
    /// Empty, longer than 15 bytes, or containing `/`, whitespace or NUL
    #[error(
        "invalid interface name {0:?}: use 1-15 characters without '/', ':', whitespace or NUL"
    )]
    InvalidName(String),
    /// MTU below the IPv4 minimum (68) or, with an IPv6 address, below 1280
    #[error("MTU {0} too small (IPv4 needs >= 68, IPv6 >= 1280)")]
    InvalidMtu(u16),
    /// Called outside a tokio runtime, whose reactor drives the device
    #[error("the TUN device needs a tokio runtime: open it inside one")]
    NoRuntime,
    /// Multi-queue was not enabled when the device was opened
    #[error("multi-queue is off for this device: open it with multi_queue = true")]
    NotMultiQueue,
    /// Any other failure
    #[error("{op}: {source}")]
    Io {
        /// What was attempted
        op: &'static str,
        /// The OS error
        #[source]
        source: io::Error,
    },
}

impl TunError {
    fn classify(name: &str, op: &'static str, e: io::Error) -> Self {
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ENOENT | Errno::ENXIO | Errno::ENODEV) if op == "open" => Self::NoTunDevice,
            Some(Errno::EPERM | Errno::EACCES) => Self::PermissionDenied(name.to_owned()),
            Some(Errno::EBUSY | Errno::EEXIST) => Self::NameInUse(name.to_owned()),
            _ => Self::Io { op, source: e },
        }
    }
}

/// Reader-side state: the raw offload buffer and split packets not yet handed out
struct RxState {
    raw: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    /// Number of valid packets in `bufs`
    ready: usize,
    /// Next packet of `bufs` to hand out
    next: usize,
}

/// Writer-side state: GRO table and reusable buffers with virtio header room
struct TxState {
    gro: GROTable,
    bufs: Vec<Vec<u8>>,
}

/// A Linux TUN device (layer 3, no packet information header)
pub struct LinuxTun {
    dev: AsyncDevice,
    name: String,
    mtu: usize,
    offload: bool,
    multi_queue: bool,
    // Mutexes only serialize the one reader resp. the one writer the trait allows; they keep
    // the offload scratch buffers so no call allocates on the hot path.
    rx: Mutex<RxState>,
    tx: Mutex<TxState>,
}

impl std::fmt::Debug for LinuxTun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxTun")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("offload", &self.offload)
            .field("multi_queue", &self.multi_queue)
            .finish_non_exhaustive()
    }
}

impl LinuxTun {
    /// Create and bring up a TUN device in the calling thread's network namespace
    ///
    /// Needs a tokio runtime (the fd is registered with its reactor).
    pub fn open(cfg: &TunConfig) -> Result<Self, TunError> {
        validate_name(&cfg.name)?;
        let min_mtu = if cfg.ipv6.is_some() { 1280 } else { 68 };
        if cfg.mtu < min_mtu {
            return Err(TunError::InvalidMtu(cfg.mtu));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TunError::NoRuntime);
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err(TunError::NoTunDevice);
        }
        // TUNSETIFF on a name owned by a non-TUN link fails with an ambiguous EINVAL; asking
        // first gives the user the real reason.
        if nix::net::if_::if_nametoindex(cfg.name.as_str()).is_ok() {
            return Err(TunError::NameInUse(cfg.name.clone()));
        }
        let dev = match build(cfg, cfg.offload) {
            Ok(dev) => dev,
            Err(e) if cfg.offload && !is_fatal(&e) => {
                // Kernels without TUN_F_TSO/USO reject TUNSETOFFLOAD; run without offload.
                tracing::info!(
                    "TUN offload unavailable ({e}); opening {} without it",
                    cfg.name
                );
                build(cfg, false).map_err(|e| TunError::classify(&cfg.name, "open", e))?
            }
            Err(e) => return Err(TunError::classify(&cfg.name, "open", e)),
        };
        // tun-rs reports whether IFF_VNET_HDR (and so TSO) really is active.
        let offload = dev.tcp_gso();
        Ok(Self::wrap(
            dev,
            cfg.name.clone(),
            cfg.mtu,
            offload,
            cfg.multi_queue,
        ))
    }

    fn wrap(dev: AsyncDevice, name: String, mtu: u16, offload: bool, multi_queue: bool) -> Self {
        let mtu = usize::from(mtu);
        // The staging buffers for split segments are allocated on first use: callers that
        // offer RECV_BATCH buffers of RECV_BUF_SIZE never need them
        let raw = if offload {
            vec![0u8; OFFLOAD_READ_BUF]
        } else {
            Vec::new()
        };
        let (bufs, sizes) = (Vec::new(), Vec::new());
        Self {
            dev,
            name,
            mtu,
            offload,
            multi_queue,
            rx: Mutex::new(RxState {
                raw,
                bufs,
                sizes,
                ready: 0,
                next: 0,
            }),
            tx: Mutex::new(TxState {
                gro: GROTable::default(),
                bufs: Vec::new(),
            }),
        }
    }

    /// Whether offload (virtio header, TSO/USO, GRO) is active
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Kernel interface index
    pub fn if_index(&self) -> Result<u32, TunError> {
        self.dev
            .if_index()
            .map_err(|e| TunError::classify(&self.name, "interface index", e))
    }

    /// Open one more queue of a multi-queue device (one reader/writer task per queue)
    pub fn clone_queue(&self) -> Result<Self, TunError> {
        if !self.multi_queue {
            return Err(TunError::NotMultiQueue);
        }
        let dev = self
            .dev
            .try_clone()
            .map_err(|e| TunError::classify(&self.name, "clone queue", e))?;
        // MTU fits u16: it came from TunConfig::mtu.
        let mtu = u16::try_from(self.mtu).unwrap_or(u16::MAX);
        Ok(Self::wrap(
            dev,
            self.name.clone(),
            mtu,
            self.offload,
            self.multi_queue,
        ))
    }

    /// Read one super-packet and split it into `rx.bufs`
    async fn fill(&self, rx: &mut RxState) -> io::Result<()> {
        let RxState {
            raw, bufs, sizes, ..
        } = rx;
        if bufs.is_empty() {
            // Split segments are as large as the MTU at read time, which may grow after
            // open (`mtu = "auto"`, or `ip link set ... mtu`): size for any IP packet
            *bufs = vec![vec![0u8; MAX_IP_PACKET]; IDEAL_BATCH_SIZE];
            *sizes = vec![0usize; IDEAL_BATCH_SIZE];
        }
        let n = self.dev.recv_multiple(raw, bufs, sizes, 0).await?;
        rx.ready = n;
        rx.next = 0;
        Ok(())
    }
}

impl TunDevice for LinuxTun {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.offload {
            return self.dev.recv(buf).await;
        }
        let mut rx = self.rx.lock().await;
        if rx.next >= rx.ready {
            self.fill(&mut rx).await?;
        }
        let i = rx.next;
        rx.next += 1;
        let len = rx.sizes[i].min(buf.len());
        buf[..len].copy_from_slice(&rx.bufs[i][..len]);
        Ok(len)
    }

    async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        if !self.offload {
            return self.dev.send(packet).await;
        }
        // An all-zero virtio header means GSO_NONE with no checksum request: the packet as is.
        let mut tx = self.tx.lock().await;
        if tx.bufs.is_empty() {
            tx.bufs.push(Vec::new());
        }
        let buf = &mut tx.bufs[0];
        buf.clear();
        buf.resize(VIRTIO_NET_HDR_LEN, 0);
        buf.extend_from_slice(packet);
        let n = self.dev.send(buf).await?;
        Ok(n.saturating_sub(VIRTIO_NET_HDR_LEN))
    }

    async fn recv_batch(&self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<usize> {
        let max = bufs.len().min(sizes.len());
        if max == 0 {
            return Ok(0);
        }
        if !self.offload {
            // Wait for one packet, then take what is already queued without waiting.
            sizes[0] = self.dev.recv(&mut bufs[0]).await?;
            let mut n = 1;
            while n < max {
                match self.dev.try_recv(&mut bufs[n]) {
                    Ok(len) => {
                        sizes[n] = len;
                        n += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            return Ok(n);
        }
        // Offload: hand out the split segments of one super-packet (reading one if none are
        // left over from an earlier call).
        let mut rx = self.rx.lock().await;
        if rx.next >= rx.ready
            && max >= RECV_BATCH
            && bufs[..max].iter().all(|b| b.len() >= RECV_BUF_SIZE)
        {
            // Room for any super-packet's segments: split straight into the caller's buffers
            // (the staging copy below costs as much as the split itself)
            let raw = &mut rx.raw;
            return self
                .dev
                .recv_multiple(raw, &mut bufs[..max], &mut sizes[..max], 0)
                .await;
        }
        if rx.next >= rx.ready {
            self.fill(&mut rx).await?;
        }
        let mut n = 0;
        while n < max && rx.next < rx.ready {
            let i = rx.next;
            let len = rx.sizes[i].min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&rx.bufs[i][..len]);
            sizes[n] = len;
            rx.next += 1;
            n += 1;
        }
        Ok(n)
    }

    async fn send_batch(&self, packets: &[&[u8]]) -> io::Result<()> {
        if !self.offload {
            for packet in packets {
                self.dev.send(packet).await?;
            }
            return Ok(());
        }
        // Step by step: copy each packet behind virtio header room into reusable buffers, let
        // tun-rs coalesce same-flow TCP/UDP packets (GRO table), and write the results.
        let mut tx = self.tx.lock().await;
        let TxState { gro, bufs } = &mut *tx;
        for chunk in packets.chunks(IDEAL_BATCH_SIZE) {
            if bufs.len() < chunk.len() {
                // Allocated once and reused; only the pages a coalesced packet touches are
                // ever faulted in
                bufs.resize_with(chunk.len(), || Vec::with_capacity(OFFLOAD_WRITE_BUF));
            }
            for (buf, packet) in bufs.iter_mut().zip(chunk) {
                buf.clear();
                buf.resize(VIRTIO_NET_HDR_LEN, 0);
                buf.extend_from_slice(packet);
            }
            self.dev
                .send_multiple(gro, &mut bufs[..chunk.len()], VIRTIO_NET_HDR_LEN)
                .await?;
        }
        Ok(())
    }
}

fn build(cfg: &TunConfig, offload: bool) -> io::Result<AsyncDevice> {
    let mut b = DeviceBuilder::new()
        .name(cfg.name.as_str())
        .mtu(cfg.mtu)
        .offload(offload)
        .multi_queue(cfg.multi_queue);
    if let Some(v4) = cfg.ipv4 {
        b = b.ipv4(v4.addr(), v4.prefix_len(), None);
    }
    if let Some(v6) = cfg.ipv6 {
        b = b.ipv6(v6.addr(), v6.prefix_len());
    }
    b.build_async()
}

/// Errors that a retry without offload cannot fix
fn is_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOENT | Errno::EPERM | Errno::EACCES | Errno::EBUSY | Errno::EEXIST)
    )
}

fn validate_name(name: &str) -> Result<(), TunError> {
    let bad = name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
    if bad {
        return Err(TunError::InvalidName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{IpPacket, PROTO_ICMP, PROTO_UDP};
    use crate::NetNs;
    use etherparse::{Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 7, 1);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 18, 7, 2);

    fn privileged() -> bool {
        let ok = nix::unistd::geteuid().is_root() && std::path::Path::new("/dev/net/tun").exists();
        if !ok {
            eprintln!("skipping: TUN tests need root and /dev/net/tun");
        }
        ok
    }

    #[test]
    fn config_is_validated() {
        let long = TunConfig::new("abcdefghijklmnop", 1400);
        assert!(matches!(
            LinuxTun::open(&long),
            Err(TunError::InvalidName(_))
        ));
        let mut v6 = TunConfig::new("qt0", 1000);
        v6.ipv6 = Some("fd00::1/64".parse().expect("net"));
        assert!(matches!(
            LinuxTun::open(&v6),
            Err(TunError::InvalidMtu(1000))
        ));
        assert!(matches!(
            LinuxTun::open(&TunConfig::new("qtok0", 1400)),
            Err(TunError::NoRuntime)
        ));
        let msg = TunError::NoTunDevice.to_string();
        assert!(msg.contains("modprobe tun"), "{msg}");
        assert!(TunError::PermissionDenied("x".into())
            .to_string()
            .contains("CAP_NET_ADMIN"));
        assert!(TunError::NameInUse("x".into())
            .to_string()
            .contains("choose another interface name"));
    }

    #[test]
    fn roundtrip_with_offload() {
        roundtrip(true);
    }

    #[test]
    fn roundtrip_without_offload() {
        roundtrip(false);
    }

    #[test]
    fn multi_queue_clone() {
        if !privileged() {
            return;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let ns = NetNs::create(&format!("qtnd-{pid}-mq{n}"))
            .expect("create netns")
            .into_guard();
        let name = format!("qtm{}x{n}", pid % 100_000);
        ns.run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut cfg = TunConfig::new(name.as_str(), 1400);
                cfg.multi_queue = true;
                let q0 = LinuxTun::open(&cfg).expect("open multi-queue TUN");
                let q1 = q0.clone_queue().expect("second queue");
                assert_eq!(q1.name(), q0.name());
                assert_eq!(q1.offload(), q0.offload());
                assert_eq!(q1.if_index().expect("index"), q0.if_index().expect("index"));
                drop((q0, q1));
                let single = LinuxTun::open(&TunConfig::new(name.as_str(), 1400))
                    .expect("reopen single-queue");
                assert!(matches!(single.clone_queue(), Err(TunError::NotMultiQueue)));
            });
        })
        .expect("run in netns");
    }

    /// In a fresh namespace: kernel → TUN (UDP and ping), TUN → kernel (replies), batch paths
    fn roundtrip(offload: bool) {
        if !privileged() {
            return;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let ns = NetNs::create(&format!("qtnd-{pid}-tun{n}"))
            .expect("create netns")
            .into_guard();
        let name = format!("qtt{}x{n}", pid % 100_000);
        let ns_ref = &*ns;
        ns.run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                tokio::time::timeout(Duration::from_secs(20), body(ns_ref, &name, offload))
                    .await
                    .expect("TUN round trip timed out");
            });
        })
        .expect("run in netns");
        ns.delete().expect("delete netns");
    }

    async fn body(ns: &NetNs, name: &str, offload: bool) {
        let mut cfg = TunConfig::new(name, 1400);
        cfg.ipv4 = Some(Ipv4Net::new(LOCAL, 24).expect("net"));
        cfg.offload = offload;
        let tun = LinuxTun::open(&cfg).expect("open TUN");
        if !offload {
            assert!(!tun.offload());
        }
        eprintln!("TUN {name}: offload active = {}", tun.offload());
        assert!(tun.if_index().expect("index") > 0);
        assert!(matches!(LinuxTun::open(&cfg), Err(TunError::NameInUse(_))));

        // Kernel → device: a UDP datagram routed into the TUN.
        let sock = tokio::net::UdpSocket::bind((LOCAL, 0)).await.expect("bind");
        let sport = sock.local_addr().expect("addr").port();
        sock.send_to(b"to-tun", (REMOTE, 9999)).await.expect("send");
        let mut buf = vec![0u8; 2000];
        loop {
            let len = tun.recv(&mut buf).await.expect("tun recv");
            let Ok(p) = IpPacket::new_checked(&buf[..len]) else {
                continue;
            };
            if p.protocol() == PROTO_UDP && p.dst() == REMOTE {
                assert_eq!(p.src(), LOCAL);
                assert_eq!(p.ports(), Some((sport, 9999)));
                assert_eq!(&p.payload()[8..], b"to-tun");
                break;
            }
        }

        // Device → kernel: single send, then a batch of three.
        let reply = |payload: &[u8]| {
            let mut out = Vec::new();
            PacketBuilder::ipv4(REMOTE.octets(), LOCAL.octets(), 64)
                .udp(9999, sport)
                .write(&mut out, payload)
                .expect("vec");
            out
        };
        tun.send(&reply(b"from-tun")).await.expect("tun send");
        let (len, from) = sock.recv_from(&mut buf).await.expect("udp recv");
        assert_eq!(&buf[..len], b"from-tun");
        assert_eq!(from, SocketAddr::from((REMOTE, 9999)));
        let batch: Vec<Vec<u8>> = (0..3u8).map(|i| reply(&[b'b', i])).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        tun.send_batch(&refs).await.expect("send batch");
        for _ in 0..3 {
            let (len, _) = sock.recv_from(&mut buf).await.expect("udp recv");
            assert_eq!(len, 2);
            assert_eq!(buf[0], b'b');
        }

        // recv_batch: several datagrams queued by the kernel.
        for i in 0..4u8 {
            sock.send_to(&[i], (REMOTE, 9998)).await.expect("send");
        }
        let mut bufs = vec![vec![0u8; 2000]; 8];
        let mut sizes = vec![0usize; 8];
        let mut got = 0;
        while got < 4 {
            let k = tun.recv_batch(&mut bufs, &mut sizes).await.expect("batch");
            assert!(k >= 1);
            got += bufs[..k]
                .iter()
                .zip(&sizes)
                .filter_map(|(b, &s)| IpPacket::new_checked(&b[..s]).ok())
                .filter(|p| p.ports().map(|(_, d)| d) == Some(9998))
                .count();
        }

        // recv_batch with RECV_BATCH buffers of RECV_BUF_SIZE (split straight into them with
        // offload): one UDP GSO send of three 100-byte segments, which reaches an offloaded
        // device as one super-packet (USO) and must come out as the three datagrams.
        let gso = std::net::UdpSocket::bind((LOCAL, 0)).expect("bind gso");
        let gso_port = gso.local_addr().expect("addr").port();
        nix::sys::socket::setsockopt(&gso, nix::sys::socket::sockopt::UdpGsoSegment, &100)
            .expect("UDP_SEGMENT");
        let payload: Vec<u8> = (0..3u8).flat_map(|i| [i; 100]).collect();
        gso.send_to(&payload, (REMOTE, 9997)).expect("gso send");
        let mut bufs = vec![vec![0u8; RECV_BUF_SIZE]; RECV_BATCH];
        let mut sizes = vec![0usize; RECV_BATCH];
        let mut segments: Vec<Vec<u8>> = Vec::new();
        let mut reads = 0;
        while segments.len() < 3 {
            let k = tun.recv_batch(&mut bufs, &mut sizes).await.expect("batch");
            assert!(k >= 1);
            reads += 1;
            for (b, &s) in bufs[..k].iter().zip(&sizes) {
                let Ok(p) = IpPacket::new_checked(&b[..s]) else {
                    continue;
                };
                if p.ports() == Some((gso_port, 9997)) {
                    segments.push(p.payload()[8..].to_vec());
                }
            }
        }
        eprintln!("TUN {name}: the GSO send took {reads} recv_batch call(s)");
        let expected: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100]).collect();
        assert_eq!(segments, expected);

        // ping through the device, answered by us.
        if Command::new("ping").arg("-V").output().is_err() {
            eprintln!("ping not installed (apt-get install -y iputils-ping): skipping ping part");
            return;
        }
        let mut ping = Command::new("ping");
        ping.args(["-c", "1", "-W", "5", &REMOTE.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ns.spawn_command(&mut ping).expect("spawn ping");
        loop {
            let len = tun.recv(&mut buf).await.expect("tun recv");
            let Ok(p) = IpPacket::new_checked(&buf[..len]) else {
                continue;
            };
            if p.protocol() != PROTO_ICMP {
                continue;
            }
            let sliced = SlicedPacket::from_ip(&buf[..len]).expect("parse");
            let Some(TransportSlice::Icmpv4(icmp)) = sliced.transport else {
                continue;
            };
            let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type() else {
                continue;
            };
            let mut out = Vec::new();
            PacketBuilder::ipv4(REMOTE.octets(), LOCAL.octets(), 64)
                .icmpv4_echo_reply(echo.id, echo.seq)
                .write(&mut out, icmp.payload())
                .expect("vec");
            tun.send(&out).await.expect("send echo reply");
            break;
        }
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait ping") {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "ping got no reply through the TUN");
    }
}
