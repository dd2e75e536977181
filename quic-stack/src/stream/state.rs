//! The per-connection stream table: IDs and limits, both halves' state machines, flow control,
//! and what goes into the next packet

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::deps::{self, Assembler, Control, RecvFlow, SendBuffer, SendFlow};
use super::{
    ClosedStream, PeerStreamParams, ReadError, ReadResult, SentFrames, StreamChunk, StreamControl,
    StreamEvent, StreamsConfig, WriteError,
};
use crate::error::TransportError;
use crate::frame;
use crate::shared::{Dir, Side, StreamId};

/// Frame type codes, for blaming errors on a frame
mod ty {
    pub(super) const RESET_STREAM: u64 = 0x04;
    pub(super) const STOP_SENDING: u64 = 0x05;
    pub(super) const STREAM: u64 = 0x08;
    pub(super) const MAX_STREAM_DATA: u64 = 0x11;
    pub(super) const MAX_STREAMS: u64 = 0x12;
    pub(super) const STREAM_DATA_BLOCKED: u64 = 0x15;
    pub(super) const STREAMS_BLOCKED: u64 = 0x16;
}

/// Streams can never exceed 2^60 per type (RFC 9000 §4.6)
const MAX_STREAM_COUNT: u64 = 1 << 60;

/// Send half states (RFC 9000 §3.1); `Ready` and `Send` are one state here
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
enum SendState {
    /// Accepting writes
    Send,
    /// `finish` called: FIN queued or in flight
    DataSent,
    /// We reset the stream; RESET_STREAM in flight with this code
    ResetSent(u64),
}

#[derive(Debug)]
struct SendHalf {
    state: SendState,
    buf: SendBuffer,
    /// The peer's MAX_STREAM_DATA for this stream
    flow: SendFlow,
    /// FIN must be (re)sent
    fin_pending: bool,
    fin_acked: bool,
    /// The peer's STOP_SENDING code
    stopped: Option<u64>,
    /// A write failed for lack of credit: raise `Writable` when credit arrives
    want_writable: bool,
}

/// Receive half states (RFC 9000 §3.2)
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
enum RecvState {
    /// Receiving; final size unknown until FIN
    Recv,
    /// The peer reset the stream; the app has not seen it yet
    ResetRecvd(u64),
}

#[derive(Debug)]
struct RecvHalf {
    state: RecvState,
    assembler: Assembler,
    flow: RecvFlow,
    /// Highest offset received (counted against connection flow control)
    highest: u64,
    final_size: Option<u64>,
    /// We sent STOP_SENDING: data is discarded until the peer resets or finishes
    stopped: bool,
}

#[derive(Debug, Default)]
struct Stream {
    send: Option<SendHalf>,
    recv: Option<RecvHalf>,
}

/// The whole stream layer of one connection
#[derive(Debug)]
pub struct StreamsState {
    side: Side,
    config: StreamsConfig,
    peer: PeerStreamParams,
    streams: BTreeMap<StreamId, Stream>,

    /// Streams we have opened, per direction
    next_local: [u64; 2],
    /// The peer's MAX_STREAMS, per direction
    max_local: [u64; 2],
    /// STREAMS_BLOCKED already queued or sent at this limit
    streams_blocked_at: [Option<u64>; 2],
    /// Peer streams opened (explicitly or implicitly), per direction
    next_remote: [u64; 2],
    /// The MAX_STREAMS we allow, per direction
    max_remote: [u64; 2],
    /// Next peer stream index to hand to `accept`, per direction
    next_accept: [u64; 2],

    /// The peer's MAX_DATA, and what `write` has consumed of it
    conn_send: SendFlow,
    /// Bytes written and not yet acknowledged, bounded by `send_window`
    unacked: u64,
    /// A write hit the connection limit: wake blocked streams when it lifts
    conn_blocked: bool,
    /// Our MAX_DATA
    conn_recv: RecvFlow,
    /// Sum over streams of the highest offset received
    conn_received: u64,

    /// Streams with data or FIN to send, in round-robin order
    send_queue: VecDeque<StreamId>,
    /// Streams whose receive window may need a MAX_STREAM_DATA
    check_msd: BTreeSet<StreamId>,
    /// Control frames waiting for a packet
    pending: Pending,
    /// STOP_SENDING codes for streams we stopped and still hold
    stop_codes: BTreeMap<StreamId, u64>,
    events: VecDeque<StreamEvent>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Resend the current MAX_DATA (a previous one was lost)
    max_data: bool,
    max_streams: [bool; 2],
    /// Per-stream control frames; values are recomputed when written
    stream: BTreeSet<(StreamId, u8)>,
    data_blocked: bool,
    streams_blocked: [bool; 2],
}

/// Kinds in `Pending::stream`
const P_MSD: u8 = 0;
const P_RESET: u8 = 1;
const P_STOP: u8 = 2;
const P_SDB: u8 = 3;

/// Whether `RecvFlow::poll_update` would raise the limit (mirrors its half-window rule)
fn wants_update(flow: &RecvFlow) -> bool {
    let remaining = flow.max().saturating_sub(flow.consumed());
    remaining <= flow.window() / 2 && flow.consumed().saturating_add(flow.window()) > flow.max()
}

fn di(dir: Dir) -> usize {
    dir as usize
}

impl StreamsState {
    /// A stream layer for our `side` with our local limits
    pub fn new(side: Side, local: &StreamsConfig) -> Self {
        Self {
            side,
            config: local.clone(),
            peer: PeerStreamParams::default(),
            streams: BTreeMap::new(),
            next_local: [0; 2],
            max_local: [0; 2],
            streams_blocked_at: [None; 2],
            next_remote: [0; 2],
            max_remote: [local.max_concurrent_bidi, local.max_concurrent_uni],
            next_accept: [0; 2],
            conn_send: SendFlow::new(0),
            unacked: 0,
            conn_blocked: false,
            conn_recv: RecvFlow::new(local.receive_window, local.max_receive_window),
            conn_received: 0,
            send_queue: VecDeque::new(),
            check_msd: BTreeSet::new(),
            pending: Pending::default(),
            stop_codes: BTreeMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Apply the peer's transport parameters
    pub fn set_peer_params(&mut self, p: &PeerStreamParams) {
        self.peer = *p;
        self.conn_send.update_max(p.initial_max_data);
        self.max_local[0] = self.max_local[0].max(p.initial_max_streams_bidi.min(MAX_STREAM_COUNT));
        self.max_local[1] = self.max_local[1].max(p.initial_max_streams_uni.min(MAX_STREAM_COUNT));
        // Streams opened before the parameters arrived (0-RTT) get the new limits too.
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let limit = self.peer_stream_limit(id);
            if let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) {
                send.flow.update_max(limit);
            }
        }
    }

    /// Initial send credit the peer grants on stream `id`
    fn peer_stream_limit(&self, id: StreamId) -> u64 {
        match (id.dir(), id.initiator() == self.side) {
            (Dir::Uni, _) => self.peer.initial_max_stream_data_uni,
            (Dir::Bi, true) => self.peer.initial_max_stream_data_bidi_remote,
            (Dir::Bi, false) => self.peer.initial_max_stream_data_bidi_local,
        }
    }

    fn new_stream(&self, id: StreamId) -> Stream {
        let local = id.initiator() == self.side;
        let send = (id.dir() == Dir::Bi || local).then(|| SendHalf {
            state: SendState::Send,
            buf: SendBuffer::default(),
            flow: SendFlow::new(self.peer_stream_limit(id)),
            fin_pending: false,
            fin_acked: false,
            stopped: None,
            want_writable: false,
        });
        let recv = (id.dir() == Dir::Bi || !local).then(|| RecvHalf {
            state: RecvState::Recv,
            assembler: Assembler::default(),
            flow: RecvFlow::new(
                self.config.stream_receive_window,
                self.config.max_stream_receive_window,
            ),
            highest: 0,
            final_size: None,
            stopped: false,
        });
        Stream { send, recv }
    }

    // ---- application commands ----

    /// Open a stream; `None` when the peer's MAX_STREAMS is reached (STREAMS_BLOCKED is queued)
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        let d = di(dir);
        if self.next_local[d] >= self.max_local[d] {
            // RFC 9000 §4.6: tell the peer once per limit that we are blocked.
            if self.streams_blocked_at[d] != Some(self.max_local[d]) {
                self.streams_blocked_at[d] = Some(self.max_local[d]);
                self.pending.streams_blocked[d] = true;
            }
            return None;
        }
        let id = StreamId::new(self.side, dir, self.next_local[d]);
        self.next_local[d] += 1;
        let stream = self.new_stream(id);
        self.streams.insert(id, stream);
        Some(id)
    }

    /// The next stream the peer opened, if any
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        let d = di(dir);
        if self.next_accept[d] >= self.next_remote[d] {
            return None;
        }
        let id = StreamId::new(!self.side, dir, self.next_accept[d]);
        self.next_accept[d] += 1;
        Some(id)
    }

    /// Buffer data for sending; bounded by stream and connection credit and the send window
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        let conn_credit = self
            .conn_send
            .credit()
            .min(self.config.send_window.saturating_sub(self.unacked));
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.send.as_mut())
            .ok_or(WriteError::ClosedStream)?;
        if let Some(code) = send.stopped {
            return Err(WriteError::Stopped(code));
        }
        if send.state != SendState::Send {
            return Err(WriteError::ClosedStream);
        }
        let n = (data.len() as u64).min(send.flow.credit()).min(conn_credit) as usize;
        if n > 0 {
            send.buf.write(&data[..n]);
            send.flow.on_sent(n as u64);
            self.conn_send.on_sent(n as u64);
            self.unacked += n as u64;
        }
        if n < data.len() {
            send.want_writable = true;
            self.conn_blocked |= conn_credit == n as u64;
            // RFC 9000 §4.1: a sender SHOULD send a *_BLOCKED frame when flow control stops
            // it; SendFlow remembers the limit so it goes once per limit.
            if send.flow.poll_blocked().is_some() {
                self.pending.stream.insert((id, P_SDB));
            }
            if self.conn_send.poll_blocked().is_some() {
                self.pending.data_blocked = true;
            }
            if n == 0 {
                return Err(WriteError::Blocked);
            }
        }
        if n == 0 {
            return Ok(0);
        }
        if !self.send_queue.contains(&id) {
            self.send_queue.push_back(id);
        }
        Ok(n)
    }

    /// Mark the end of our data (FIN)
    pub fn finish(&mut self, id: StreamId) -> Result<(), ClosedStream> {
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.send.as_mut())
            .ok_or(ClosedStream)?;
        if send.state != SendState::Send {
            return Err(ClosedStream);
        }
        send.state = SendState::DataSent;
        send.fin_pending = true;
        if !self.send_queue.contains(&id) {
            self.send_queue.push_back(id);
        }
        Ok(())
    }

    /// Abandon sending (RESET_STREAM)
    pub fn reset(&mut self, id: StreamId, error_code: u64) -> Result<(), ClosedStream> {
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.send.as_mut())
            .ok_or(ClosedStream)?;
        if matches!(send.state, SendState::ResetSent(_)) {
            return Err(ClosedStream);
        }
        self.do_reset(id, error_code);
        Ok(())
    }

    /// Move a send half to ResetSent and queue RESET_STREAM
    fn do_reset(&mut self, id: StreamId, code: u64) {
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return;
        };
        if matches!(send.state, SendState::ResetSent(_)) {
            return;
        }
        send.state = SendState::ResetSent(code);
        send.fin_pending = false;
        // Nothing more of this stream's data will be sent: release its send-window share.
        self.unacked = self.unacked.saturating_sub(send.buf.unacked_len());
        self.pending.stream.insert((id, P_RESET));
        self.pending.stream.remove(&(id, P_SDB));
        self.send_queue.retain(|&s| s != id);
        self.wake_conn_blocked();
    }

    /// Ask the peer to stop sending (STOP_SENDING); data already received is discarded
    pub fn stop_sending(&mut self, id: StreamId, error_code: u64) -> Result<(), ClosedStream> {
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.recv.as_mut())
            .ok_or(ClosedStream)?;
        if recv.stopped {
            return Err(ClosedStream);
        }
        recv.stopped = true;
        // Discarded data still counts as consumed for connection flow control.
        let mut buf = [0u8; 4096];
        let mut freed = 0;
        loop {
            let n = recv.assembler.read(&mut buf);
            if n == 0 {
                break;
            }
            freed += n as u64;
        }
        self.conn_recv.on_consumed(freed);
        if matches!(recv.state, RecvState::ResetRecvd(_))
            || recv.final_size == Some(recv.assembler.bytes_read())
        {
            // The peer is done already: nothing to stop.
            self.free_recv(id);
        } else {
            self.stop_codes.insert(id, error_code);
            self.pending.stream.insert((id, P_STOP));
        }
        Ok(())
    }

    /// Read data in order; `Ok(None)` when nothing is available yet
    ///
    /// `Readable` is raised when a stream becomes readable, not for every frame: after it,
    /// read until `Ok(None)` (or `fin`).
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<Option<ReadResult>, ReadError> {
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.recv.as_mut())
            .ok_or(ReadError::ClosedStream)?;
        if recv.stopped {
            return Err(ReadError::ClosedStream);
        }
        if let RecvState::ResetRecvd(code) = recv.state {
            // A reset stream's final size is always known (RESET_STREAM carries it)
            let final_size = recv.final_size.unwrap_or_default();
            self.free_recv(id);
            return Err(ReadError::Reset { code, final_size });
        }
        let n = recv.assembler.read(buf);
        let fin = recv.final_size == Some(recv.assembler.bytes_read());
        if n > 0 {
            recv.flow.on_consumed(n as u64);
            self.conn_recv.on_consumed(n as u64);
            if !fin {
                self.check_msd.insert(id);
            }
        }
        if fin {
            self.free_recv(id);
            return Ok(Some(ReadResult { len: n, fin }));
        }
        Ok((n > 0).then_some(ReadResult { len: n, fin }))
    }

    // ---- frames from the peer ----

    /// Find (or implicitly open) the stream a peer frame refers to
    ///
    /// `recv_side` is true for frames about the peer's sending (STREAM, RESET_STREAM,
    /// STREAM_DATA_BLOCKED), false for frames about ours (MAX_STREAM_DATA, STOP_SENDING).
    /// `Ok(false)` means the stream was closed and freed already: ignore the frame.
    fn check_id(
        &mut self,
        id: StreamId,
        recv_side: bool,
        frame_type: u64,
    ) -> Result<bool, TransportError> {
        let dir = id.dir();
        let d = di(dir);
        if id.initiator() == self.side {
            // RFC 9000 §19.8/§19.4/§19.5: a frame about a locally initiated stream we have
            // not opened yet is STREAM_STATE_ERROR.
            if id.index() >= self.next_local[d] {
                return Err(TransportError::STREAM_STATE_ERROR("stream not yet opened")
                    .with_frame(frame_type));
            }
            // RFC 9000 §19.8: STREAM on our send-only stream is STREAM_STATE_ERROR.
            if dir == Dir::Uni && recv_side {
                return Err(
                    TransportError::STREAM_STATE_ERROR("data on a send-only stream")
                        .with_frame(frame_type),
                );
            }
        } else {
            // RFC 9000 §19.10/§19.5: MAX_STREAM_DATA or STOP_SENDING on a receive-only
            // stream is STREAM_STATE_ERROR.
            if dir == Dir::Uni && !recv_side {
                return Err(TransportError::STREAM_STATE_ERROR(
                    "send-side frame on a receive-only stream",
                )
                .with_frame(frame_type));
            }
            // RFC 9000 §4.6: a stream beyond our MAX_STREAMS is STREAM_LIMIT_ERROR.
            if id.index() >= self.max_remote[d] {
                return Err(
                    TransportError::STREAM_LIMIT_ERROR("stream beyond MAX_STREAMS")
                        .with_frame(frame_type),
                );
            }
            // RFC 9000 §3.2: opening a stream implicitly opens lower-numbered ones of the
            // same type.
            if id.index() >= self.next_remote[d] {
                for i in self.next_remote[d]..=id.index() {
                    let sid = StreamId::new(!self.side, dir, i);
                    let stream = self.new_stream(sid);
                    self.streams.insert(sid, stream);
                }
                self.next_remote[d] = id.index() + 1;
                self.events.push_back(StreamEvent::Opened { dir });
            }
        }
        Ok(self.streams.contains_key(&id))
    }

    /// Count newly received bytes of a stream against both receive limits
    fn on_recv_extent(
        &mut self,
        id: StreamId,
        end: u64,
        frame_type: u64,
    ) -> Result<(), TransportError> {
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        if end <= recv.highest {
            return Ok(());
        }
        // RFC 9000 §4.1: exceeding a flow control limit is FLOW_CONTROL_ERROR.
        if recv.flow.on_data(end).is_err() {
            return Err(
                TransportError::FLOW_CONTROL_ERROR("stream data limit exceeded")
                    .with_frame(frame_type),
            );
        }
        let delta = end - recv.highest;
        if self.conn_recv.on_data(self.conn_received + delta).is_err() {
            return Err(
                TransportError::FLOW_CONTROL_ERROR("connection data limit exceeded")
                    .with_frame(frame_type),
            );
        }
        recv.highest = end;
        self.conn_received += delta;
        Ok(())
    }

    /// A STREAM frame
    pub fn on_stream_frame(&mut self, f: &frame::Stream<'_>) -> Result<(), TransportError> {
        let end = f
            .offset
            .checked_add(f.data.len() as u64)
            .filter(|&e| e < 1 << 62)
            // RFC 9000 §19.8: an end offset beyond 2^62-1 MUST be FRAME_ENCODING_ERROR or
            // FLOW_CONTROL_ERROR; no credit can cover it.
            .ok_or_else(|| {
                TransportError::FLOW_CONTROL_ERROR("stream offset overflow").with_frame(ty::STREAM)
            })?;
        if !self.check_id(f.id, true, ty::STREAM)? {
            return Ok(());
        }
        let Some(recv) = self.streams.get_mut(&f.id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        // RFC 9000 §4.5: data beyond a known final size, or a changed final size, is
        // FINAL_SIZE_ERROR.
        if let Some(size) = recv.final_size {
            if end > size || (f.fin && end != size) {
                return Err(
                    TransportError::FINAL_SIZE_ERROR("final size changed").with_frame(ty::STREAM)
                );
            }
        }
        if f.fin && end < recv.highest {
            return Err(
                TransportError::FINAL_SIZE_ERROR("final size below data received")
                    .with_frame(ty::STREAM),
            );
        }
        self.on_recv_extent(f.id, end, ty::STREAM)?;
        let recv = self
            .streams
            .get_mut(&f.id)
            .and_then(|s| s.recv.as_mut())
            .expect("checked above");
        if f.fin {
            recv.final_size = Some(end);
        }
        if matches!(recv.state, RecvState::ResetRecvd(_)) {
            return Ok(());
        }
        if recv.stopped {
            // Discard, but give the connection credit back.
            if let Some(size) = recv.final_size {
                if recv.highest == size {
                    let unread = size - recv.assembler.bytes_read();
                    self.conn_recv.on_consumed(unread);
                    self.stop_codes.remove(&f.id);
                    self.free_recv(f.id);
                }
            }
            return Ok(());
        }
        let was_readable = recv.assembler.readable() > 0;
        recv.assembler.insert(f.offset, f.data);
        let fin_now = recv.final_size == Some(recv.assembler.bytes_read());
        if (!was_readable && (recv.assembler.readable() > 0)) || (f.fin && fin_now) {
            self.events.push_back(StreamEvent::Readable { id: f.id });
        }
        Ok(())
    }

    /// A RESET_STREAM frame
    pub fn on_reset_stream(
        &mut self,
        id: StreamId,
        error_code: u64,
        final_size: u64,
    ) -> Result<(), TransportError> {
        if !self.check_id(id, true, ty::RESET_STREAM)? {
            return Ok(());
        }
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        // RFC 9000 §4.5: the final size must not change, nor fall below data received.
        if recv.final_size.is_some_and(|s| s != final_size) || final_size < recv.highest {
            return Err(TransportError::FINAL_SIZE_ERROR("reset changed final size")
                .with_frame(ty::RESET_STREAM));
        }
        self.on_recv_extent(id, final_size, ty::RESET_STREAM)?;
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.recv.as_mut())
            .expect("checked above");
        if matches!(recv.state, RecvState::ResetRecvd(_)) {
            return Ok(());
        }
        recv.final_size = Some(final_size);
        // Unread data will never be read: return its connection credit now.
        let unread = final_size - recv.assembler.bytes_read();
        self.conn_recv.on_consumed(unread);
        self.pending.stream.remove(&(id, P_MSD));
        if recv.stopped {
            // The app already gave up on this stream.
            self.pending.stream.remove(&(id, P_STOP));
            self.stop_codes.remove(&id);
            self.free_recv(id);
        } else {
            recv.state = RecvState::ResetRecvd(error_code);
            self.events.push_back(StreamEvent::Readable { id });
        }
        Ok(())
    }

    /// A STOP_SENDING frame: reply with RESET_STREAM (RFC 9000 §3.5)
    pub fn on_stop_sending(&mut self, id: StreamId, error_code: u64) -> Result<(), TransportError> {
        if !self.check_id(id, false, ty::STOP_SENDING)? {
            return Ok(());
        }
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return Ok(());
        };
        if send.stopped.is_some() || matches!(send.state, SendState::ResetSent(_)) {
            return Ok(());
        }
        send.stopped = Some(error_code);
        // RFC 9000 §3.5: an endpoint that receives STOP_SENDING MUST send RESET_STREAM
        // (unless already reset); we echo the peer's code.
        self.do_reset(id, error_code);
        self.events
            .push_back(StreamEvent::Stopped { id, error_code });
        Ok(())
    }

    /// A MAX_DATA frame
    pub fn on_max_data(&mut self, max: u64) {
        if self.conn_send.update_max(max) {
            self.wake_conn_blocked();
        }
    }

    /// Raise `Writable` for streams waiting on connection-level credit
    fn wake_conn_blocked(&mut self) {
        let credit = self
            .conn_send
            .credit()
            .min(self.config.send_window.saturating_sub(self.unacked));
        if !self.conn_blocked || credit == 0 {
            return;
        }
        self.conn_blocked = false;
        for (&id, s) in self.streams.iter_mut() {
            if let Some(send) = s.send.as_mut() {
                if send.want_writable && send.flow.credit() > 0 {
                    send.want_writable = false;
                    self.events.push_back(StreamEvent::Writable { id });
                }
            }
        }
    }

    /// A MAX_STREAM_DATA frame
    pub fn on_max_stream_data(&mut self, id: StreamId, max: u64) -> Result<(), TransportError> {
        if !self.check_id(id, false, ty::MAX_STREAM_DATA)? {
            return Ok(());
        }
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return Ok(());
        };
        if send.flow.update_max(max) && send.want_writable && send.state == SendState::Send {
            send.want_writable = false;
            self.events.push_back(StreamEvent::Writable { id });
        }
        Ok(())
    }

    /// A MAX_STREAMS frame
    pub fn on_max_streams(&mut self, dir: Dir, count: u64) -> Result<(), TransportError> {
        // RFC 9000 §19.11: a count above 2^60 MUST be treated as FRAME_ENCODING_ERROR.
        if count > MAX_STREAM_COUNT {
            return Err(
                TransportError::FRAME_ENCODING_ERROR("MAX_STREAMS above 2^60")
                    .with_frame(ty::MAX_STREAMS + dir as u64),
            );
        }
        let d = di(dir);
        // RFC 9000 §4.6: MAX_STREAMS that do not increase the limit are ignored.
        if count > self.max_local[d] {
            self.max_local[d] = count;
            // Whoever waits in `open` has no other wake-up: no stream event would follow.
            self.events.push_back(StreamEvent::Available { dir });
        }
        Ok(())
    }

    /// A DATA_BLOCKED frame: informational; a MAX_DATA goes out as soon as reads allow
    pub fn on_data_blocked(&mut self, limit: u64) {
        let _ = limit;
    }

    /// A STREAM_DATA_BLOCKED frame
    pub fn on_stream_data_blocked(
        &mut self,
        id: StreamId,
        limit: u64,
    ) -> Result<(), TransportError> {
        let _ = limit;
        self.check_id(id, true, ty::STREAM_DATA_BLOCKED)?;
        Ok(())
    }

    /// A STREAMS_BLOCKED frame
    pub fn on_streams_blocked(&mut self, dir: Dir, limit: u64) -> Result<(), TransportError> {
        // RFC 9000 §19.14: a limit above 2^60 MUST be treated as STREAM_LIMIT_ERROR.
        if limit > MAX_STREAM_COUNT {
            return Err(
                TransportError::STREAM_LIMIT_ERROR("STREAMS_BLOCKED above 2^60")
                    .with_frame(ty::STREAMS_BLOCKED + dir as u64),
            );
        }
        Ok(())
    }

    // ---- freeing ----

    fn free_recv(&mut self, id: StreamId) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.recv = None;
        }
        self.check_msd.remove(&id);
        self.pending.stream.remove(&(id, P_MSD));
        self.maybe_free(id);
    }

    fn free_send(&mut self, id: StreamId) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.send = None;
        }
        self.send_queue.retain(|&s| s != id);
        self.pending.stream.remove(&(id, P_SDB));
        self.maybe_free(id);
    }

    /// Drop a stream once both halves are done; peer streams return MAX_STREAMS credit
    fn maybe_free(&mut self, id: StreamId) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|s| s.send.is_none() && s.recv.is_none());
        if !done {
            return;
        }
        self.streams.remove(&id);
        if id.initiator() != self.side {
            let d = di(id.dir());
            // RFC 9000 §4.6: raise the limit as streams close, so the peer can keep going.
            if self.max_remote[d] < MAX_STREAM_COUNT {
                self.max_remote[d] += 1;
                self.pending.max_streams[d] = true;
            }
        }
    }

    // ---- packet building ----

    /// Append stream-layer frames to `buf`, at most `max_len` bytes in total
    ///
    /// Control frames go first, then STREAM frames round-robin across streams. Every STREAM
    /// frame carries a length except a last one that fills the remaining space.
    pub fn write_frames(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        now: Instant,
        rtt: Duration,
        sent: &mut SentFrames,
    ) {
        let limit = buf.len() + max_len;
        self.write_control(buf, limit, now, rtt, sent);
        self.write_stream_frames(buf, limit, sent);
    }

    fn write_control(
        &mut self,
        buf: &mut Vec<u8>,
        limit: usize,
        now: Instant,
        rtt: Duration,
        sent: &mut SentFrames,
    ) {
        let put = |buf: &mut Vec<u8>, c: Control| -> bool {
            if buf.len() + c.encoded_len() > limit {
                return false;
            }
            c.encode(buf);
            true
        };

        // MAX_DATA: when reads freed enough window, or a previous one was lost.
        let update = self.conn_recv.poll_update(now, rtt);
        if update.is_some() || self.pending.max_data {
            let max = self.conn_recv.max();
            if put(buf, Control::MaxData(max)) {
                self.pending.max_data = false;
                sent.max_data = Some(max);
            } else {
                self.pending.max_data = true;
            }
        }

        for dir in [Dir::Bi, Dir::Uni] {
            let d = di(dir);
            if self.pending.max_streams[d] {
                let count = self.max_remote[d];
                if put(buf, Control::MaxStreams(dir, count)) {
                    self.pending.max_streams[d] = false;
                    sent.max_streams[d] = Some(count);
                }
            }
            if self.pending.streams_blocked[d] {
                let at = self.max_local[d];
                if put(buf, Control::StreamsBlocked(dir, at)) {
                    self.pending.streams_blocked[d] = false;
                    sent.streams_blocked[d] = Some(at);
                }
            }
        }

        if self.pending.data_blocked {
            let at = self.conn_send.max();
            if put(buf, Control::DataBlocked(at)) {
                self.pending.data_blocked = false;
                sent.data_blocked = Some(at);
            }
        }

        // Streams whose reads may warrant a MAX_STREAM_DATA.
        for id in std::mem::take(&mut self.check_msd) {
            if let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) {
                // No point extending the window once the final size is known.
                if recv.final_size.is_none() && recv.flow.poll_update(now, rtt).is_some() {
                    self.pending.stream.insert((id, P_MSD));
                }
            }
        }

        let items: Vec<(StreamId, u8)> = self.pending.stream.iter().copied().collect();
        for (id, kind) in items {
            let stream = self.streams.get(&id);
            let frame = match kind {
                P_MSD => stream.and_then(|s| s.recv.as_ref()).map(|r| {
                    (
                        Control::MaxStreamData(id, r.flow.max()),
                        StreamControl::MaxStreamData(id, r.flow.max()),
                    )
                }),
                P_RESET => stream
                    .and_then(|s| s.send.as_ref())
                    .and_then(|s| match s.state {
                        SendState::ResetSent(code) => Some((
                            Control::ResetStream(id, code, s.buf.offset()),
                            StreamControl::Reset(id),
                        )),
                        _ => None,
                    }),
                P_STOP => self.stop_codes.get(&id).map(|&code| {
                    (
                        Control::StopSending(id, code),
                        StreamControl::StopSending(id),
                    )
                }),
                _ => stream.and_then(|s| s.send.as_ref()).map(|s| {
                    let at = s.flow.max();
                    (
                        Control::StreamDataBlocked(id, at),
                        StreamControl::StreamDataBlocked(id, at),
                    )
                }),
            };
            let Some((frame, record)) = frame else {
                // No longer relevant.
                self.pending.stream.remove(&(id, kind));
                continue;
            };
            if put(buf, frame) {
                self.pending.stream.remove(&(id, kind));
                sent.control.push(record);
            }
        }
    }

    fn write_stream_frames(&mut self, buf: &mut Vec<u8>, limit: usize, sent: &mut SentFrames) {
        // Round-robin: each stream gets one frame per turn, then goes to the back of the queue
        // if it still has data, so one bulk stream cannot starve the others.
        while buf.len() < limit {
            let Some(id) = self.send_queue.pop_front() else {
                break;
            };
            let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
                continue;
            };
            if matches!(send.state, SendState::ResetSent(_)) {
                continue;
            }
            let space = limit - buf.len();
            // The end offset bounds the header size of any frame of this stream.
            let max_nolen = deps::stream_max_data_len(id, send.buf.offset(), space, false);
            let range = if max_nolen > 0 {
                send.buf.poll_transmit(max_nolen)
            } else {
                None
            };
            let (start, mut end) = match &range {
                Some(r) => (r.start, r.end),
                None => (send.buf.offset(), send.buf.offset()),
            };
            let mut fin = send.fin_pending && !send.buf.has_unsent() && end == send.buf.offset();
            if range.is_none() && !fin {
                if send.buf.has_unsent() || send.fin_pending {
                    // Not even one byte fits: try again in the next packet.
                    self.send_queue.push_front(id);
                    break;
                }
                continue;
            }
            let mut len = (end - start) as usize;
            // Omit the length only when the frame exactly fills the space left: then nothing
            // can follow it, and the packet stays parseable whatever the caller appends later.
            let with_len = deps::stream_header_len(id, start, len, false) + len != space;
            if with_len && deps::stream_header_len(id, start, len, true) + len > space {
                let fit = deps::stream_max_data_len(id, start, space, true);
                let fin_only_fits =
                    len == 0 && fin && deps::stream_header_len(id, start, 0, true) <= space;
                if fit == 0 && !fin_only_fits {
                    // Not worth an empty frame: give the range back for the next packet.
                    if let Some(r) = range {
                        send.buf.retransmit(r);
                    }
                    self.send_queue.push_front(id);
                    break;
                }
                let new_end = start + fit.min(len) as u64;
                if new_end < end {
                    // Give back the tail that no longer fits.
                    send.buf.retransmit(new_end..end);
                    end = new_end;
                    len = fit.min(len);
                    fin = false;
                }
            }
            deps::encode_stream_header(buf, id, start, len, fin, with_len);
            let mut off = start;
            while off < end {
                let chunk = send.buf.get(off..end);
                if chunk.is_empty() {
                    break;
                }
                buf.extend_from_slice(chunk);
                off += chunk.len() as u64;
            }
            debug_assert_eq!(off, end, "send buffer lost unacknowledged data");
            if fin {
                send.fin_pending = false;
            }
            sent.push_chunk(StreamChunk {
                id,
                offsets: start..end,
                fin,
            });
            if send.buf.has_unsent() || send.fin_pending {
                self.send_queue.push_back(id);
            }
        }
    }

    /// Some stream has data or a FIN not yet sent (or to resend)
    pub fn has_queued_stream_data(&self) -> bool {
        !self.send_queue.is_empty()
    }

    /// Whether anything is waiting to be sent
    pub fn has_pending(&self) -> bool {
        !self.send_queue.is_empty()
            || self.pending.max_data
            || self.pending.max_streams.iter().any(|&b| b)
            || !self.pending.stream.is_empty()
            || self.pending.data_blocked
            || self.pending.streams_blocked.iter().any(|&b| b)
            || wants_update(&self.conn_recv)
            || self.check_msd.iter().any(|id| {
                self.streams
                    .get(id)
                    .and_then(|s| s.recv.as_ref())
                    .is_some_and(|r| r.final_size.is_none() && wants_update(&r.flow))
            })
    }

    /// A packet carrying `sent` was acknowledged
    pub fn on_acked(&mut self, mut sent: SentFrames) {
        for chunk in sent.take_chunks() {
            let Some(send) = self
                .streams
                .get_mut(&chunk.id)
                .and_then(|s| s.send.as_mut())
            else {
                continue;
            };
            if matches!(send.state, SendState::ResetSent(_)) {
                continue;
            }
            let before = send.buf.unacked_len();
            send.buf.ack(chunk.offsets);
            let freed = before - send.buf.unacked_len();
            send.fin_acked |= chunk.fin;
            let done = send.fin_acked && send.buf.is_fully_acked();
            self.unacked = self.unacked.saturating_sub(freed);
            if freed > 0 {
                self.conn_blocked = true;
                self.wake_conn_blocked();
            }
            if done {
                self.events
                    .push_back(StreamEvent::Finished { id: chunk.id });
                self.free_send(chunk.id);
            }
        }
        for c in sent.control {
            if let StreamControl::Reset(id) = c {
                // RFC 9000 §3.1: RESET_STREAM acknowledged → "Reset Recvd", terminal.
                self.free_send(id);
            }
        }
    }

    /// A PTO probe repeats the stream data of a packet that is still outstanding (RFC 9002
    /// §6.2.4 recommends retransmitting unacknowledged data in probes). A bare PING only asks
    /// for an acknowledgement, which costs another round trip before loss detection resends
    /// the data, and under bursty loss that round trip is often lost as well. Only stream
    /// data and FIN are repeated; control frames follow their own loss handling.
    pub fn requeue_for_probe(&mut self, sent: &SentFrames) {
        for chunk in sent.chunks() {
            self.requeue_chunk(chunk);
        }
    }

    fn requeue_chunk(&mut self, chunk: &StreamChunk) {
        let Some(send) = self
            .streams
            .get_mut(&chunk.id)
            .and_then(|s| s.send.as_mut())
        else {
            return;
        };
        if matches!(send.state, SendState::ResetSent(_)) {
            return;
        }
        if chunk.offsets.start < chunk.offsets.end {
            send.buf.retransmit(chunk.offsets.clone());
        }
        if chunk.fin && !send.fin_acked {
            send.fin_pending = true;
        }
        if !self.send_queue.contains(&chunk.id) {
            self.send_queue.push_back(chunk.id);
        }
    }

    /// A packet carrying `sent` was declared lost: re-queue what still matters
    pub fn on_lost(&mut self, mut sent: SentFrames) {
        for chunk in sent.take_chunks() {
            self.requeue_chunk(&chunk);
        }
        // Only the newest value of a limit is worth resending.
        if sent.max_data == Some(self.conn_recv.max()) {
            self.pending.max_data = true;
        }
        for d in 0..2 {
            if sent.max_streams[d] == Some(self.max_remote[d]) {
                self.pending.max_streams[d] = true;
            }
            if sent.streams_blocked[d].is_some()
                && sent.streams_blocked[d] == Some(self.max_local[d])
                && self.next_local[d] >= self.max_local[d]
            {
                self.pending.streams_blocked[d] = true;
            }
        }
        if let Some(at) = sent.data_blocked {
            self.conn_send.on_blocked_lost(at);
            if self.conn_send.poll_blocked().is_some() {
                self.pending.data_blocked = true;
            }
        }
        for c in sent.control {
            let (id, kind, relevant) = match c {
                StreamControl::MaxStreamData(id, max) => (
                    id,
                    P_MSD,
                    self.streams
                        .get(&id)
                        .and_then(|s| s.recv.as_ref())
                        .is_some_and(|r| r.flow.max() == max && r.final_size.is_none()),
                ),
                StreamControl::Reset(id) => (id, P_RESET, true),
                StreamControl::StopSending(id) => (id, P_STOP, self.stop_codes.contains_key(&id)),
                StreamControl::StreamDataBlocked(id, at) => {
                    let again = self
                        .streams
                        .get_mut(&id)
                        .and_then(|s| s.send.as_mut())
                        .is_some_and(|s| {
                            s.flow.on_blocked_lost(at);
                            s.flow.poll_blocked().is_some()
                        });
                    (id, P_SDB, again)
                }
            };
            if relevant {
                // Resend with current values; write_control drops it if the stream is gone.
                self.pending.stream.insert((id, kind));
            }
        }
    }

    /// The next event for the application
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// Streams currently holding state
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Whether `id` still holds state
    pub fn contains(&self, id: StreamId) -> bool {
        self.streams.contains_key(&id)
    }

    /// Bytes written and not yet acknowledged, across all streams
    pub fn unacked_bytes(&self) -> u64 {
        self.unacked
    }
}

/// Limits the peer granted, for the SOL_QUIC socket API's MAX_STREAMS and STREAM_MAX_DATA
/// events
impl StreamsState {
    /// The peer's MAX_STREAMS for streams we open in `dir`
    pub fn peer_max_streams(&self, dir: Dir) -> u64 {
        self.max_local[di(dir)]
    }

    /// The peer's MAX_STREAM_DATA for our sending half of `id`, while it exists
    pub fn send_max_data(&self, id: StreamId) -> Option<u64> {
        self.streams
            .get(&id)
            .and_then(|s| s.send.as_ref())
            .map(|h| h.flow.max())
    }

    /// The final size of the peer's data on `id`, once its FIN told it, and whether every
    /// byte below it has arrived; while the receiving half exists and was not reset
    pub fn recv_final_size(&self, id: StreamId) -> Option<(u64, bool)> {
        let r = self.streams.get(&id)?.recv.as_ref()?;
        if r.state != RecvState::Recv {
            return None;
        }
        let size = r.final_size?;
        let contiguous = r.assembler.bytes_read() + r.assembler.readable();
        Some((size, contiguous >= size))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
