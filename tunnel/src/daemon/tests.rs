use std::io;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::carriage::CarriageMode;
use crate::ip::build;
use crate::router::{DropReason, PeerSpec};

/// In-memory TUN: the test plays the kernel on the other side
struct MemTun {
    name: String,
    from_kernel: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    to_kernel: mpsc::UnboundedSender<Vec<u8>>,
}

struct Kernel {
    inject: mpsc::UnboundedSender<Vec<u8>>,
    written: mpsc::UnboundedReceiver<Vec<u8>>,
}

fn mem_tun(name: &str) -> (Arc<MemTun>, Kernel) {
    let (inject, from_kernel) = mpsc::unbounded_channel();
    let (to_kernel, written) = mpsc::unbounded_channel();
    (
        Arc::new(MemTun {
            name: name.into(),
            from_kernel: tokio::sync::Mutex::new(from_kernel),
            to_kernel,
        }),
        Kernel { inject, written },
    )
}

impl TunDevice for MemTun {
    fn name(&self) -> &str {
        &self.name
    }
    fn mtu(&self) -> usize {
        1280
    }
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let p = self
            .from_kernel
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "closed"))?;
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p[..n]);
        Ok(n)
    }
    async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.to_kernel
            .send(packet.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "closed"))?;
        Ok(packet.len())
    }
}

/// In-memory link: one end of a pair
struct MemLink {
    tx: mpsc::UnboundedSender<Bytes>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Bytes>>,
    max: usize,
}

fn link_pair(max: usize) -> (Arc<MemLink>, Arc<MemLink>) {
    let (atx, brx) = mpsc::unbounded_channel();
    let (btx, arx) = mpsc::unbounded_channel();
    (
        Arc::new(MemLink {
            tx: atx,
            rx: tokio::sync::Mutex::new(arx),
            max,
        }),
        Arc::new(MemLink {
            tx: btx,
            rx: tokio::sync::Mutex::new(brx),
            max,
        }),
    )
}

impl PacketLink for MemLink {
    async fn send(&self, packet: Bytes) -> Result<(), LinkError> {
        if packet.len() > self.max {
            return Err(LinkError::TooLarge {
                len: packet.len(),
                max: self.max,
            });
        }
        self.tx.send(packet).map_err(|_| LinkError::Closed)
    }
    async fn recv(&self) -> Result<Bytes, LinkError> {
        self.rx.lock().await.recv().await.ok_or(LinkError::Closed)
    }
    fn max_packet_size(&self) -> usize {
        self.max
    }
}

fn fake_ptb(original: &[u8], mtu: u32, from: IpAddr) -> Option<Vec<u8>> {
    // Marker reply: "PTB", the MTU, the source we were told to use, then the original's length
    let mut v = b"PTB".to_vec();
    v.extend_from_slice(&mtu.to_be_bytes());
    v.extend_from_slice(from.to_string().as_bytes());
    v.push(original.len() as u8);
    Some(v)
}

fn peer(name: &str, nets: &[&str]) -> PeerSpec {
    PeerSpec {
        name: name.into(),
        allowed_ips: nets.iter().map(|n| n.parse().unwrap()).collect(),
        carriage: CarriageMode::Datagram,
    }
}

fn udp(src: &str, dst: &str, payload: usize) -> Vec<u8> {
    build::udp(
        src.parse().unwrap(),
        dst.parse().unwrap(),
        4000,
        5000,
        payload,
    )
}

async fn next(k: &mut Kernel) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), k.written.recv())
        .await
        .expect("timed out waiting for a TUN write")
        .expect("TUN closed")
}

fn opts() -> DaemonOptions {
    DaemonOptions {
        batch: 8,
        buf_size: 2048,
        local_v4: Some("198.19.0.1".parse().unwrap()),
        local_v6: Some("fd00:19::1".parse().unwrap()),
        streams: 4,
    }
}

#[tokio::test]
async fn packets_cross_between_two_daemons() {
    let (tun_a, mut ka) = mem_tun("qta");
    let (tun_b, mut kb) = mem_tun("qtb");
    let (la, lb) = link_pair(1200);
    let a = Daemon::new(
        tun_a,
        Router::new(
            vec![peer("laptop", &["198.19.0.2/32", "fd00:19::2/128"])],
            1280,
        ),
        vec![la],
        Arc::new(fake_ptb),
        opts(),
    );
    let b = Daemon::new(
        tun_b,
        Router::new(
            vec![peer("server", &["198.19.0.0/24", "fd00:19::/64"])],
            1280,
        ),
        vec![lb],
        Arc::new(fake_ptb),
        opts(),
    );
    let _ta = a.spawn();
    let _tb = b.spawn();

    let p = udp("198.19.0.1", "198.19.0.2", 100);
    ka.inject.send(p.clone()).unwrap();
    assert_eq!(next(&mut kb).await, p);
    let back = udp("fd00:19::2", "fd00:19::1", 10);
    kb.inject.send(back.clone()).unwrap();
    assert_eq!(next(&mut ka).await, back);

    // oversize for the link: A answers with Packet Too Big into its own TUN
    ka.inject
        .send(udp("198.19.0.1", "198.19.0.2", 1220))
        .unwrap();
    let reply = next(&mut ka).await;
    assert!(reply.starts_with(b"PTB"));
    assert_eq!(&reply[3..7], &1200u32.to_be_bytes());
    assert!(String::from_utf8_lossy(&reply).contains("198.19.0.1"));

    let sa = lock(&a.router()).stats().clone();
    assert_eq!(sa.peers[0].tx_packets, 1);
    assert_eq!(sa.peers[0].rx_packets, 1);
    assert_eq!(sa.ptb_sent, 1);
    let st = status_from_router(&lock(&b.router()), "qtb", "client", 5, |_| {
        PeerState::Connected
    });
    assert_eq!(st.peers[0].name, "server");
    assert_eq!(st.peers[0].rx_packets, 1);
}

#[tokio::test]
async fn spoofed_sources_are_dropped_and_counted() {
    let (tun, mut k) = mem_tun("qt0");
    let (la, remote) = link_pair(1200);
    let (lb, remote_b) = link_pair(1200);
    let d = Daemon::new(
        tun,
        Router::new(
            vec![
                peer("alice", &["198.19.0.10/32"]),
                peer("bob", &["198.19.0.11/32"]),
            ],
            1280,
        ),
        vec![la, lb],
        Arc::new(fake_ptb),
        opts(),
    );
    let _t = d.spawn();
    // alice claims bob's address, then an outside address, then sends garbage
    remote
        .send(Bytes::from(udp("198.19.0.11", "198.19.0.1", 5)))
        .await
        .unwrap();
    remote
        .send(Bytes::from(udp("198.18.0.5", "198.19.0.1", 5)))
        .await
        .unwrap();
    remote.send(Bytes::from_static(b"\x45\x00")).await.unwrap();
    // then a legitimate packet from each
    let good_a = udp("198.19.0.10", "198.19.0.1", 5);
    let good_b = udp("198.19.0.11", "198.19.0.1", 6);
    remote.send(Bytes::from(good_a.clone())).await.unwrap();
    remote_b.send(Bytes::from(good_b.clone())).await.unwrap();
    let mut got = vec![next(&mut k).await, next(&mut k).await];
    got.sort();
    let mut want = vec![good_a, good_b];
    want.sort();
    assert_eq!(got, want);
    let s = lock(&d.router()).stats().clone();
    assert_eq!(s.peers[0].drops.spoofed_source, 2);
    assert_eq!(s.peers[0].drops.malformed, 1);
    assert_eq!(s.peers[1].drops.get(DropReason::SpoofedSource), 0);
    assert_eq!(s.drops.spoofed_source, 2);
    assert!(
        k.written.try_recv().is_err(),
        "nothing else may reach the TUN"
    );
}

#[tokio::test]
async fn closed_link_keeps_tun_up() {
    let (tun, k) = mem_tun("qt0");
    let (la, remote) = link_pair(1200);
    let d = Daemon::new(
        tun,
        Router::new(vec![peer("p", &["198.19.0.2/32"])], 1280),
        vec![la],
        Arc::new(fake_ptb),
        opts(),
    );
    let mut set = d.spawn();
    drop(remote);
    // the link reader ends cleanly; the TUN reader keeps running
    let first = tokio::time::timeout(Duration::from_secs(5), set.join_next())
        .await
        .unwrap();
    assert!(matches!(first, Some(Ok(Ok(())))));
    k.inject.send(udp("198.19.0.1", "198.19.0.2", 1)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(d.link_counters().send_errors, 1);
    assert_eq!(set.len(), 1);
    // closing the TUN ends the data path with a TUN error
    drop(k);
    let end = tokio::time::timeout(Duration::from_secs(5), set.join_next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Ok(Err(DaemonError::Tun { .. })))));
}
