//! The C ABI: `quicsock_*` socket calls and libquic's helpers
//!
//! Each `quicsock_*` call passes fds that are not QUIC sockets straight to libc, so the
//! standard names in `preload` can forward everything here unconditionally.

use std::mem::size_of;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_char, c_int, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};
use quic_stack::sockapi::consts::{
    IPPROTO_QUIC, MSG_QUIC_STREAM_FIN, MSG_QUIC_STREAM_FLAGS, MSG_QUIC_STREAM_NEW,
    QUIC_HANDSHAKE_INFO, QUIC_STREAM_INFO, SOL_QUIC,
};
use quic_stack::sockapi::msg::{self, HandshakeArgs, RawAddr, Request, ADDR_LEN, MAX_PAYLOAD};
use quic_stack::sockapi::types::{cmsg_len, cmsg_space, HandshakeInfo, StreamInfo};

use crate::client::{self, iov, Answer};
use crate::error::ClientError;
use crate::{handshake, registry, sys};

type Result<T> = std::result::Result<T, ClientError>;

fn ret_int(r: Result<c_int>) -> c_int {
    r.unwrap_or_else(|e| {
        sys::set_errno(e.errno());
        -1
    })
}

fn ret_size(r: Result<usize>) -> ssize_t {
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => {
            sys::set_errno(e.errno());
            -1
        }
    }
}

fn expect_ok(a: Answer) -> Result<i64> {
    match a {
        Answer::Ok(v) => Ok(v),
        _ => Err(ClientError::Unexpected(0)),
    }
}

/// Read a caller's sockaddr (len may be sizeof(sockaddr_storage): keep what the family uses)
///
/// # Safety
/// `addr` must be valid for `len` bytes when non-null.
unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> Result<RawAddr> {
    if addr.is_null() || (len as usize) < size_of::<libc::sa_family_t>() {
        return Err(ClientError::Errno(libc::EINVAL));
    }
    let n = (len as usize).min(ADDR_LEN);
    // SAFETY: the caller guarantees `len` readable bytes; n <= len.
    let b = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), n) };
    RawAddr::new(b).ok_or(ClientError::Errno(libc::EINVAL))
}

/// Write an address to a caller's (addr, len) pair, truncating like the kernel
///
/// # Safety
/// `addr` valid for `*len` bytes and `len` valid, when non-null.
unsafe fn write_addr(a: &RawAddr, addr: *mut sockaddr, len: *mut socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let b = a.as_bytes();
    // SAFETY: per the contract; we copy at most *len bytes.
    unsafe {
        let n = (*len as usize).min(b.len());
        ptr::copy_nonoverlapping(b.as_ptr(), addr.cast::<u8>(), n);
        *len = b.len() as socklen_t;
    }
}

/// socket(): for IPPROTO_QUIC, a new connection to the service
#[no_mangle]
pub extern "C" fn quicsock_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    if protocol != IPPROTO_QUIC {
        // SAFETY: plain passthrough.
        return unsafe { sys::socket(domain, ty, protocol) };
    }
    ret_int(open_socket(domain, ty))
}

fn open_socket(domain: c_int, ty: c_int) -> Result<c_int> {
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(ClientError::Errno(libc::EAFNOSUPPORT));
    }
    let flags = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if base != libc::SOCK_DGRAM && base != libc::SOCK_STREAM {
        return Err(ClientError::Errno(libc::EPROTONOSUPPORT));
    }
    // No service in this namespace looks like a kernel without the QUIC module.
    let fd =
        client::connect_service(flags).map_err(|_| ClientError::Errno(libc::EPROTONOSUPPORT))?;
    registry::mark(fd);
    let req = Request::Socket {
        family: domain as u16,
        sock_type: base,
        protocol: IPPROTO_QUIC,
    };
    // SAFETY: no payload, no receive buffers.
    match unsafe { client::call(fd, &req, &[], &[]) }.and_then(expect_ok) {
        Ok(_) => Ok(fd),
        Err(e) => {
            registry::unmark(fd);
            // SAFETY: our own fd.
            unsafe { sys::close(fd) };
            Err(e)
        }
    }
}

fn simple(fd: RawFd, req: &Request<'_>) -> Result<c_int> {
    // SAFETY: no payload, no receive buffers.
    unsafe { client::call(fd, req, &[], &[]) }
        .and_then(expect_ok)
        .map(|v| v as c_int)
}

/// bind()
///
/// # Safety
/// libc's contract for bind.
#[no_mangle]
pub unsafe extern "C" fn quicsock_bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::bind(fd, addr, len) };
    }
    // SAFETY: caller's contract.
    ret_int(unsafe { read_addr(addr, len) }.and_then(|a| simple(fd, &Request::Bind(a))))
}

/// connect(): sets the peer and starts the handshake state (sends nothing, like the kernel)
///
/// # Safety
/// libc's contract for connect.
#[no_mangle]
pub unsafe extern "C" fn quicsock_connect(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::connect(fd, addr, len) };
    }
    // SAFETY: caller's contract.
    ret_int(unsafe { read_addr(addr, len) }.and_then(|a| simple(fd, &Request::Connect(a))))
}

/// listen()
#[no_mangle]
pub extern "C" fn quicsock_listen(fd: c_int, backlog: c_int) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough.
        return unsafe { sys::listen(fd, backlog) };
    }
    ret_int(simple(fd, &Request::Listen { backlog }))
}

/// accept()
///
/// # Safety
/// libc's contract for accept.
#[no_mangle]
pub unsafe extern "C" fn quicsock_accept(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { quicsock_accept4(fd, addr, len, 0) }
}

/// accept4(): the new socket's fd arrives from the service by SCM_RIGHTS
///
/// # Safety
/// libc's contract for accept4.
#[no_mangle]
pub unsafe extern "C" fn quicsock_accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::accept4(fd, addr, len, flags) };
    }
    let r = (|| loop {
        // SAFETY: no payload, no receive buffers.
        match unsafe { client::call(fd, &Request::Accept { flags }, &[], &[]) } {
            Ok(Answer::Accepted(a, Some(newfd))) => {
                registry::mark(newfd);
                // SAFETY: fcntl on the fd we just received.
                unsafe {
                    if flags & libc::SOCK_NONBLOCK != 0 {
                        let fl = libc::fcntl(newfd, libc::F_GETFL);
                        libc::fcntl(newfd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                    }
                    if flags & libc::SOCK_CLOEXEC == 0 {
                        libc::fcntl(newfd, libc::F_SETFD, 0);
                    }
                    write_addr(&a, addr, len);
                }
                return Ok(newfd);
            }
            Ok(_) => return Err(ClientError::Unexpected(msg::op::ACCEPTED)),
            Err(ClientError::Errno(libc::EAGAIN)) if !client::nonblocking(fd) => {
                client::wait(fd, libc::POLLIN, client::timeout_ms(fd, libc::SO_RCVTIMEO))?
            }
            Err(e) => return Err(e),
        }
    })();
    ret_int(r)
}

/// The cmsgs of a sendmsg that matter to QUIC
///
/// # Safety
/// `m` must be a valid msghdr.
unsafe fn send_cmsgs(m: &msghdr) -> (Option<StreamInfo>, Option<HandshakeInfo>) {
    let (mut si, mut hs) = (None, None);
    if m.msg_control.is_null() || m.msg_controllen < size_of::<libc::cmsghdr>() {
        return (si, hs);
    }
    // SAFETY: CMSG_* walk the caller's control buffer within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_QUIC {
                let dlen = (*c).cmsg_len.saturating_sub(cmsg_len(0));
                let data = std::slice::from_raw_parts(libc::CMSG_DATA(c), dlen);
                match (*c).cmsg_type {
                    QUIC_STREAM_INFO => si = Some(StreamInfo::decode(data)),
                    QUIC_HANDSHAKE_INFO => hs = Some(HandshakeInfo::decode(data)),
                    _ => {}
                }
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    (si, hs)
}

/// Payload iovecs covering at most `limit` bytes of `src`, starting `skip` bytes in
fn window(src: &[iovec], mut skip: usize, limit: usize) -> Vec<iovec> {
    let mut out = Vec::new();
    let mut left = limit;
    for v in src {
        if left == 0 {
            break;
        }
        if skip >= v.iov_len {
            skip -= v.iov_len;
            continue;
        }
        let n = (v.iov_len - skip).min(left);
        out.push(iovec {
            // SAFETY-free pointer arithmetic: wrapping_add stays within the caller's iovec.
            iov_base: v.iov_base.cast::<u8>().wrapping_add(skip).cast(),
            iov_len: n,
        });
        left -= n;
        skip = 0;
    }
    out
}

/// sendmsg(): stream data / datagram / handshake bytes, per the kernel's cmsg and flag rules
///
/// # Safety
/// libc's contract for sendmsg.
#[no_mangle]
pub unsafe extern "C" fn quicsock_sendmsg(fd: c_int, m: *const msghdr, flags: c_int) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::sendmsg(fd, m, flags) };
    }
    if m.is_null() {
        return ret_size(Err(ClientError::Errno(libc::EFAULT)));
    }
    // SAFETY: caller's contract: m is a valid msghdr with valid iovecs.
    let r = unsafe {
        let m = &*m;
        let (si, hs) = send_cmsgs(m);
        let iovs = if m.msg_iov.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen)
        };
        send_inner(fd, iovs, flags as u32, si, hs)
    };
    ret_size(r)
}

/// Send, splitting writes above the message size limit: NEW only on the first piece, FIN
/// only on the last; a blocking socket waits for the service's POLLOUT doorbell
///
/// # Safety
/// `iovs` must be valid readable memory.
pub(crate) unsafe fn send_inner(
    fd: RawFd,
    iovs: &[iovec],
    flags: u32,
    si: Option<StreamInfo>,
    hs: Option<HandshakeInfo>,
) -> Result<usize> {
    let total: usize = iovs.iter().map(|v| v.iov_len).sum();
    let is_stream = hs.is_none() && flags & quic_stack::sockapi::consts::MSG_QUIC_DATAGRAM == 0;
    if !is_stream && total > MAX_PAYLOAD {
        return Err(ClientError::Errno(libc::EMSGSIZE));
    }
    let blocking = flags & libc::MSG_DONTWAIT as u32 == 0 && !client::nonblocking(fd);
    let mut sent = 0usize;
    loop {
        let n = (total - sent).min(MAX_PAYLOAD);
        let last = sent + n == total;
        let first = sent == 0;
        let strip = |f: u32| {
            let mut f = f;
            if !last {
                f &= !MSG_QUIC_STREAM_FIN;
            }
            if !first {
                f &= !MSG_QUIC_STREAM_NEW;
            }
            f
        };
        let req = Request::SendMsg {
            flags: strip(flags) | libc::MSG_DONTWAIT as u32,
            stream_info: si.map(|s| StreamInfo {
                stream_flags: strip(s.stream_flags),
                ..s
            }),
            handshake_level: hs.map(|h| h.crypto_level),
            payload: &[],
        };
        let piece = window(iovs, sent, n);
        let hdr_flags = if blocking && sent == 0 {
            msg::FLAG_WILL_WAIT
        } else {
            0
        };
        // SAFETY: piece lies inside the caller's iovecs.
        match unsafe { client::call_flagged(fd, &req, hdr_flags, &piece, &[]) } {
            Ok(Answer::Ok(k)) => {
                let k = usize::try_from(k).unwrap_or(0).min(n);
                sent += k;
                if sent == total || k < n && !blocking {
                    return Ok(sent);
                }
            }
            Ok(_) => return Err(ClientError::Unexpected(msg::op::OK)),
            // Flow control answers ENOSPC for sends with a stream cmsg; both mean "would
            // block" to a blocking socket, which waits for the service's POLLOUT.
            Err(ClientError::Errno(libc::EAGAIN | libc::ENOSPC)) if blocking && sent == 0 => {
                wait_doorbell(fd, msg::ready::OUT, libc::SO_SNDTIMEO)?
            }
            Err(e) if sent > 0 && e != ClientError::ServiceGone => return Ok(sent),
            Err(e) => return Err(e),
        }
    }
}

/// Block until the service rings with one of `bits` (or ERR/HUP); EAGAIN on the socket's
/// timeout. Doorbells without those bits are consumed: the service re-rings POLLIN after the
/// next answer if data is still queued, so readability is not lost.
fn wait_doorbell(fd: RawFd, bits: u32, timeo_opt: c_int) -> Result<()> {
    let timeout = client::timeout_ms(fd, timeo_opt);
    loop {
        client::wait(fd, libc::POLLIN, timeout)?;
        let _g = registry::lock(fd);
        // SAFETY: no receive buffers.
        match unsafe { client::receive(fd, None, &[]) } {
            Ok(Answer::Notify(b)) if b & (bits | msg::ready::ERR | msg::ready::HUP) != 0 => {
                return Ok(())
            }
            // Another thread's exchange took the doorbell first: poll again.
            Ok(_) | Err(ClientError::Errno(libc::EAGAIN)) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What a recvmsg produced
pub(crate) struct Got {
    len: usize,
    msg_flags: u32,
    stream_info: Option<StreamInfo>,
    handshake_level: Option<u8>,
}

/// recvmsg core: non-blocking request; a blocking socket waits for the POLLIN doorbell
///
/// # Safety
/// `iovs` must be valid writable memory.
pub(crate) unsafe fn recv_inner(fd: RawFd, iovs: &[iovec], flags: u32) -> Result<Got> {
    let total: usize = iovs.iter().map(|v| v.iov_len).sum();
    let max_len = total.min(MAX_PAYLOAD);
    let into = window(iovs, 0, max_len);
    let blocking = flags & libc::MSG_DONTWAIT as u32 == 0 && !client::nonblocking(fd);
    let req = Request::RecvMsg {
        flags: flags | libc::MSG_DONTWAIT as u32,
        max_len: max_len as u32,
    };
    loop {
        // SAFETY: `into` lies inside the caller's iovecs.
        match unsafe { client::call(fd, &req, &[], &into) } {
            Ok(Answer::Recv {
                msg_flags,
                stream_info,
                handshake_level,
                len,
            }) => {
                return Ok(Got {
                    len,
                    msg_flags,
                    stream_info,
                    handshake_level,
                })
            }
            Ok(_) => return Err(ClientError::Unexpected(msg::op::RECV)),
            Err(ClientError::Errno(libc::EAGAIN)) if blocking => {
                let timeout = client::timeout_ms(fd, libc::SO_RCVTIMEO);
                client::wait(fd, libc::POLLIN, timeout)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// recvmsg(): one stream's data / a datagram / an event / handshake bytes, with the
/// QUIC_STREAM_INFO or QUIC_HANDSHAKE_INFO cmsg
///
/// # Safety
/// libc's contract for recvmsg.
#[no_mangle]
pub unsafe extern "C" fn quicsock_recvmsg(fd: c_int, m: *mut msghdr, flags: c_int) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::recvmsg(fd, m, flags) };
    }
    if m.is_null() {
        return ret_size(Err(ClientError::Errno(libc::EFAULT)));
    }
    // SAFETY: caller's contract: m is a valid msghdr with valid iovecs and control buffer.
    let r = unsafe {
        let m = &mut *m;
        let iovs = if m.msg_iov.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen)
        };
        recv_inner(fd, iovs, flags as u32).map(|g| {
            fill_recv_msghdr(m, &g);
            g.len
        })
    };
    ret_size(r)
}

/// Write the cmsg and msg_flags of a receive into the caller's msghdr
///
/// # Safety
/// `m.msg_control` must be valid for `m.msg_controllen` bytes when non-null.
unsafe fn fill_recv_msghdr(m: &mut msghdr, g: &Got) {
    let mut flags = g.msg_flags;
    m.msg_namelen = 0;
    let (ty, data): (c_int, Vec<u8>) = match (g.stream_info, g.handshake_level) {
        (Some(si), _) => (QUIC_STREAM_INFO, si.encode().to_vec()),
        (None, Some(level)) => (QUIC_HANDSHAKE_INFO, vec![level]),
        _ => {
            m.msg_controllen = 0;
            m.msg_flags = flags as c_int;
            return;
        }
    };
    let space = cmsg_space(data.len());
    if m.msg_control.is_null() || m.msg_controllen < space {
        flags |= libc::MSG_CTRUNC as u32;
        // Without the cmsg, FIN still reaches the application through msg_flags.
        if let Some(si) = g.stream_info {
            flags |= si.stream_flags & MSG_QUIC_STREAM_FIN;
        }
        m.msg_controllen = 0;
    } else {
        // SAFETY: the control buffer holds at least `space` bytes (checked above).
        unsafe {
            let c = libc::CMSG_FIRSTHDR(m);
            (*c).cmsg_level = SOL_QUIC;
            (*c).cmsg_type = ty;
            (*c).cmsg_len = cmsg_len(data.len());
            ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(c), data.len());
        }
        m.msg_controllen = space;
    }
    m.msg_flags = flags as c_int;
}

/// send() = sendmsg without cmsg
///
/// # Safety
/// libc's contract for send.
#[no_mangle]
pub unsafe extern "C" fn quicsock_send(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::send(fd, buf, len, flags) };
    }
    let v = [iovec {
        iov_base: buf as *mut c_void,
        iov_len: if buf.is_null() { 0 } else { len },
    }];
    // SAFETY: buf is valid for len bytes per the caller's contract.
    ret_size(unsafe { send_inner(fd, &v, flags as u32, None, None) })
}

/// recv() = recvmsg without cmsg (FIN of a stream shows in nothing; use recvmsg for it)
///
/// # Safety
/// libc's contract for recv.
#[no_mangle]
pub unsafe extern "C" fn quicsock_recv(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::recv(fd, buf, len, flags) };
    }
    let v = [iovec {
        iov_base: buf,
        iov_len: if buf.is_null() { 0 } else { len },
    }];
    // SAFETY: buf is valid for len bytes per the caller's contract.
    ret_size(unsafe { recv_inner(fd, &v, flags as u32) }.map(|g| g.len))
}

/// setsockopt(): SOL_SOCKET stays on the local fd (SO_RCVTIMEO etc. drive the library's
/// blocking); every other level goes to the service
///
/// # Safety
/// libc's contract for setsockopt.
#[no_mangle]
pub unsafe extern "C" fn quicsock_setsockopt(
    fd: c_int,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: socklen_t,
) -> c_int {
    if !registry::is_quic(fd) || level == libc::SOL_SOCKET {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::setsockopt(fd, level, optname, optval, optlen) };
    }
    let val = if optval.is_null() || optlen == 0 {
        &[][..]
    } else {
        // SAFETY: the caller guarantees optlen readable bytes.
        unsafe { std::slice::from_raw_parts(optval.cast::<u8>(), optlen as usize) }
    };
    if val.len() > MAX_PAYLOAD {
        return ret_int(Err(ClientError::Errno(libc::EINVAL)));
    }
    let req = Request::SetSockOpt {
        level,
        optname,
        optval: &[],
    };
    // SAFETY: val is valid for reads.
    ret_int(
        unsafe { client::call(fd, &req, &[iov(val)], &[]) }
            .and_then(expect_ok)
            .map(|v| v as c_int),
    )
}

/// getsockopt(): the caller's buffer is sent as input (in/out options) and receives the value
///
/// # Safety
/// libc's contract for getsockopt.
#[no_mangle]
pub unsafe extern "C" fn quicsock_getsockopt(
    fd: c_int,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut socklen_t,
) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::getsockopt(fd, level, optname, optval, optlen) };
    }
    if level == libc::SOL_SOCKET {
        if optname == libc::SO_PROTOCOL && !optval.is_null() && !optlen.is_null() {
            // SAFETY: caller's buffer of *optlen bytes; we need 4.
            unsafe {
                if (*optlen as usize) < size_of::<c_int>() {
                    return ret_int(Err(ClientError::Errno(libc::EINVAL)));
                }
                *optval.cast::<c_int>() = IPPROTO_QUIC;
                *optlen = size_of::<c_int>() as socklen_t;
            }
            return 0;
        }
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::getsockopt(fd, level, optname, optval, optlen) };
    }
    if optlen.is_null() {
        return ret_int(Err(ClientError::Errno(libc::EFAULT)));
    }
    // SAFETY: optlen is valid per the contract.
    let cap = (unsafe { *optlen } as usize).min(MAX_PAYLOAD);
    let mut buf = vec![0u8; cap];
    if !optval.is_null() {
        // SAFETY: the caller's buffer holds *optlen bytes; copy its input contents.
        unsafe { ptr::copy_nonoverlapping(optval.cast::<u8>(), buf.as_mut_ptr(), cap) };
    }
    let req = Request::GetSockOpt {
        level,
        optname,
        optlen: cap as u32,
        input: &[],
    };
    let input = iov(&buf);
    let mut out = vec![0u8; cap];
    let into = client::iov_mut(&mut out);
    // SAFETY: buf and out live across the call; out is only written by the kernel recvmsg.
    let r = unsafe { client::call(fd, &req, &[input], &[into]) }.and_then(|a| match a {
        Answer::OptVal(n) => Ok(n),
        _ => Err(ClientError::Unexpected(msg::op::OPTVAL)),
    });
    ret_int(r.map(|n| {
        let n = n.min(cap);
        out.truncate(n);
        if !optval.is_null() {
            // SAFETY: n <= *optlen bytes into the caller's buffer.
            unsafe { ptr::copy_nonoverlapping(out.as_ptr(), optval.cast::<u8>(), n) };
        }
        // SAFETY: optlen valid.
        unsafe { *optlen = n as socklen_t };
        0
    }))
}

fn name_call(fd: RawFd, req: Request<'_>, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: no payload, no receive buffers.
    let r = unsafe { client::call(fd, &req, &[], &[]) }.and_then(|a| match a {
        Answer::Addr(a) => Ok(a),
        _ => Err(ClientError::Unexpected(msg::op::ADDR)),
    });
    ret_int(r.map(|a| {
        // SAFETY: caller's contract for getsockname/getpeername.
        unsafe { write_addr(&a, addr, len) };
        0
    }))
}

/// getsockname()
///
/// # Safety
/// libc's contract for getsockname.
#[no_mangle]
pub unsafe extern "C" fn quicsock_getsockname(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::getsockname(fd, addr, len) };
    }
    name_call(fd, Request::GetSockName, addr, len)
}

/// getpeername()
///
/// # Safety
/// libc's contract for getpeername.
#[no_mangle]
pub unsafe extern "C" fn quicsock_getpeername(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::getpeername(fd, addr, len) };
    }
    name_call(fd, Request::GetPeerName, addr, len)
}

/// shutdown(): SHUT_WR/SHUT_RDWR close the connection with the configured code/phrase
#[no_mangle]
pub extern "C" fn quicsock_shutdown(fd: c_int, how: c_int) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough.
        return unsafe { sys::shutdown(fd, how) };
    }
    ret_int(simple(fd, &Request::Shutdown { how }))
}

/// close(): closing the fd is the request: the service sees EOF and closes the connection
#[no_mangle]
pub extern "C" fn quicsock_close(fd: c_int) -> c_int {
    registry::unmark(fd);
    // SAFETY: passthrough.
    unsafe { sys::close(fd) }
}

/// 1 if fd is a QUIC socket created through this library
#[no_mangle]
pub extern "C" fn quicsock_is_quic(fd: c_int) -> c_int {
    c_int::from(registry::is_quic(fd))
}

/// libquic `quic_sendmsg`: stream id and stream flags become a QUIC_STREAM_INFO cmsg, the
/// other flag bits are sendmsg flags
///
/// # Safety
/// `msg` valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn quic_sendmsg(
    fd: c_int,
    msg: *const c_void,
    len: size_t,
    sid: i64,
    flags: u32,
) -> ssize_t {
    if !registry::is_quic(fd) {
        return ret_size(Err(ClientError::Errno(libc::ENOTSOCK)));
    }
    let si = StreamInfo {
        stream_id: sid,
        stream_flags: flags & MSG_QUIC_STREAM_FLAGS,
    };
    let v = [iovec {
        iov_base: msg as *mut c_void,
        iov_len: if msg.is_null() { 0 } else { len },
    }];
    // SAFETY: msg valid for len bytes per the contract.
    ret_size(unsafe { send_inner(fd, &v, flags & !MSG_QUIC_STREAM_FLAGS, Some(si), None) })
}

/// libquic `quic_recvmsg`: `*flags` in = recvmsg flags, out = msg_flags | stream_flags
///
/// # Safety
/// `msg` valid for `len` bytes; `sid`/`flags` valid or null.
#[no_mangle]
pub unsafe extern "C" fn quic_recvmsg(
    fd: c_int,
    msg: *mut c_void,
    len: size_t,
    sid: *mut i64,
    flags: *mut u32,
) -> ssize_t {
    if !registry::is_quic(fd) {
        return ret_size(Err(ClientError::Errno(libc::ENOTSOCK)));
    }
    let in_flags = if flags.is_null() {
        0
    } else {
        // SAFETY: valid per contract.
        unsafe { *flags }
    };
    let v = [iovec {
        iov_base: msg,
        iov_len: if msg.is_null() { 0 } else { len },
    }];
    // SAFETY: msg valid for len bytes per the contract.
    let r = unsafe { recv_inner(fd, &v, in_flags) }.map(|g| {
        // SAFETY: sid/flags valid or null per the contract.
        unsafe {
            if let (Some(si), false) = (g.stream_info, sid.is_null()) {
                *sid = si.stream_id;
            }
            if !flags.is_null() {
                *flags = g.msg_flags | g.stream_info.map_or(0, |s| s.stream_flags);
            }
        }
        g.len
    });
    ret_size(r)
}

/// Contents of a file named by a C string (None for NULL)
///
/// # Safety
/// `path` NUL-terminated or null.
unsafe fn read_file(path: *const c_char) -> Result<Option<Vec<u8>>> {
    if path.is_null() {
        return Ok(None);
    }
    // SAFETY: NUL-terminated per contract.
    let p = unsafe { std::ffi::CStr::from_ptr(path) };
    let p = std::str::from_utf8(p.to_bytes()).map_err(|_| ClientError::Errno(libc::EINVAL))?;
    std::fs::read(p)
        .map(Some)
        .map_err(|e| ClientError::Errno(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// # Safety
/// `s` NUL-terminated or null; the slice lives as long as the C string.
unsafe fn cstr<'a>(s: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: NUL-terminated per contract.
    (!s.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(s) }.to_bytes())
}

fn handshake(fd: RawFd, args: HandshakeArgs<'_>) -> c_int {
    if !registry::is_quic(fd) {
        return -libc::ENOTSOCK;
    }
    // Files are read here, in the application's mount namespace, not by the service.
    // SAFETY: no raw payload iovecs (Handshake builds its own), no receive buffers.
    match unsafe { client::call(fd, &Request::Handshake(args), &[], &[]) }.and_then(expect_ok) {
        Ok(_) => 0,
        Err(e) => -e.errno(),
    }
}

/// libquic `quic_client_handshake`. `pkey_file` NULL: X.509, the service runs the TLS
/// handshake (rustls) with SNI `hostname`. `pkey_file` non-NULL: a PSK file (`identity:hexkey`
/// lines, the first is offered) and GnuTLS runs the handshake here, over the socket's
/// external-TLS calls (see `handshake`). Returns 0 or a negative errno (a negative GnuTLS
/// error code when TLS itself fails, like libquic).
///
/// # Safety
/// Strings NUL-terminated or null.
#[no_mangle]
pub unsafe extern "C" fn quic_client_handshake(
    fd: c_int,
    pkey_file: *const c_char,
    hostname: *const c_char,
    alpns: *const c_char,
) -> c_int {
    // SAFETY: per contract.
    let pkey = match unsafe { read_file(pkey_file) } {
        Ok(p) => p,
        Err(e) => return -e.errno(),
    };
    // SAFETY: per contract.
    let (hostname, alpns) = unsafe { (cstr(hostname), cstr(alpns)) };
    if let Some(file) = pkey {
        return handshake::psk_client(fd, &file, hostname, alpns);
    }
    handshake(
        fd,
        HandshakeArgs {
            server: false,
            hostname,
            alpns,
            pkey: None,
            cert: None,
        },
    )
}

/// libquic `quic_server_handshake`: `cert_file` non-NULL = X.509 with PEM key `pkey_file`,
/// run by the service (rustls); NULL = PSK server with the PSK file `pkey_file`, run here
/// with GnuTLS. Returns 0 or a negative errno (or GnuTLS error code, see above).
///
/// # Safety
/// Strings NUL-terminated or null.
#[no_mangle]
pub unsafe extern "C" fn quic_server_handshake(
    fd: c_int,
    pkey_file: *const c_char,
    cert_file: *const c_char,
    alpns: *const c_char,
) -> c_int {
    // SAFETY: per contract.
    let (pkey, cert) = match unsafe { (read_file(pkey_file), read_file(cert_file)) } {
        (Ok(p), Ok(c)) => (p, c),
        (Err(e), _) | (_, Err(e)) => return -e.errno(),
    };
    // SAFETY: per contract.
    let alpns = unsafe { cstr(alpns) };
    match (pkey, cert) {
        (Some(file), None) => handshake::psk_server(fd, &file, alpns),
        // Neither file: the service's handshake with the listener's certificate, as before.
        (pkey, cert) => handshake(
            fd,
            HandshakeArgs {
                server: true,
                hostname: None,
                alpns,
                pkey: pkey.as_deref(),
                cert: cert.as_deref(),
            },
        ),
    }
}

/// libquic `quic_handshake`: run the handshake of an application-configured GnuTLS session
/// (priority, credentials, ALPN, `gnutls_transport_set_int(session, fd)` done by the caller)
/// over the QUIC socket, blocking: 1 s polls, -ETIMEDOUT after 30 s. Returns 0 or negative.
///
/// # Safety
/// `session` is a live gnutls_session_t.
#[no_mangle]
pub unsafe extern "C" fn quic_handshake(session: *mut c_void) -> c_int {
    if session.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: per contract.
    unsafe { handshake::run(session) }
}

/// libquic `quic_handshake_init`: hook the session up; `*pstep` (NULL on entry) receives the
/// first step for the caller to perform
///
/// # Safety
/// `session` live; `pstep` valid.
#[no_mangle]
pub unsafe extern "C" fn quic_handshake_init(
    session: *mut c_void,
    pstep: *mut *mut handshake::QuicHandshakeStep,
) -> c_int {
    if session.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: per contract.
    unsafe { handshake::init(session, pstep) }
}

/// libquic `quic_handshake_step`: the caller stored the syscall's result (or -errno, never
/// EAGAIN/EINTR) in the step's retval; `*pstep` becomes the next step, NULL when done
///
/// # Safety
/// `session` had quic_handshake_init; `pstep` valid.
#[no_mangle]
pub unsafe extern "C" fn quic_handshake_step(
    session: *mut c_void,
    pstep: *mut *mut handshake::QuicHandshakeStep,
) -> c_int {
    if session.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: per contract.
    unsafe { handshake::step(session, pstep) }
}

/// libquic `quic_handshake_deinit`: free what quic_handshake_init set up
///
/// # Safety
/// `session` live.
#[no_mangle]
pub unsafe extern "C" fn quic_handshake_deinit(session: *mut c_void) {
    if !session.is_null() {
        // SAFETY: per contract.
        unsafe { handshake::deinit(session) }
    }
}

/// libquic `quic_session_get_data`: the NewSessionTicket from getsockopt(SESSION_TICKET) fed to
/// GnuTLS, then gnutls_session_get_data into `data`/`*size`
///
/// # Safety
/// `session` live; `data` valid for `*size` bytes; `size` valid.
#[no_mangle]
pub unsafe extern "C" fn quic_session_get_data(
    session: *mut c_void,
    data: *mut c_void,
    size: *mut size_t,
) -> c_int {
    if session.is_null() || size.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: per contract.
    unsafe { handshake::session_get_data(session, data, size) }
}

/// libquic `quic_session_set_data`: gnutls_session_set_data
///
/// # Safety
/// `session` live; `data` valid for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn quic_session_set_data(
    session: *mut c_void,
    data: *const c_void,
    size: size_t,
) -> c_int {
    if session.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: per contract.
    unsafe { handshake::session_set_data(session, data, size) }
}

/// libquic `quic_session_get_alpn`: the negotiated ALPN into `alpn`/`*size` (-EINVAL if it
/// does not fit)
///
/// # Safety
/// `session` live; `alpn` valid for `*size` bytes; `size` valid.
#[no_mangle]
pub unsafe extern "C" fn quic_session_get_alpn(
    session: *mut c_void,
    alpn: *mut c_void,
    size: *mut size_t,
) -> c_int {
    if session.is_null() || size.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: per contract.
    unsafe { handshake::session_get_alpn(session, alpn, size) }
}

/// libquic `quic_session_set_alpn`: a comma list (< 64 bytes, <= 5 names) as the session's
/// mandatory ALPN protocols
///
/// # Safety
/// `session` live; `alpns` valid for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn quic_session_set_alpn(
    session: *mut c_void,
    alpns: *const c_void,
    size: size_t,
) -> c_int {
    if session.is_null() || (alpns.is_null() && size > 0) {
        return -libc::EINVAL;
    }
    let list = if size == 0 {
        &[][..]
    } else {
        // SAFETY: per contract.
        unsafe { std::slice::from_raw_parts(alpns.cast::<u8>(), size) }
    };
    // SAFETY: per contract.
    unsafe { handshake::session_set_alpn(session, list) }
}
