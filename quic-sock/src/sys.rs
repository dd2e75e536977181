//! The real libc socket calls, found with dlsym(RTLD_NEXT)
//!
//! When this library is preloaded (or linked ahead of libc) its own `socket`, `close`, ...
//! shadow libc's, so a plain `libc::close` call from inside would come back to us. Every
//! call the library itself makes goes through these wrappers instead. If dlsym finds
//! nothing (static test binaries), the libc crate's binding is used: no interposer exists
//! then, so that binding is the real one.

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

macro_rules! real {
    ($(fn $name:ident($($arg:ident : $t:ty),*) -> $ret:ty;)*) => {$(
        /// The libc function of the same name
        ///
        /// # Safety
        /// Same contract as the libc function.
        #[allow(dead_code)] // some are used only by the preload exports
        pub(crate) unsafe fn $name($($arg: $t),*) -> $ret {
            static PTR: AtomicUsize = AtomicUsize::new(0);
            let mut p = PTR.load(Ordering::Relaxed);
            if p == 0 {
                // SAFETY: the name is a NUL-terminated literal; RTLD_NEXT is a valid handle.
                p = unsafe {
                    libc::dlsym(libc::RTLD_NEXT, concat!(stringify!($name), "\0").as_ptr().cast())
                } as usize;
                if p == 0 {
                    // SAFETY: forwarding the caller's arguments under the same contract.
                    return unsafe { libc::$name($($arg),*) };
                }
                PTR.store(p, Ordering::Relaxed);
            }
            // SAFETY: dlsym returned libc's symbol of this name, whose C signature is the one
            // declared here (the same as the libc crate's).
            let f: unsafe extern "C" fn($($t),*) -> $ret = unsafe { std::mem::transmute(p) };
            // SAFETY: forwarding the caller's arguments under the same contract.
            unsafe { f($($arg),*) }
        }
    )*};
}

real! {
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> ssize_t;
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t;
    fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t;
    fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_long) -> c_int;
}

/// The calling thread's errno
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Set the calling thread's errno
pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for writes.
    unsafe { *libc::__errno_location() = e };
}
