//! Named network namespaces, compatible with `ip netns`
//!
//! A namespace created here is bind-mounted at `/run/netns/<name>`, exactly like `ip netns add`,
//! so `ip netns exec <name> ...` and `ip -n <name> ...` see it. Entering one is scoped: the
//! calling thread never changes namespace; [`NetNs::run_in`] runs a closure on a fresh thread that
//! joined the namespace (a socket or tokio runtime created there lives there), and
//! [`NetNs::spawn_command`] starts a child process inside it.
//!
//! The standard trick for a tunnel: create the TUN inside one namespace through `run_in` while
//! the UDP socket is opened in the caller's namespace; the device stays in the namespace it was
//! created in.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Arc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where `ip netns` keeps its namespace mount points
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Network namespace operation failures
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetNsError {
    /// The name is empty, too long, or contains `/` or NUL, or is `.`/`..`
    #[error("invalid network namespace name {0:?}")]
    InvalidName(String),
    /// A namespace of that name already exists
    #[error(
        "network namespace {0:?} already exists: choose another name or delete it (ip netns del)"
    )]
    Exists(String),
    /// No namespace of that name
    #[error("network namespace {0:?} does not exist")]
    NotFound(String),
    /// The process lacks CAP_SYS_ADMIN
    #[error("{op}: permission denied: run as root or grant CAP_SYS_ADMIN")]
    PermissionDenied {
        /// What was attempted
        op: &'static str,
    },
    /// Any other system call failure
    #[error("{op} failed: {source}")]
    Sys {
        /// What was attempted
        op: &'static str,
        /// The OS error
        #[source]
        source: io::Error,
    },
    /// The helper thread panicked before it could report
    #[error("namespace helper thread panicked")]
    ThreadPanicked,
}

impl NetNsError {
    fn sys(op: &'static str, source: impl Into<io::Error>) -> Self {
        let source = source.into();
        if source.kind() == io::ErrorKind::PermissionDenied {
            Self::PermissionDenied { op }
        } else {
            Self::Sys { op, source }
        }
    }
}

/// A named network namespace held open by fd
#[derive(Debug)]
pub struct NetNs {
    name: String,
    path: PathBuf,
    // Arc so a spawned Command's pre_exec hook can keep the fd alive on its own.
    fd: Arc<OwnedFd>,
}

impl NetNs {
    /// Create `name` like `ip netns add`: a new namespace bind-mounted at /run/netns/<name>
    pub fn create(name: &str) -> Result<Self, NetNsError> {
        validate_name(name)?;
        prepare_run_dir()?;
        let path = Path::new(NETNS_RUN_DIR).join(name);
        // create_new: fail rather than mount over a namespace someone else owns.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => NetNsError::Exists(name.to_owned()),
                _ => NetNsError::sys("create mount point", e),
            })?;
        // unshare(CLONE_NEWNET) changes the namespace of the calling thread only, so do it on a
        // throwaway thread; the bind mount keeps the namespace alive after that thread exits.
        let target = path.clone();
        let made = std::thread::scope(|s| {
            s.spawn(move || -> Result<(), NetNsError> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetNsError::sys("unshare", e))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| NetNsError::sys("bind-mount namespace", e))
            })
            .join()
            .unwrap_or(Err(NetNsError::ThreadPanicked))
        });
        if let Err(e) = made {
            // Leave nothing half-made behind.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Self::open(name)
    }

    /// Open an existing namespace from /run/netns/<name>
    pub fn open(name: &str) -> Result<Self, NetNsError> {
        validate_name(name)?;
        let path = Path::new(NETNS_RUN_DIR).join(name);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => NetNsError::NotFound(name.to_owned()),
            _ => NetNsError::sys("open namespace", e),
        })?;
        Ok(Self {
            name: name.to_owned(),
            path,
            fd: Arc::new(OwnedFd::from(file)),
        })
    }

    /// Namespace name
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace fd, e.g. for moving a link into it with netlink
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Remove the name like `ip netns del`; the namespace dies when its last user goes
    pub fn delete(self) -> Result<(), NetNsError> {
        delete_path(&self.path)
    }

    /// Wrap in a guard that deletes the namespace when dropped
    pub fn into_guard(self) -> NetNsGuard {
        NetNsGuard(Some(self))
    }

    /// Run `f` on a scoped thread that joined this namespace; returns what `f` returns
    ///
    /// Sockets, TUN devices and tokio runtimes created inside `f` belong to this namespace. A
    /// panic in `f` is propagated to the caller.
    pub fn run_in<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, NetNsError> {
        let fd = self.fd.as_fd();
        std::thread::scope(|s| {
            let joined = s
                .spawn(move || -> Result<R, NetNsError> {
                    setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| NetNsError::sys("setns", e))?;
                    Ok(f())
                })
                .join();
            match joined {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Make `cmd` run inside this namespace when spawned (sets a pre_exec hook)
    pub fn prepare_command(&self, cmd: &mut Command) {
        crate::sys::pre_exec_setns(cmd, Arc::clone(&self.fd));
    }

    /// Spawn `cmd` inside this namespace
    pub fn spawn_command(&self, cmd: &mut Command) -> io::Result<Child> {
        self.prepare_command(cmd);
        cmd.spawn()
    }

    /// Run `cmd` inside this namespace to completion, collecting its output
    pub fn output(&self, cmd: &mut Command) -> io::Result<Output> {
        self.prepare_command(cmd);
        cmd.output()
    }
}

/// Deletes its namespace on drop (also during a panic), so tests never leak namespaces
#[derive(Debug)]
pub struct NetNsGuard(Option<NetNs>);

impl NetNsGuard {
    /// Delete now and report the result instead of logging it on drop
    pub fn delete(mut self) -> Result<(), NetNsError> {
        match self.0.take() {
            Some(ns) => ns.delete(),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for NetNsGuard {
    type Target = NetNs;

    fn deref(&self) -> &NetNs {
        // Only `delete(self)` takes the namespace out, and it consumes the guard.
        match &self.0 {
            Some(ns) => ns,
            None => unreachable!("NetNsGuard used after delete"),
        }
    }
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        if let Some(ns) = self.0.take() {
            let name = ns.name.clone();
            if let Err(e) = ns.delete() {
                tracing::warn!("deleting network namespace {name}: {e}");
            }
        }
    }
}

fn validate_name(name: &str) -> Result<(), NetNsError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\0']);
    if bad {
        return Err(NetNsError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Make /run/netns exist and be a shared mount, as iproute2 does, so namespace mounts made here
/// propagate into mount namespaces created later (e.g. by `ip netns exec`)
fn prepare_run_dir() -> Result<(), NetNsError> {
    std::fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| NetNsError::sys("mkdir /run/netns", e))?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    if shared().is_ok() {
        return Ok(());
    }
    // EINVAL: not a mount point yet; bind it onto itself first (iproute2 does the same).
    mount(
        Some(NETNS_RUN_DIR),
        NETNS_RUN_DIR,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| NetNsError::sys("bind /run/netns", e))?;
    shared().map_err(|e| NetNsError::sys("make /run/netns shared", e))
}

fn delete_path(path: &Path) -> Result<(), NetNsError> {
    // MNT_DETACH: succeed even while processes still hold the namespace, as `ip netns del` does.
    if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL means not mounted (a half-made namespace); still remove the file.
        if e != nix::errno::Errno::EINVAL {
            return Err(NetNsError::sys("unmount namespace", e));
        }
    }
    std::fs::remove_file(path).map_err(|e| NetNsError::sys("remove mount point", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert!(matches!(
                NetNs::create(bad),
                Err(NetNsError::InvalidName(_))
            ));
        }
        assert!(matches!(
            NetNs::open("qtnd-definitely-missing-ns"),
            Err(NetNsError::NotFound(_))
        ));
    }
}
