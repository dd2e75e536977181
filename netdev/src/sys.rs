//! The only module of netdev with `unsafe`
//!
//! Everything else goes through safe wrappers (nix, tun-rs, rtnetlink). What remains here is the
//! `pre_exec` hook that moves a child process into a network namespace between fork and exec.

#![allow(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use nix::sched::{setns, CloneFlags};

/// Make `cmd` enter the network namespace behind `ns_fd` in the child, before exec
///
/// The closure owns a reference to the fd, so the namespace file stays open until `cmd` drops.
pub(crate) fn pre_exec_setns(cmd: &mut Command, ns_fd: Arc<OwnedFd>) {
    let hook = move || setns(ns_fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from);
    // SAFETY: `pre_exec` runs in the forked child before exec, where only async-signal-safe
    // operations are allowed. The hook performs a single setns(2) syscall on an fd inherited from
    // the parent and converts the errno into an io::Error (no allocation: `io::Error::from(Errno)`
    // stores the raw OS code inline). It takes no locks and touches no shared state.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// accept4(2) on a listening socket, returning an owned fd (nix 0.29 hands back a raw fd, and
/// turning that into an `OwnedFd` is the one unsafe step crates with `forbid(unsafe_code)` can't
/// take). The new fd is close-on-exec and non-blocking.
pub fn accept_owned(listener: &impl AsFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let fd = nix::sys::socket::accept4(
        listener.as_fd().as_raw_fd(),
        nix::sys::socket::SockFlag::SOCK_CLOEXEC | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
    )?;
    // SAFETY: accept4 just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
