//! [`QuicLink`]: the [`PacketLink`] of one peer over a `quic_stack::driver::Connection`
//!
//! The link outlives connections: the client's reconnect loop or the server's accept loop
//! [`attach`](QuicLink::attach)es each new connection, and the data path tasks keep running
//! across reconnects (a send without a connection fails and is counted; a receive waits for the
//! next connection). That is what keeps the TUN up while the peer is away.
//!
//! Datagram carriage sends each inner packet as one DATAGRAM frame. Stream carriage writes
//! length-prefixed packets ([`crate::carriage::encode_frame`]) on a small set of unidirectional
//! streams chosen by flow hash, so one lost packet stalls only the flows sharing its stream.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quic_stack::datagram::SendDatagramError;
use quic_stack::driver::{Connection, DatagramError, SendStream};
use tokio::sync::{mpsc, watch, Mutex};

use crate::carriage::{encode_frame, StreamDecoder, MAX_FRAMED_PACKET};
use crate::daemon::{LinkError, PacketLink};

/// Packets decoded from streams waiting for the link reader
const STREAM_QUEUE: usize = 1024;

/// The current connection and its generation (bumped on every attach)
#[derive(Clone, Default)]
struct Current {
    conn: Option<Arc<Connection>>,
    generation: u64,
}

/// Link-level drop counters, by reason (the QUIC stack counts queue overflows itself)
#[derive(Debug, Default)]
pub struct LinkDrops {
    /// Packet larger than the connection's max datagram size
    pub too_large: AtomicU64,
    /// No connection to the peer at the time
    pub not_connected: AtomicU64,
    /// The peer does not accept datagrams
    pub unsupported: AtomicU64,
    /// Stream carriage failed (stream reset, connection lost mid-write)
    pub stream_errors: AtomicU64,
}

struct TxStream {
    generation: u64,
    stream: SendStream,
}

/// A peer's packet pipe over whichever QUIC connection is current
pub struct QuicLink {
    current: watch::Sender<Current>,
    /// Last known max datagram payload, so routing keeps working while reconnecting
    max_datagram: AtomicUsize,
    tx_streams: Vec<Mutex<Option<TxStream>>>,
    /// Scratch buffer for framing, one per stream slot (lives in the slot's lock)
    frame_bufs: Vec<Mutex<BytesMut>>,
    stream_in_tx: mpsc::Sender<Bytes>,
    stream_in_rx: Mutex<mpsc::Receiver<Bytes>>,
    max_packet: usize,
    /// Drop counters
    pub drops: LinkDrops,
}

impl QuicLink {
    /// A link with `streams` stream slots for stream carriage, accepting inner packets up to
    /// `max_packet` bytes from streams, and assuming `initial_max_datagram` until connected
    pub fn new(streams: usize, max_packet: usize, initial_max_datagram: usize) -> Self {
        let streams = streams.max(1);
        let (stream_in_tx, stream_in_rx) = mpsc::channel(STREAM_QUEUE);
        Self {
            current: watch::Sender::new(Current::default()),
            max_datagram: AtomicUsize::new(initial_max_datagram),
            tx_streams: (0..streams).map(|_| Mutex::new(None)).collect(),
            frame_bufs: (0..streams)
                .map(|_| Mutex::new(BytesMut::with_capacity(4096)))
                .collect(),
            stream_in_tx,
            stream_in_rx: Mutex::new(stream_in_rx),
            max_packet: max_packet.min(MAX_FRAMED_PACKET),
            drops: LinkDrops::default(),
        }
    }

    /// Make `conn` the current connection and start reading its streams; returns its
    /// generation for [`detach`](Self::detach)
    pub fn attach(&self, conn: Connection) -> u64 {
        if let Some(max) = conn.max_datagram_size() {
            self.max_datagram.store(max, Ordering::Relaxed);
        }
        let conn = Arc::new(conn);
        let mut generation = 0;
        self.current.send_modify(|c| {
            c.generation += 1;
            generation = c.generation;
            c.conn = Some(conn.clone());
        });
        tokio::spawn(accept_streams(
            conn,
            self.stream_in_tx.clone(),
            self.max_packet,
        ));
        generation
    }

    /// Forget the connection of `generation` if it is still the current one (it closed);
    /// returns whether the link is now without a connection
    pub fn detach(&self, generation: u64) -> bool {
        self.current.send_if_modified(|c| {
            if c.generation == generation && c.conn.is_some() {
                c.conn = None;
                true
            } else {
                false
            }
        });
        self.current.borrow().conn.is_none()
    }

    /// Forget whatever connection is current (shutdown)
    pub fn detach_all(&self) {
        self.current.send_modify(|c| c.conn = None);
    }

    /// The current connection, if any
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.current.borrow().conn.clone()
    }

    fn current(&self) -> Current {
        self.current.borrow().clone()
    }

    /// Wait for a connection other than `dead`
    async fn next_connection(&self, dead: Option<&Arc<Connection>>) -> Arc<Connection> {
        let mut rx = self.current.subscribe();
        loop {
            {
                let cur = rx.borrow_and_update();
                if let Some(c) = &cur.conn {
                    if dead.is_none_or(|d| !Arc::ptr_eq(c, d)) {
                        return c.clone();
                    }
                }
            }
            if rx.changed().await.is_err() {
                // The sender lives in self, so this cannot happen while we are borrowed
                std::future::pending::<()>().await;
            }
        }
    }

    fn not_connected(&self) -> LinkError {
        self.drops.not_connected.fetch_add(1, Ordering::Relaxed);
        LinkError::Other("not connected".into())
    }
}

/// Accept the peer's unidirectional streams on `conn` and decode packets from each
async fn accept_streams(conn: Arc<Connection>, out: mpsc::Sender<Bytes>, max_packet: usize) {
    while let Ok(mut rs) = conn.accept_uni().await {
        let out = out.clone();
        tokio::spawn(async move {
            let mut dec = StreamDecoder::new(max_packet);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match rs.read(&mut buf).await {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => return,
                };
                for packet in dec.push(&buf[..n]) {
                    match packet {
                        Ok(p) => {
                            if out.send(p).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            // A framing error desynchronizes the stream for good: stop it
                            tracing::debug!("stream carriage: {e}; stopping stream");
                            let _ = rs.stop(0);
                            return;
                        }
                    }
                }
            }
        });
    }
}

impl PacketLink for QuicLink {
    async fn send(&self, packet: Bytes) -> Result<(), LinkError> {
        let Some(conn) = self.current().conn else {
            return Err(self.not_connected());
        };
        let len = packet.len();
        match conn.send_datagram(packet) {
            Ok(()) => Ok(()),
            Err(DatagramError::Send(SendDatagramError::TooLarge)) => {
                self.drops.too_large.fetch_add(1, Ordering::Relaxed);
                let max = conn.max_datagram_size().unwrap_or(0);
                self.max_datagram.store(max, Ordering::Relaxed);
                Err(LinkError::TooLarge { len, max })
            }
            Err(DatagramError::Send(
                SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled,
            )) => {
                self.drops.unsupported.fetch_add(1, Ordering::Relaxed);
                self.max_datagram.store(0, Ordering::Relaxed);
                Err(LinkError::Other("datagrams not supported".into()))
            }
            Err(e) => Err(LinkError::Other(e.to_string())),
        }
    }

    async fn send_batch(&self, packets: &mut Vec<Bytes>) -> usize {
        let n = packets.len();
        let Some(conn) = self.current().conn else {
            self.drops
                .not_connected
                .fetch_add(n as u64, Ordering::Relaxed);
            packets.clear();
            return n;
        };
        let mut failed = 0;
        let mut too_large = false;
        let r = conn.send_datagrams(packets.drain(..), |_, e| {
            failed += 1;
            match e {
                SendDatagramError::TooLarge => {
                    too_large = true;
                    self.drops.too_large.fetch_add(1, Ordering::Relaxed);
                }
                SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled => {
                    self.drops.unsupported.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        });
        if too_large {
            // PMTUD or migration shrank the limit: route by the new one from the next batch
            self.max_datagram
                .store(conn.max_datagram_size().unwrap_or(0), Ordering::Relaxed);
        }
        match r {
            Ok(()) => failed,
            Err(_) => {
                self.drops
                    .not_connected
                    .fetch_add(n as u64, Ordering::Relaxed);
                n
            }
        }
    }

    async fn recv(&self) -> Result<Bytes, LinkError> {
        let mut out = Vec::with_capacity(1);
        self.recv_batch(&mut out, 1).await?;
        out.pop().ok_or(LinkError::Closed)
    }

    fn max_packet_size(&self) -> usize {
        if let Some(conn) = self.current().conn {
            if let Some(max) = conn.max_datagram_size() {
                self.max_datagram.store(max, Ordering::Relaxed);
                return max;
            }
        }
        self.max_datagram.load(Ordering::Relaxed)
    }

    async fn send_on_stream(&self, packet: Bytes, stream: usize) -> Result<(), LinkError> {
        let cur = self.current();
        let Some(conn) = cur.conn else {
            return Err(self.not_connected());
        };
        let i = stream % self.tx_streams.len();
        let mut slot = self.tx_streams[i].lock().await;
        if slot.as_ref().is_none_or(|s| s.generation != cur.generation) {
            let stream = conn
                .open_uni()
                .await
                .map_err(|e| LinkError::Other(format!("open stream: {e}")))?;
            *slot = Some(TxStream {
                generation: cur.generation,
                stream,
            });
        }
        let mut buf = self.frame_bufs[i].lock().await;
        buf.clear();
        encode_frame(&packet, &mut buf).map_err(|e| LinkError::Other(e.to_string()))?;
        let Some(tx) = slot.as_mut() else {
            return Err(self.not_connected());
        };
        if let Err(e) = tx.stream.write_all(&buf).await {
            // Open a fresh stream next time rather than writing into a broken one
            *slot = None;
            self.drops.stream_errors.fetch_add(1, Ordering::Relaxed);
            return Err(LinkError::Other(format!("stream write: {e}")));
        }
        Ok(())
    }

    async fn recv_batch(&self, out: &mut Vec<Bytes>, max: usize) -> Result<(), LinkError> {
        let max = max.max(1);
        let mut streams = self.stream_in_rx.lock().await;
        let mut conn = self.next_connection(None).await;
        loop {
            tokio::select! {
                // Everything already received comes in one go, to write the TUN in batches
                r = conn.read_datagrams(out, max) => match r {
                    Ok(()) => {
                        while out.len() < max {
                            match streams.try_recv() {
                                Ok(p) => out.push(p),
                                Err(_) => break,
                            }
                        }
                        return Ok(());
                    }
                    Err(_) => {
                        // This connection is gone; wait for the supervisor to attach the next
                        conn = tokio::select! {
                            c = self.next_connection(Some(&conn)) => c,
                            p = streams.recv() => {
                                if let Some(p) = p {
                                    out.push(p);
                                    return Ok(());
                                }
                                return Err(LinkError::Closed);
                            }
                        };
                    }
                },
                p = streams.recv() => {
                    let Some(p) = p else { return Err(LinkError::Closed) };
                    out.push(p);
                    while out.len() < max {
                        match streams.try_recv() {
                            Ok(p) => out.push(p),
                            Err(_) => break,
                        }
                    }
                    return Ok(());
                }
                // A newer connection replaced this one (e.g. the peer reconnected before the
                // old one timed out): switch to it
                c = self.next_connection(Some(&conn)) => conn = c,
            }
        }
    }
}
