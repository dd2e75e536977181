//! One request/response exchange with the service over a QUIC socket's SEQPACKET fd
//!
//! Send: header+body from a small buffer, then the payload iovecs straight from the caller
//! (one `sendmsg`, no copy). Receive: peek the 16-byte header to learn the body size, then
//! one `recvmsg` into [exact header+body buffer, caller's buffers], so payload bytes land
//! directly where the application wants them. `Notify` doorbells and stale sequence numbers
//! met on the way are discarded (see the protocol doc in `quic_stack::sockapi::msg`).

use std::mem::{size_of, zeroed};
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_int, c_void, iovec, msghdr};
use quic_stack::sockapi::msg::{self, op, Header, RawAddr, Request, Response, HEADER_LEN};
use quic_stack::sockapi::types::StreamInfo;

use crate::error::ClientError;
use crate::{registry, sys};

/// A decoded response, owning what it carries
#[derive(Debug)]
pub(crate) enum Answer {
    Ok(i64),
    Addr(RawAddr),
    Recv {
        msg_flags: u32,
        stream_info: Option<StreamInfo>,
        handshake_level: Option<u8>,
        len: usize,
    },
    OptVal(usize),
    Accepted(RawAddr, Option<RawFd>),
    Notify(u32),
}

type Result<T> = std::result::Result<T, ClientError>;

/// Connect a new SEQPACKET socket to the service; `flags` are SOCK_NONBLOCK/SOCK_CLOEXEC
pub(crate) fn connect_service(flags: c_int) -> Result<RawFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { sys::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | flags, 0) };
    if fd < 0 {
        return Err(ClientError::Errno(sys::errno()));
    }
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let name = std::env::var(msg::SERVICE_ENV).unwrap_or_else(|_| msg::DEFAULT_SERVICE_NAME.into());
    let (abstract_ns, bytes) = match name.strip_prefix('/') {
        Some(_) => (false, name.as_bytes()),
        None => (true, name.strip_prefix('@').unwrap_or(&name).as_bytes()),
    };
    let off = usize::from(abstract_ns);
    if bytes.len() + off >= sun.sun_path.len() {
        // SAFETY: fd is ours and open.
        unsafe { sys::close(fd) };
        return Err(ClientError::Errno(libc::ENAMETOOLONG));
    }
    for (i, b) in bytes.iter().enumerate() {
        sun.sun_path[i + off] = *b as libc::c_char;
    }
    // Abstract names are length-delimited, not NUL-terminated.
    let len = size_of::<libc::sa_family_t>() + off + bytes.len() + usize::from(!abstract_ns);
    // SAFETY: sun is a valid sockaddr_un and len is within it.
    let rc = unsafe { sys::connect(fd, ptr::from_ref(&sun).cast(), len as libc::socklen_t) };
    if rc < 0 {
        let e = sys::errno();
        // SAFETY: fd is ours and open.
        unsafe { sys::close(fd) };
        return Err(ClientError::Errno(e));
    }
    Ok(fd)
}

/// Wait until fd is readable/writable; `timeout_ms` -1 = forever. EAGAIN on timeout.
pub(crate) fn wait(fd: RawFd, events: i16, timeout_ms: c_int) -> Result<()> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        match n {
            n if n > 0 => return Ok(()),
            0 => return Err(ClientError::Errno(libc::EAGAIN)),
            _ if sys::errno() == libc::EINTR && timeout_ms < 0 => continue,
            _ => return Err(ClientError::Errno(sys::errno())),
        }
    }
}

/// Whether the application made this fd non-blocking (checked per call: it may fcntl it)
pub(crate) fn nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL on any fd is harmless.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// SO_RCVTIMEO / SO_SNDTIMEO of the fd in ms, -1 for none (kept on the unix socket itself)
pub(crate) fn timeout_ms(fd: RawFd, opt: c_int) -> c_int {
    // SAFETY: timeval is plain data.
    let mut tv: libc::timeval = unsafe { zeroed() };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: tv/len are valid for writes of the sizes given.
    let rc = unsafe {
        sys::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            ptr::from_mut(&mut tv).cast(),
            &mut len,
        )
    };
    if rc < 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return -1;
    }
    let ms = tv
        .tv_sec
        .saturating_mul(1000)
        .saturating_add(tv.tv_usec / 1000);
    c_int::try_from(ms.max(1)).unwrap_or(c_int::MAX)
}

/// Drop the datagram at the head of the queue
fn discard(fd: RawFd) {
    let mut b = [0u8; 1];
    // SAFETY: b is valid for 1 byte; a short buffer truncates and drops the datagram.
    unsafe { sys::recv(fd, b.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
}

/// Send `req` whose payload is `payload` (several iovecs allowed), then wait for its answer,
/// receiving any payload into `into`
///
/// # Safety
/// `payload` and `into` iovecs must describe valid readable / writable memory.
pub(crate) unsafe fn call(
    fd: RawFd,
    req: &Request<'_>,
    payload: &[iovec],
    into: &[iovec],
) -> Result<Answer> {
    // SAFETY: same contract.
    unsafe { call_flagged(fd, req, 0, payload, into) }
}

/// [`call`] with header `FLAG_*` bits on the request
///
/// # Safety
/// As for [`call`].
pub(crate) unsafe fn call_flagged(
    fd: RawFd,
    req: &Request<'_>,
    hdr_flags: u16,
    payload: &[iovec],
    into: &[iovec],
) -> Result<Answer> {
    let _g = registry::lock(fd);
    let seq = registry::next_seq();
    let mut head = Vec::with_capacity(64);
    req.encode_head(seq, &mut head);
    Header::set_flags(&mut head, hdr_flags);
    let mut built = Vec::new();
    let mut iov = vec![iovec {
        iov_base: head.as_mut_ptr().cast(),
        iov_len: head.len(),
    }];
    if let Request::Handshake(a) = req {
        built = a.encode_payload();
        iov.push(iovec {
            iov_base: built.as_mut_ptr().cast(),
            iov_len: built.len(),
        });
    } else {
        let total: usize = payload.iter().map(|v| v.iov_len).sum();
        Header::set_payload_len(&mut head, total as u32);
        iov[0].iov_base = head.as_mut_ptr().cast();
        iov.extend_from_slice(payload);
    }
    // SAFETY: msghdr is plain data; we fill the fields we use.
    let mut m: msghdr = unsafe { zeroed() };
    m.msg_iov = iov.as_mut_ptr();
    m.msg_iovlen = iov.len();
    loop {
        // SAFETY: m points at iovecs that are valid per this function's contract.
        let n = unsafe { sys::sendmsg(fd, &m, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
        if n >= 0 {
            break;
        }
        match sys::errno() {
            libc::EINTR => continue,
            libc::EAGAIN => wait(fd, libc::POLLOUT, -1)?,
            libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN => {
                return Err(ClientError::ServiceGone)
            }
            e => return Err(ClientError::Errno(e)),
        }
    }
    drop(built);
    // SAFETY: `into` is valid per this function's contract.
    unsafe { receive(fd, Some(seq), into) }
}

/// Receive the response to `seq` (or, with None, the next Notify: EAGAIN if none is queued;
/// the caller must hold the fd's lock then, so no other thread's answer is consumed)
///
/// # Safety
/// `into` iovecs must be valid writable memory.
pub(crate) unsafe fn receive(fd: RawFd, seq: Option<u32>, into: &[iovec]) -> Result<Answer> {
    loop {
        let mut peek = [0u8; HEADER_LEN];
        // SAFETY: peek is valid for HEADER_LEN bytes.
        let n = unsafe {
            sys::recv(
                fd,
                peek.as_mut_ptr().cast(),
                HEADER_LEN,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            match sys::errno() {
                libc::EINTR => continue,
                // Waiting for a doorbell: the caller polls without holding the fd lock.
                libc::EAGAIN if seq.is_none() => return Err(ClientError::Errno(libc::EAGAIN)),
                libc::EAGAIN => {
                    wait(fd, libc::POLLIN, -1)?;
                    continue;
                }
                e => return Err(ClientError::Errno(e)),
            }
        }
        if n == 0 {
            return Err(ClientError::ServiceGone);
        }
        let h = match Header::peek(&peek[..n as usize]) {
            Ok(h) => h,
            Err(e) => {
                discard(fd);
                return Err(e.into());
            }
        };
        let wanted = match seq {
            Some(s) => h.op != op::NOTIFY && h.seq == s,
            None => h.op == op::NOTIFY,
        };
        if !wanted {
            // A doorbell met while waiting for an answer, or a stale answer.
            discard(fd);
            continue;
        }
        let mut hb = vec![0u8; HEADER_LEN + usize::from(h.body_len)];
        let mut iov = vec![iovec {
            iov_base: hb.as_mut_ptr().cast(),
            iov_len: hb.len(),
        }];
        iov.extend_from_slice(into);
        let mut cbuf = [0u64; 8]; // room for one SCM_RIGHTS fd, 8-aligned
                                  // SAFETY: msghdr is plain data.
        let mut m: msghdr = unsafe { zeroed() };
        m.msg_iov = iov.as_mut_ptr();
        m.msg_iovlen = iov.len();
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = size_of::<[u64; 8]>();
        // SAFETY: all buffers in m are valid for their lengths.
        let got = unsafe { sys::recvmsg(fd, &mut m, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
        if got < 0 {
            match sys::errno() {
                libc::EINTR | libc::EAGAIN => continue,
                e => return Err(ClientError::Errno(e)),
            }
        }
        // SAFETY: m.msg_control was filled by the kernel.
        let passed = unsafe { take_fd(&m) };
        let got = got as usize;
        if m.msg_flags & libc::MSG_TRUNC != 0 || got < hb.len() {
            close_fd(passed);
            return Err(ClientError::Errno(libc::EPROTO));
        }
        let payload_len = got - hb.len();
        Header::set_payload_len(&mut hb, 0);
        let decoded = Response::decode(&hb).map(|(_, r)| r);
        let r = match decoded {
            Ok(r) => r,
            Err(e) => {
                close_fd(passed);
                return Err(e.into());
            }
        };
        if h.flags & msg::FLAG_NOTIFY_FOLLOWS != 0 {
            // Return only once the doorbell is in the fd, so a poll right after sees it.
            if let Err(e) = wait(fd, libc::POLLIN, -1) {
                close_fd(passed);
                return Err(e);
            }
        }
        let a = match r {
            Response::Ok(v) => Answer::Ok(v),
            Response::Err(e) => {
                close_fd(passed);
                return Err(ClientError::Errno(e));
            }
            Response::Addr(a) => Answer::Addr(a),
            Response::Recv {
                msg_flags,
                stream_info,
                handshake_level,
                ..
            } => Answer::Recv {
                msg_flags,
                stream_info,
                handshake_level,
                len: payload_len,
            },
            Response::OptVal(_) => Answer::OptVal(payload_len),
            Response::Accepted(a) => return Ok(Answer::Accepted(a, passed)),
            Response::Notify(bits) => Answer::Notify(bits),
        };
        close_fd(passed);
        return Ok(a);
    }
}

fn close_fd(fd: Option<RawFd>) {
    if let Some(fd) = fd {
        // SAFETY: an fd we just received and own.
        unsafe { sys::close(fd) };
    }
}

/// The fd passed with SCM_RIGHTS, if any
///
/// # Safety
/// `m` must come from a successful recvmsg.
unsafe fn take_fd(m: &msghdr) -> Option<RawFd> {
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let mut fd: c_int = -1;
                ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(c),
                    ptr::from_mut(&mut fd).cast::<u8>(),
                    size_of::<c_int>(),
                );
                return Some(fd);
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    None
}

/// An iovec for sending a byte slice (never written through)
pub(crate) fn iov(b: &[u8]) -> iovec {
    iovec {
        iov_base: b.as_ptr() as *mut c_void,
        iov_len: b.len(),
    }
}

/// An iovec for receiving into a byte slice
pub(crate) fn iov_mut(b: &mut [u8]) -> iovec {
    iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quic_stack::sockapi::msg::ready;

    /// A socketpair: (library end, service end)
    fn pair() -> (RawFd, RawFd) {
        let mut p = [0; 2];
        // SAFETY: p is valid for two fds.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, p.as_mut_ptr()) };
        assert_eq!(rc, 0);
        (p[0], p[1])
    }

    fn service_send(fd: RawFd, b: &[u8]) {
        // SAFETY: b valid.
        unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), 0) };
    }

    fn service_recv(fd: RawFd) -> (u32, Vec<u8>) {
        let mut b = vec![0u8; msg::MAX_MESSAGE];
        // SAFETY: b valid.
        let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), 0) };
        b.truncate(n.max(0) as usize);
        let (seq, _) = Request::decode(&b).expect("library sent a valid request");
        (seq, b)
    }

    fn close(fd: RawFd) {
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn answer_skips_doorbells_and_stale_answers() {
        let (lib, svc) = pair();
        let t = std::thread::spawn(move || {
            let (seq, _) = service_recv(svc);
            service_send(svc, &Response::Notify(ready::IN).encode(0));
            service_send(svc, &Response::Ok(99).encode(seq.wrapping_sub(1)));
            service_send(svc, &Response::Ok(7).encode(seq));
            svc
        });
        // SAFETY: no buffers.
        let a = unsafe { call(lib, &Request::Listen { backlog: 1 }, &[], &[]) };
        assert!(matches!(a, Ok(Answer::Ok(7))), "{a:?}");
        close(t.join().unwrap());
        close(lib);
    }

    #[test]
    fn payload_lands_in_caller_buffers() {
        let (lib, svc) = pair();
        let t = std::thread::spawn(move || {
            let (seq, req) = service_recv(svc);
            let Ok((_, Request::SendMsg { payload, .. })) = Request::decode(&req) else {
                panic!("not a sendmsg")
            };
            assert_eq!(payload, b"abcdef", "two iovecs arrive as one payload");
            let r = Response::Recv {
                msg_flags: 0,
                stream_info: Some(StreamInfo {
                    stream_id: 4,
                    stream_flags: 0x200,
                }),
                handshake_level: None,
                payload: b"0123456789",
            };
            service_send(svc, &r.encode(seq));
            svc
        });
        let (a, b) = (b"abc".to_vec(), b"def".to_vec());
        let mut x = [0u8; 4];
        let mut y = [0u8; 8];
        let into = [iov_mut(&mut x), iov_mut(&mut y)];
        let req = Request::SendMsg {
            flags: 0,
            stream_info: None,
            handshake_level: None,
            payload: &[],
        };
        // SAFETY: all iovecs point at live buffers.
        let r = unsafe { call(lib, &req, &[iov(&a), iov(&b)], &into) }.unwrap();
        let Answer::Recv {
            len, stream_info, ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(len, 10);
        assert_eq!(stream_info.unwrap().stream_id, 4);
        assert_eq!((&x[..], &y[..6]), (&b"0123"[..], &b"456789"[..]));
        close(t.join().unwrap());
        close(lib);
    }

    #[test]
    fn garbage_and_dead_service_become_errno() {
        let (lib, svc) = pair();
        let t = std::thread::spawn(move || {
            service_recv(svc);
            service_send(svc, b"QS\x09garbage-garbage");
            let (seq, _) = service_recv(svc);
            let mut bad = Response::Ok(0).encode(seq);
            bad[3] = 0x7e; // unknown op behind a valid header
            service_send(svc, &bad);
            svc
        });
        // SAFETY: no buffers.
        let e = unsafe { call(lib, &Request::GetSockName, &[], &[]) }.unwrap_err();
        assert_eq!(e.errno(), libc::EPROTO);
        // SAFETY: no buffers.
        let e = unsafe { call(lib, &Request::GetSockName, &[], &[]) }.unwrap_err();
        assert_eq!(e.errno(), libc::EPROTO);
        let svc = t.join().unwrap();
        close(svc);
        // SAFETY: no buffers.
        let e = unsafe { call(lib, &Request::GetSockName, &[], &[]) }.unwrap_err();
        assert_eq!(e, ClientError::ServiceGone);
        assert_eq!(e.errno(), libc::ECONNRESET);
        close(lib);
    }
}
