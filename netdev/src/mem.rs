//! In-memory [`TunDevice`] pair for tests without root
//!
//! What one side sends, the other receives, in order, through bounded tokio channels: a full
//! channel makes `send` wait (backpressure, like a full TUN queue), and dropping one side makes
//! the other's `recv` return `UnexpectedEof` and its `send` return `BrokenPipe`.

use std::io;

use tokio::sync::{mpsc, Mutex};

use crate::TunDevice;

/// Packets queued per direction before `send` waits
pub const MEM_TUN_QUEUE: usize = 1024;

/// One end of an in-memory TUN pair
#[derive(Debug)]
pub struct MemTun {
    name: String,
    mtu: usize,
    tx: mpsc::Sender<Vec<u8>>,
    // A Mutex because the trait takes `&self` and mpsc::Receiver needs `&mut` to receive; only
    // the single reading task ever locks it, so it is uncontended.
    rx: Mutex<mpsc::Receiver<Vec<u8>>>,
}

impl MemTun {
    /// Two connected devices named `mem0` and `mem1` with the given MTU
    pub fn pair(mtu: usize) -> (Self, Self) {
        Self::pair_with_capacity(mtu, MEM_TUN_QUEUE)
    }

    /// Like [`MemTun::pair`] with `capacity` packets queued per direction (at least 1)
    pub fn pair_with_capacity(mtu: usize, capacity: usize) -> (Self, Self) {
        let (a_tx, b_rx) = mpsc::channel(capacity.max(1));
        let (b_tx, a_rx) = mpsc::channel(capacity.max(1));
        let a = Self {
            name: "mem0".to_owned(),
            mtu,
            tx: a_tx,
            rx: Mutex::new(a_rx),
        };
        let b = Self {
            name: "mem1".to_owned(),
            mtu,
            tx: b_tx,
            rx: Mutex::new(b_rx),
        };
        (a, b)
    }
}

impl TunDevice for MemTun {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let packet =
            self.rx.lock().await.recv().await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "peer MemTun dropped")
            })?;
        // Like a real TUN read into a short buffer, the excess is lost; report the copied part.
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        Ok(n)
    }

    async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        // A real TUN rejects writes above its MTU with EINVAL; mirror it so tests catch it.
        if packet.len() > self.mtu {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("packet of {} bytes exceeds MTU {}", packet.len(), self.mtu),
            ));
        }
        self.tx
            .send(packet.to_vec())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "peer MemTun dropped"))?;
        Ok(packet.len())
    }

    async fn recv_batch(&self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<usize> {
        let max = bufs.len().min(sizes.len());
        if max == 0 {
            return Ok(0);
        }
        let mut rx = self.rx.lock().await;
        let mut n = 0;
        // Wait for the first packet, then take whatever else is already queued.
        let mut next = rx.recv().await;
        while let Some(packet) = next {
            let buf = &mut bufs[n];
            let len = packet.len().min(buf.len());
            buf[..len].copy_from_slice(&packet[..len]);
            sizes[n] = len;
            n += 1;
            if n == max {
                break;
            }
            next = rx.try_recv().ok();
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer MemTun dropped",
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn pair_roundtrip_and_batch() {
        let (a, b) = MemTun::pair(1500);
        assert_eq!(a.name(), "mem0");
        assert_eq!(b.mtu(), 1500);
        a.send(b"one").await.expect("send");
        let mut buf = [0u8; 1500];
        let n = b.recv(&mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"one");

        b.send_batch(&[b"x", b"yy", b"zzz"]).await.expect("batch");
        let mut bufs = vec![vec![0u8; 1500]; 8];
        let mut sizes = vec![0usize; 8];
        let n = a.recv_batch(&mut bufs, &mut sizes).await.expect("recv");
        assert_eq!(n, 3);
        assert_eq!(&bufs[2][..sizes[2]], b"zzz");

        assert!(a.send(&[0u8; 1501]).await.is_err(), "above MTU");
    }

    #[tokio::test]
    async fn backpressure_and_close() {
        let (a, b) = MemTun::pair_with_capacity(100, 1);
        a.send(b"1").await.expect("send");
        let blocked = tokio::time::timeout(Duration::from_millis(50), a.send(b"2")).await;
        assert!(blocked.is_err(), "second send waits on a full queue");
        drop(b);
        let err = a.send(b"3").await.expect_err("peer gone");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let mut buf = [0u8; 10];
        let err = a.recv(&mut buf).await.expect_err("peer gone");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
