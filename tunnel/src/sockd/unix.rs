//! Async `AF_UNIX` `SOCK_SEQPACKET` sockets over tokio's `AsyncFd`
//!
//! tokio has no SEQPACKET type and `std::os::unix::net` only does STREAM/DGRAM, so this wraps a
//! non-blocking fd with nix's safe calls. Message boundaries are what the protocol relies on:
//! one `recv` is one request, whatever its size.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A listening SEQPACKET socket
pub struct SeqListener {
    fd: AsyncFd<OwnedFd>,
}

impl SeqListener {
    /// Listen on an abstract name (no leading NUL) or a filesystem path (leading `/`)
    pub fn bind(name: &str) -> io::Result<Self> {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let addr = if name.starts_with('/') {
            UnixAddr::new(name)?
        } else {
            UnixAddr::new_abstract(name.as_bytes())?
        };
        socket::bind(fd.as_raw_fd(), &addr)?;
        socket::listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
        // tokio deprecates the safe constructors because a caller could close a borrowed fd
        // while registered; here the AsyncFd owns the OwnedFd, so that cannot happen.
        #[allow(deprecated)]
        Ok(Self {
            fd: AsyncFd::with_interest(fd, Interest::READABLE)?,
        })
    }

    /// The next client connection
    pub async fn accept(&self) -> io::Result<SeqPacket> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| netdev::accept_owned(fd.get_ref())) {
                Ok(r) => return SeqPacket::new(r?),
                Err(_would_block) => continue,
            }
        }
    }
}

/// One connected SEQPACKET socket
pub struct SeqPacket {
    fd: AsyncFd<OwnedFd>,
}

impl SeqPacket {
    /// Wrap a connected socket (made non-blocking here)
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let fl = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
        // See `SeqListener::bind`: the AsyncFd owns the fd.
        #[allow(deprecated)]
        Ok(Self {
            fd: AsyncFd::new(fd)?,
        })
    }

    /// A connected pair: one end for the service, one to pass to the application
    pub fn pair() -> io::Result<(Self, OwnedFd)> {
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Self::new(ours)?, theirs))
    }

    /// The uid of the process at the other end (SO_PEERCRED)
    pub fn peer_uid(&self) -> Option<u32> {
        socket::getsockopt(self.fd.get_ref(), socket::sockopt::PeerCredentials)
            .ok()
            .map(|c| c.uid())
    }

    /// Receive one message; `Ok(0)` is EOF. A message longer than `buf` comes back cut, with
    /// `Ok(buf.len())`, so callers size `buf` one byte above the largest valid message.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                socket::recv(fd.get_ref().as_raw_fd(), buf, MsgFlags::empty()).map_err(Into::into)
            }) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Send one message made of `parts`, optionally passing `fd` with SCM_RIGHTS
    pub async fn send(&self, parts: &[&[u8]], pass: Option<&OwnedFd>) -> io::Result<()> {
        let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let fds = pass.map(|f| [f.as_fd().as_raw_fd()]);
        let cmsgs: Vec<ControlMessage<'_>> = fds
            .as_ref()
            .map(|f| vec![ControlMessage::ScmRights(f)])
            .unwrap_or_default();
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                socket::sendmsg::<()>(
                    fd.get_ref().as_raw_fd(),
                    &iov,
                    &cmsgs,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(Into::into)
            }) {
                Ok(r) => return r.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}
