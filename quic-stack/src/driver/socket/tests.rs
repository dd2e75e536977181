//! Loopback tests of the UDP socket (127.0.0.1 and ::1 only)

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const V4: &str = "127.0.0.1:0";
const V6: &str = "[::1]:0";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn config(gso: bool, gro: bool) -> SocketConfig {
    SocketConfig {
        gso,
        gro,
        ..SocketConfig::default()
    }
}

/// Bind on ::1, or `None` when the host has no IPv6 loopback (the test is then skipped)
fn bind_v6(config: &SocketConfig) -> Option<UdpSocket> {
    match UdpSocket::bind_with(addr(V6), config) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("skipping: no IPv6 loopback ({e})");
            None
        }
    }
}

fn transmit(to: SocketAddr, size: usize, segment_size: Option<usize>) -> Transmit {
    Transmit {
        destination: to,
        size,
        ecn: None,
        segment_size,
        src_ip: None,
    }
}

/// Distinct bytes per segment so misordered or merged segments are caught
fn payload(segments: usize, segment: usize, last: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..segments {
        let len = if i + 1 == segments { last } else { segment };
        v.extend((0..len).map(|j| (i * 7 + j) as u8));
    }
    v
}

/// Read until `total` bytes arrived; returns every read's info and the datagrams in order
async fn collect(sock: &UdpSocket, total: usize) -> (Vec<RecvInfo>, Vec<Vec<u8>>) {
    let mut reads = Vec::new();
    let mut datagrams = Vec::new();
    let mut got = 0;
    let mut buf = vec![0u8; 65_536];
    // Bounded: a missing datagram fails the timeout instead of hanging the test
    while got < total {
        let info = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .expect("datagram within 5 s")
            .expect("recv");
        got += info.len;
        datagrams.extend(info.datagrams(&buf).map(<[u8]>::to_vec));
        reads.push(info);
    }
    (reads, datagrams)
}

#[tokio::test(flavor = "current_thread")]
async fn plain_send_recv_v4_with_pktinfo() {
    let a = UdpSocket::bind(addr(V4)).expect("bind");
    let b = UdpSocket::bind(addr(V4)).expect("bind");
    let data = b"hello over loopback";
    a.send(&transmit(b.local_addr(), data.len(), None), data)
        .await
        .expect("send");
    let (reads, datagrams) = collect(&b, data.len()).await;
    assert_eq!(datagrams, vec![data.to_vec()]);
    let meta = reads[0].meta;
    assert_eq!(meta.remote, a.local_addr());
    assert_eq!(meta.local_ip, Some(addr(V4).ip()), "IP_PKTINFO");
    assert_eq!(meta.ecn, None);
    assert_eq!(reads[0].stride, data.len());
    assert_eq!(reads[0].segments(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn plain_send_recv_v6_with_pktinfo() {
    let Some(a) = bind_v6(&SocketConfig::default()) else {
        return;
    };
    let Some(b) = bind_v6(&SocketConfig::default()) else {
        return;
    };
    let data = [42u8; 1200];
    a.send(&transmit(b.local_addr(), data.len(), None), &data)
        .await
        .expect("send");
    let (reads, datagrams) = collect(&b, data.len()).await;
    assert_eq!(datagrams, vec![data.to_vec()]);
    assert_eq!(reads[0].meta.remote, a.local_addr());
    assert_eq!(reads[0].meta.local_ip, Some(addr(V6).ip()), "IPV6_PKTINFO");
}

#[tokio::test(flavor = "current_thread")]
async fn gso_send_with_gro_receive() {
    let a = UdpSocket::bind_with(addr(V4), &config(true, false)).expect("bind");
    let b = UdpSocket::bind_with(addr(V4), &config(false, true)).expect("bind");
    if a.max_gso_segments() <= 1 || b.gro_segments() <= 1 {
        eprintln!("skipping: kernel lacks GSO or GRO");
        return;
    }
    let data = payload(10, 1200, 1200);
    a.send(&transmit(b.local_addr(), data.len(), Some(1200)), &data)
        .await
        .expect("send");
    let (reads, datagrams) = collect(&b, data.len()).await;
    assert!(
        reads.len() < 10,
        "GRO should coalesce: {} reads",
        reads.len()
    );
    assert!(reads.iter().all(|r| r.stride == 1200), "{reads:?}");
    assert_eq!(datagrams.len(), 10);
    assert_eq!(datagrams.concat(), data);
}

#[tokio::test(flavor = "current_thread")]
async fn short_buffer_keeps_only_whole_gro_datagrams() {
    let a = UdpSocket::bind(addr(V4)).expect("bind");
    let b = UdpSocket::bind(addr(V4)).expect("bind");
    if a.max_gso_segments() <= 1 || b.gro_segments() <= 1 {
        eprintln!("skipping: kernel lacks GSO or GRO");
        return;
    }
    let data = payload(10, 1200, 1200);
    a.send(&transmit(b.local_addr(), data.len(), Some(1200)), &data)
        .await
        .expect("send");
    let mut buf = vec![0u8; 5_000];
    let info = tokio::time::timeout(Duration::from_secs(5), b.recv(&mut buf))
        .await
        .expect("datagram within 5 s")
        .expect("recv");
    if info.stride == info.len {
        eprintln!("skipping: batch was not coalesced");
        return;
    }
    assert_eq!(info.len, 4 * 1200);
    assert_eq!(info.datagrams(&buf).count(), 4);
    assert_eq!(&buf[..info.len], &data[..4 * 1200]);
}

#[tokio::test(flavor = "current_thread")]
async fn gso_send_without_gro_gives_single_datagrams() {
    let a = UdpSocket::bind_with(addr(V4), &config(true, false)).expect("bind");
    let b = UdpSocket::bind_with(addr(V4), &config(false, false)).expect("bind");
    assert_eq!(b.gro_segments(), 1);
    // Last segment shorter, as QUIC produces it
    let data = payload(10, 1200, 700);
    a.send(&transmit(b.local_addr(), data.len(), Some(1200)), &data)
        .await
        .expect("send");
    let (reads, datagrams) = collect(&b, data.len()).await;
    assert_eq!(reads.len(), 10);
    let lens: Vec<usize> = datagrams.iter().map(Vec::len).collect();
    assert_eq!(lens[..9], [1200; 9]);
    assert_eq!(lens[9], 700);
    assert_eq!(datagrams.concat(), data);
}

#[tokio::test(flavor = "current_thread")]
async fn fallback_when_gso_forced_off() {
    let a = UdpSocket::bind_with(addr(V4), &config(false, false)).expect("bind");
    assert_eq!(a.max_gso_segments(), 1);
    let b = UdpSocket::bind(addr(V4)).expect("bind");
    let data = payload(10, 1200, 1200);
    a.send(&transmit(b.local_addr(), data.len(), Some(1200)), &data)
        .await
        .expect("send");
    let (reads, datagrams) = collect(&b, data.len()).await;
    // Separately sent datagrams are not coalesced on loopback
    assert_eq!(reads.len(), 10);
    assert_eq!(datagrams.len(), 10);
    assert_eq!(datagrams.concat(), data);

    // disable_gso() at run time takes the same path
    let c = UdpSocket::bind(addr(V4)).expect("bind");
    c.disable_gso();
    assert_eq!(c.max_gso_segments(), 1);
    c.send(&transmit(b.local_addr(), data.len(), Some(1200)), &data)
        .await
        .expect("send");
    let (reads, _) = collect(&b, data.len()).await;
    assert_eq!(reads.len(), 10);
}

#[tokio::test(flavor = "current_thread")]
async fn gso_batch_larger_than_kernel_limit_is_split() {
    let a = UdpSocket::bind(addr(V4)).expect("bind");
    let b = UdpSocket::bind_with(addr(V4), &config(false, false)).expect("bind");
    // 200 segments exceed both the 64-segment and the 64 KiB limit of one sendmsg
    let data = payload(200, 1000, 10);
    a.send(&transmit(b.local_addr(), data.len(), Some(1000)), &data)
        .await
        .expect("send");
    let (_, datagrams) = collect(&b, data.len()).await;
    assert_eq!(datagrams.len(), 200);
    assert_eq!(datagrams.concat(), data);
}

#[tokio::test(flavor = "current_thread")]
async fn ecn_codepoint_round_trip() {
    for (bind, name) in [(V4, "v4"), (V6, "v6")] {
        let (a, b) = if name == "v6" {
            let (Some(a), Some(b)) = (
                bind_v6(&SocketConfig::default()),
                bind_v6(&SocketConfig::default()),
            ) else {
                continue;
            };
            (a, b)
        } else {
            (
                UdpSocket::bind(addr(bind)).expect("bind"),
                UdpSocket::bind(addr(bind)).expect("bind"),
            )
        };
        for ecn in [
            Some(EcnCodepoint::Ect0),
            Some(EcnCodepoint::Ect1),
            Some(EcnCodepoint::Ce),
            None,
        ] {
            let data = [1u8; 100];
            let mut t = transmit(b.local_addr(), data.len(), None);
            t.ecn = ecn;
            a.send(&t, &data).await.expect("send");
            let (reads, _) = collect(&b, data.len()).await;
            assert_eq!(reads[0].meta.ecn, ecn, "{name}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn source_ip_selection() {
    let a = UdpSocket::bind(addr("0.0.0.0:0")).expect("bind");
    let b = UdpSocket::bind(addr(V4)).expect("bind");
    let mut t = transmit(b.local_addr(), 5, None);
    t.src_ip = Some(addr(V4).ip());
    a.send(&t, b"hello").await.expect("send");
    let (reads, _) = collect(&b, 5).await;
    assert_eq!(reads[0].meta.remote.ip(), addr(V4).ip());
    assert_eq!(reads[0].meta.remote.port(), a.local_addr().port());
}

#[tokio::test(flavor = "current_thread")]
async fn recv_many_drains_queue() {
    let a = UdpSocket::bind_with(addr(V4), &config(false, false)).expect("bind");
    let b = UdpSocket::bind_with(addr(V4), &config(false, false)).expect("bind");
    for i in 0..4u8 {
        a.send(&transmit(b.local_addr(), 1, None), &[i])
            .await
            .expect("send");
    }
    // Give loopback a moment so all four are queued (bounded wait)
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut storage = vec![[0u8; 2048]; 8];
    let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
    let mut out = [RecvInfo {
        meta: RecvMeta {
            remote: b.local_addr(),
            local_ip: None,
            ecn: None,
        },
        len: 0,
        stride: 0,
    }; 8];
    let n = b.recv_many(&mut bufs, &mut out).await.expect("recv");
    assert_eq!(n, 4);
    for (i, info) in out[..n].iter().enumerate() {
        assert_eq!(info.len, 1);
        assert_eq!(bufs[i][0], i as u8);
    }
    let mut buf = [0u8; 64];
    let err = b.try_recv(&mut buf).expect_err("queue drained");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[tokio::test(flavor = "current_thread")]
async fn large_buffers_requested() {
    let a = UdpSocket::bind(addr(V4)).expect("bind");
    let sock = SockRef::from(&a.io);
    // As root, *FORCE grants the full request (the kernel doubles it); otherwise rmem_max caps it
    let rcv = sock.recv_buffer_size().expect("SO_RCVBUF");
    assert!(rcv > 208 * 1024 * 2, "receive buffer only {rcv}");
}

#[test]
fn find_tos_parses_and_never_panics() {
    let header = size_of::<libc::cmsghdr>();
    let word = size_of::<usize>();
    let cmsg = |level: i32, kind: i32, data: &[u8]| {
        let len = header + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.resize(header, 0);
        v.extend_from_slice(data);
        v.resize(len.next_multiple_of(word), 0);
        v
    };
    let mut buf = cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &[0; 12]);
    buf.extend(cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[0b10]));
    buf.resize(128, 0);
    assert_eq!(find_tos(&buf), Some(0b10));
    let v6 = cmsg(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &3i32.to_ne_bytes());
    assert_eq!(find_tos(&v6), Some(3));
    assert_eq!(find_tos(&[0; 128]), None);
    assert_eq!(find_tos(&[]), None);
    // Truncated and lying headers
    for cut in 0..buf.len() {
        let _ = find_tos(&buf[..cut]);
    }
    let mut liar = cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[1]);
    liar[..word].copy_from_slice(&usize::MAX.to_ne_bytes());
    assert_eq!(find_tos(&liar), None);
}

#[test]
fn recv_info_datagrams() {
    let meta = RecvMeta {
        remote: addr("127.0.0.1:1"),
        local_ip: None,
        ecn: None,
    };
    let buf: Vec<u8> = (0..25).collect();
    let info = RecvInfo {
        meta,
        len: 25,
        stride: 10,
    };
    assert_eq!(info.segments(), 3);
    let parts: Vec<&[u8]> = info.datagrams(&buf).collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2], &buf[20..25]);
    // A zero stride or a short buffer never panics
    let odd = RecvInfo {
        meta,
        len: 100,
        stride: 0,
    };
    assert_eq!(odd.datagrams(&buf).count(), 25);
    let empty = RecvInfo {
        meta,
        len: 0,
        stride: 0,
    };
    assert_eq!(empty.segments(), 1);
    assert_eq!(empty.datagrams(&buf).count(), 1);
}
