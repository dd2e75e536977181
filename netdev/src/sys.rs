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
