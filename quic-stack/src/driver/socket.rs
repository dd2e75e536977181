//! UDP socket for the tokio driver: GSO/GRO batching, ECN, PKTINFO, large buffers
//!
//! Contract:
//! - Every optional kernel feature degrades gracefully: a missing feature is probed once at
//!   bind time and the socket falls back (GSO → one `sendmsg` per segment, GRO → one datagram
//!   per read, no TOS cmsg → `ecn: None`, no PKTINFO → `local_ip: None`).
//! - GSO is switched off for good after the kernel answers a GSO send with `EIO` (NICs without
//!   checksum offload), and that batch is re-sent segment by segment.
//! - No `unsafe`: system calls go through nix (`sendmsg`/`recvmsg`, socket options) and socket2,
//!   and tokio supplies readiness (`async_io`/`try_io`).
//!
//! Known gap: IPv4 don't-fragment needs `IP_MTU_DISCOVER = IP_PMTUDISC_PROBE`, which neither
//! nix 0.29 nor socket2 0.5 exposes safely; IPv4 sockets keep Linux's default
//! (`IP_PMTUDISC_WANT`: DF set, local fragmentation only above the cached path MTU). IPv6
//! sockets set `IPV6_DONTFRAG`, so oversized sends fail with `EMSGSIZE` instead of fragmenting.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::libc;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage,
};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;

use crate::shared::{EcnCodepoint, RecvMeta, Transmit};

/// Segments per GSO send we rely on: the kernel's UDP_MAX_SEGMENTS is 64 on older kernels
const GSO_MAX_SEGMENTS: usize = 64;
/// The kernel coalesces at most this many datagrams into one GRO read
const GRO_MAX_SEGMENTS: usize = 64;
/// Largest UDP payload of one GSO `sendmsg`. The kernel segments in software any GSO packet
/// whose length *with* link, IP and UDP headers reaches the device's gso_max_size (64 KiB on
/// veth and most NICs): a 65,500-byte batch passes the UDP length check but arrives at the
/// peer as single datagrams, one receive call each, where a smaller one stays whole and is
/// read in one go by a UDP_GRO socket. 14 (Ethernet) + 40 (IPv6) + 8 (UDP) bytes of headers,
/// plus slack for VLAN tags.
const MAX_GSO_PAYLOAD: usize = 65_536 - 14 - 40 - 8 - 8 - 1;
/// Room for IPV6_PKTINFO (20 bytes), UDP_GRO (4) and IP_TOS/IPV6_TCLASS (4), each with a
/// 16-byte header and padding
const CMSG_BUF: usize = 128;

/// Options for [`UdpSocket::bind_with`]
#[derive(Debug, Clone, Eq, PartialEq)]
#[non_exhaustive]
pub struct SocketConfig {
    /// Use UDP GSO when the kernel supports it
    pub gso: bool,
    /// Ask the kernel for UDP GRO (coalesced reads)
    pub gro: bool,
    /// Requested SO_RCVBUF and SO_SNDBUF in bytes
    pub buffer_size: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            gso: true,
            gro: true,
            // The 208 KiB default drops bursts at tunnel rates; ask for several MiB
            buffer_size: 8 << 20,
        }
    }
}

/// One read from the socket: `len` bytes holding datagrams of `stride` bytes (last may be shorter)
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct RecvInfo {
    /// Sender, local address and ECN codepoint (the same for every coalesced datagram)
    pub meta: RecvMeta,
    /// Bytes written into the caller's buffer
    pub len: usize,
    /// Size of each coalesced datagram; equals `len` without GRO
    pub stride: usize,
}

impl RecvInfo {
    /// Number of datagrams in this read
    pub fn segments(&self) -> usize {
        if self.len == 0 {
            1
        } else {
            self.len.div_ceil(self.stride.max(1))
        }
    }
    /// The datagrams of this read within `buf` (the buffer passed to the receive call)
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let data = &buf[..self.len.min(buf.len())];
        // An empty datagram is still one datagram; chunks() would yield nothing for it
        let empty = data.is_empty().then_some(data);
        data.chunks(self.stride.max(1)).chain(empty)
    }
}

/// A UDP socket with GSO/GRO, ECN and PKTINFO support on tokio
#[derive(Debug)]
pub struct UdpSocket {
    io: tokio::net::UdpSocket,
    local: SocketAddr,
    /// GSO segments per send; 1 when GSO is off or unsupported
    gso_segments: AtomicUsize,
    /// GRO segments per read; 1 when GRO is off or unsupported
    gro_segments: usize,
    /// The TOS / traffic class currently set on the socket; the lock also makes
    /// "set ECN + sendmsg" atomic with respect to other senders sharing the socket
    tos: Mutex<u8>,
}

impl UdpSocket {
    /// Bind with the default [`SocketConfig`] (needs a tokio runtime context)
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, &SocketConfig::default())
    }

    /// Bind with explicit options (needs a tokio runtime context)
    pub fn bind_with(addr: SocketAddr, config: &SocketConfig) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        let v6 = addr.is_ipv6();
        if v6 {
            // Dual-stack would hand us v4-mapped addresses; one family per socket is simpler
            socket.set_only_v6(true)?;
        }
        set_buffers(&socket, config.buffer_size);
        // PKTINFO and TOS are best effort: without them the metadata is simply absent
        let soft = |what: &str, r: io::Result<()>| {
            if let Err(e) = r {
                tracing::debug!("udp socket: {what} unavailable: {e}");
            }
        };
        if v6 {
            soft(
                "IPV6_RECVPKTINFO",
                setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(Into::into),
            );
            soft("IPV6_RECVTCLASS", socket.set_recv_tclass_v6(true));
            // RFC 9000 §14: QUIC datagrams must not be fragmented, PMTUD relies on it
            soft(
                "IPV6_DONTFRAG",
                setsockopt(&socket, sockopt::Ipv6DontFrag, &true).map_err(Into::into),
            );
        } else {
            soft(
                "IP_PKTINFO",
                setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).map_err(Into::into),
            );
            soft("IP_RECVTOS", socket.set_recv_tos(true));
        }
        socket.bind(&addr.into())?;
        let gso_segments = if config.gso && probe_gso(&socket) {
            GSO_MAX_SEGMENTS
        } else {
            1
        };
        let gro_segments =
            if config.gro && setsockopt(&socket, sockopt::UdpGroSegment, &true).is_ok() {
                GRO_MAX_SEGMENTS
            } else {
                1
            };
        let std: std::net::UdpSocket = socket.into();
        let io = tokio::net::UdpSocket::from_std(std)?;
        let local = io.local_addr()?;
        Ok(Self {
            io,
            local,
            gso_segments: AtomicUsize::new(gso_segments),
            gro_segments,
            tos: Mutex::new(0),
        })
    }

    /// The bound address (with the port the kernel chose for port 0)
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    /// Most segments one [`Self::send`] passes to the kernel at once; 1 without GSO
    pub fn max_gso_segments(&self) -> usize {
        self.gso_segments.load(Ordering::Relaxed)
    }
    /// Most datagrams one receive can return; 1 without GRO
    pub fn gro_segments(&self) -> usize {
        self.gro_segments
    }
    /// Stop using GSO (e.g. when a test needs the fallback path)
    pub fn disable_gso(&self) {
        self.gso_segments.store(1, Ordering::Relaxed);
    }

    /// Send the transmit whose bytes are `buf[..transmit.size]`
    ///
    /// With `segment_size` set, uses one GSO `sendmsg` per kernel-sized batch, else one
    /// `sendmsg` per segment. Errors (e.g. `EMSGSIZE` for an over-MTU probe) are returned.
    pub async fn send(&self, transmit: &Transmit, buf: &[u8]) -> io::Result<()> {
        let data = &buf[..transmit.size.min(buf.len())];
        let segment = match transmit.segment_size {
            Some(s) if s > 0 && s < data.len() => s,
            _ => return self.send_one(transmit, data, None).await,
        };
        let mut rest = data;
        while !rest.is_empty() {
            let max_segs = self.max_gso_segments();
            if max_segs > 1 && segment <= usize::from(u16::MAX) {
                // 1. One GSO send of as many whole segments as the kernel takes at once.
                let per_batch = max_segs.min(MAX_GSO_PAYLOAD / segment).max(1);
                let (batch, tail) = rest.split_at((segment * per_batch).min(rest.len()));
                match self.send_one(transmit, batch, Some(segment as u16)).await {
                    Ok(()) => {
                        rest = tail;
                        continue;
                    }
                    // 2. EIO means the device cannot segment: give up on GSO for good and
                    //    re-send this batch below, one segment at a time.
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                        tracing::info!("udp socket: GSO send failed with EIO, disabling GSO");
                        self.disable_gso();
                    }
                    Err(e) => return Err(e),
                }
            }
            // 3. Fallback: one datagram per sendmsg.
            for datagram in rest.chunks(segment) {
                self.send_one(transmit, datagram, None).await?;
            }
            break;
        }
        Ok(())
    }

    /// One `sendmsg`, with a GSO segment size when `segment` is set
    async fn send_one(
        &self,
        transmit: &Transmit,
        data: &[u8],
        segment: Option<u16>,
    ) -> io::Result<()> {
        let dest = SockaddrStorage::from(transmit.destination);
        let tos = transmit.ecn.map_or(0, |e| e as u8);
        self.io
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(data)];
                let gso;
                let v4_info;
                let v6_info;
                let mut cmsgs = Vec::with_capacity(2);
                if let Some(s) = segment {
                    gso = s;
                    cmsgs.push(ControlMessage::UdpGsoSegments(&gso));
                }
                match transmit.src_ip {
                    Some(IpAddr::V4(ip)) if self.local.is_ipv4() => {
                        v4_info = pktinfo_v4(ip);
                        cmsgs.push(ControlMessage::Ipv4PacketInfo(&v4_info));
                    }
                    Some(IpAddr::V6(ip)) if self.local.is_ipv6() => {
                        v6_info = pktinfo_v6(ip);
                        cmsgs.push(ControlMessage::Ipv6PacketInfo(&v6_info));
                    }
                    _ => {}
                }
                // nix 0.29 has no TOS control message for sending, so the codepoint is a
                // socket option; the lock keeps another sender from changing it in between.
                let mut current = self.tos.lock().unwrap_or_else(|e| e.into_inner());
                if *current != tos {
                    let sock = SockRef::from(&self.io);
                    if self.local.is_ipv6() {
                        sock.set_tclass_v6(u32::from(tos))?;
                    } else {
                        sock.set_tos(u32::from(tos))?;
                    }
                    *current = tos;
                }
                let fd = self.io.as_raw_fd();
                sendmsg(fd, &iov, &cmsgs, MsgFlags::empty(), Some(&dest))
                    .map(drop)
                    .map_err(io::Error::from)
            })
            .await
    }

    /// Wait for and read one (possibly GRO-coalesced) batch into `buf`
    ///
    /// `buf` should hold 64 KiB: datagrams of a coalesced batch that do not fit are lost.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<RecvInfo> {
        self.io
            .async_io(Interest::READABLE, || self.recv_now(buf))
            .await
    }

    /// Read one batch if one is queued, else `WouldBlock`
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<RecvInfo> {
        self.io.try_io(Interest::READABLE, || self.recv_now(buf))
    }

    /// Wait until readable, then fill as many `bufs` as are queued (at least one)
    ///
    /// Writes `out[i]` for every filled `bufs[i]` and returns how many; batching reads this
    /// way amortises the readiness wait the way recvmmsg amortises the system call.
    pub async fn recv_many(
        &self,
        bufs: &mut [&mut [u8]],
        out: &mut [RecvInfo],
    ) -> io::Result<usize> {
        let n = bufs.len().min(out.len());
        let Some((first, rest)) = bufs[..n].split_first_mut() else {
            return Ok(0);
        };
        out[0] = self.recv(first).await?;
        let mut filled = 1;
        for buf in rest {
            match self.try_recv(buf) {
                Ok(info) => {
                    out[filled] = info;
                    filled += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// One non-blocking `recvmsg` and control-message decoding
    fn recv_now(&self, buf: &mut [u8]) -> io::Result<RecvInfo> {
        // Zeroed so the raw TOS scan below stops at the end of what the kernel wrote
        let mut control = vec![0u8; CMSG_BUF];
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            self.io.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )?;
        let mut len = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        let remote = msg
            .address
            .as_ref()
            .and_then(sockaddr_to_std)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
        let mut local_ip = None;
        let mut stride = len;
        // ENOBUFS here means the control buffer was too small; the data is still good
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                match cmsg {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        local_ip = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            info.ipi_addr.s_addr,
                        ))));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        local_ip = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    }
                    ControlMessageOwned::UdpGroSegments(size) => {
                        if let Ok(size) = usize::try_from(size) {
                            if size > 0 {
                                stride = size;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if truncated && stride < len {
            // A GRO batch larger than `buf`: the datagrams wholly inside it are intact, the cut
            // one is not, so hand out only the whole ones.
            len -= len % stride;
        }
        // nix 0.29 does not decode IP_TOS / IPV6_TCLASS (they arrive as opaque `Unknown`), so
        // the ECN bits are read from the raw control buffer instead.
        let ecn = find_tos(&control).and_then(EcnCodepoint::from_bits);
        Ok(RecvInfo {
            meta: RecvMeta {
                remote,
                local_ip,
                ecn,
            },
            len,
            stride,
        })
    }
}

/// Large socket buffers: the *FORCE variants bypass rmem_max/wmem_max when we are root
fn set_buffers(socket: &Socket, size: usize) {
    if setsockopt(socket, sockopt::RcvBufForce, &size).is_err() {
        if let Err(e) = socket.set_recv_buffer_size(size) {
            tracing::debug!("udp socket: SO_RCVBUF {size}: {e}");
        }
    }
    if setsockopt(socket, sockopt::SndBufForce, &size).is_err() {
        if let Err(e) = socket.set_send_buffer_size(size) {
            tracing::debug!("udp socket: SO_SNDBUF {size}: {e}");
        }
    }
}

/// True when the kernel knows UDP_SEGMENT (Linux 4.18+); reading it is harmless
fn probe_gso(socket: &Socket) -> bool {
    nix::sys::socket::getsockopt(socket, sockopt::UdpGsoSegment).is_ok()
}

fn pktinfo_v4(ip: Ipv4Addr) -> libc::in_pktinfo {
    libc::in_pktinfo {
        ipi_ifindex: 0,
        // ipi_spec_dst selects the source address; ifindex 0 lets routing pick the device
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    }
}

fn pktinfo_v6(ip: Ipv6Addr) -> libc::in6_pktinfo {
    libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: ip.octets(),
        },
        ipi6_ifindex: 0,
    }
}

fn sockaddr_to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// The TOS byte from an IP_TOS or IPV6_TCLASS control message in a raw cmsg buffer
///
/// Layout (Linux): `cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }`, data after
/// the header, each message padded to `size_t` alignment. Bounds-checked: never panics.
fn find_tos(control: &[u8]) -> Option<u8> {
    const WORD: usize = size_of::<usize>();
    let header = size_of::<libc::cmsghdr>();
    let mut offset = 0;
    while let Some(hdr) = control.get(offset..offset + header) {
        let len = usize::from_ne_bytes(hdr.get(..WORD)?.try_into().ok()?);
        let level = i32::from_ne_bytes(hdr.get(WORD..WORD + 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(hdr.get(WORD + 4..WORD + 8)?.try_into().ok()?);
        // A zero length is the untouched tail of the zeroed buffer
        if len < header {
            return None;
        }
        let data = control.get(offset + header..offset + len)?;
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_TOS) => return data.first().copied(),
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                let class = i32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
                return u8::try_from(class & 0xff).ok();
            }
            _ => {}
        }
        offset += len.checked_next_multiple_of(WORD)?;
    }
    None
}

#[cfg(test)]
mod tests;
