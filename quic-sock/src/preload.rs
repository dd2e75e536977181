//! The standard socket calls, exported under libc's names for LD_PRELOAD (or for linking
//! `-lquic_sock` ahead of libc)
//!
//! `socket()` with IPPROTO_QUIC creates a QUIC socket; every other call checks the fd against
//! the registry (a lock-free bitmap test) and goes to libc (through dlsym RTLD_NEXT) unless
//! it is one of ours. poll/select/epoll need no interposition: the fd is a real socket the
//! service makes readable. Not compiled into unit-test binaries, which must keep libc's.

use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::{api, registry, sys};

/// socket(2)
#[no_mangle]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    api::quicsock_socket(domain, ty, protocol)
}

/// bind(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_bind(fd, addr, len) }
}

/// listen(2)
#[no_mangle]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    api::quicsock_listen(fd, backlog)
}

/// accept(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_accept(fd, addr, len) }
}

/// accept4(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_accept4(fd, addr, len, flags) }
}

/// connect(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_connect(fd, addr, len) }
}

/// sendmsg(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, m: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: same contract.
    unsafe { api::quicsock_sendmsg(fd, m, flags) }
}

/// recvmsg(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, m: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: same contract.
    unsafe { api::quicsock_recvmsg(fd, m, flags) }
}

/// send(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: same contract.
    unsafe { api::quicsock_send(fd, buf, len, flags) }
}

/// recv(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: same contract.
    unsafe { api::quicsock_recv(fd, buf, len, flags) }
}

/// sendto(2): the address is ignored on a QUIC socket, like the kernel's msg_name
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::sendto(fd, buf, len, flags, addr, alen) };
    }
    // SAFETY: same contract.
    unsafe { api::quicsock_send(fd, buf, len, flags) }
}

/// recvfrom(2): no source address on a QUIC socket (`*alen` = 0)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::recvfrom(fd, buf, len, flags, addr, alen) };
    }
    if !alen.is_null() {
        // SAFETY: valid per contract.
        unsafe { *alen = 0 };
    }
    // SAFETY: same contract.
    unsafe { api::quicsock_recv(fd, buf, len, flags) }
}

/// read(2): recv without flags on a QUIC socket
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::read(fd, buf, len) };
    }
    // SAFETY: same contract.
    unsafe { api::quicsock_recv(fd, buf, len, 0) }
}

/// write(2): send without flags on a QUIC socket
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough under the same contract.
        return unsafe { sys::write(fd, buf, len) };
    }
    // SAFETY: same contract.
    unsafe { api::quicsock_send(fd, buf, len, 0) }
}

/// setsockopt(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_setsockopt(fd, level, name, val, len) }
}

/// getsockopt(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_getsockopt(fd, level, name, val, len) }
}

/// getsockname(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_getsockname(fd, addr, len) }
}

/// getpeername(2)
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { api::quicsock_getpeername(fd, addr, len) }
}

/// shutdown(2)
#[no_mangle]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    api::quicsock_shutdown(fd, how)
}

/// close(2)
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    if !registry::is_quic(fd) {
        // SAFETY: passthrough.
        return unsafe { sys::close(fd) };
    }
    api::quicsock_close(fd)
}

/// A duplicate of a QUIC fd is a QUIC fd (same Unix socket, same service-side socket)
fn inherit(old: c_int, new: c_int) -> c_int {
    if new >= 0 && new != old {
        if registry::is_quic(old) {
            registry::mark(new);
        } else {
            registry::unmark(new);
        }
    }
    new
}

/// dup(2)
#[no_mangle]
pub extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: passthrough.
    inherit(fd, unsafe { sys::dup(fd) })
}

/// dup2(2): `new` is silently closed by the kernel; its QUIC mark follows `old`
#[no_mangle]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: passthrough.
    inherit(old, unsafe { sys::dup2(old, new) })
}

/// dup3(2)
#[no_mangle]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: passthrough.
    inherit(old, unsafe { sys::dup3(old, new, flags) })
}

/// fcntl(2), for F_DUPFD / F_DUPFD_CLOEXEC
///
/// C declares fcntl variadic; stable Rust can't define variadic functions. On the Linux
/// x86_64 and aarch64 ABIs the optional third argument arrives in the same register as a
/// fixed one, so it is taken as a `long` and passed on unchanged to libc's fcntl.
///
/// # Safety
/// libc's contract.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_long) -> c_int {
    // SAFETY: passthrough of the caller's arguments.
    let r = unsafe { sys::fcntl(fd, cmd, arg) };
    if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
        return inherit(fd, r);
    }
    r
}
