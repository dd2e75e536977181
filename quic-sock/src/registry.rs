//! Which fds are QUIC sockets, and per-fd serialisation of request/response exchanges
//!
//! The check runs on every intercepted call (read/write/close of any fd under LD_PRELOAD),
//! so it is a lock-free bitmap for fds below 65536, with a mutex-guarded set beyond.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

const WORDS: usize = 1024;
const BITMAP_FDS: usize = WORDS * 64;
static BITS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
static OVERFLOW: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
const STRIPES: usize = 64;
static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::new(()) }; STRIPES];
static SEQ: AtomicU32 = AtomicU32::new(1);

fn slot(fd: i32) -> Option<(usize, u64)> {
    let fd = usize::try_from(fd).ok()?;
    (fd < BITMAP_FDS).then(|| (fd / 64, 1u64 << (fd % 64)))
}

fn overflow() -> MutexGuard<'static, BTreeSet<i32>> {
    // A panic while holding this lock can't leave the set inconsistent; ignore poisoning.
    OVERFLOW.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remember `fd` as a QUIC socket
pub(crate) fn mark(fd: i32) {
    match slot(fd) {
        Some((w, b)) => {
            BITS[w].fetch_or(b, Ordering::AcqRel);
        }
        None => {
            overflow().insert(fd);
        }
    }
}

/// Forget `fd` (closed)
pub(crate) fn unmark(fd: i32) {
    match slot(fd) {
        Some((w, b)) => {
            BITS[w].fetch_and(!b, Ordering::AcqRel);
        }
        None => {
            overflow().remove(&fd);
        }
    }
}

/// Whether `fd` is a QUIC socket of ours
pub(crate) fn is_quic(fd: i32) -> bool {
    if fd < 0 {
        return false;
    }
    match slot(fd) {
        Some((w, b)) => BITS[w].load(Ordering::Acquire) & b != 0,
        None => overflow().contains(&fd),
    }
}

/// Serialise exchanges on one fd (threads sharing a socket must not interleave responses)
pub(crate) fn lock(fd: i32) -> MutexGuard<'static, ()> {
    let i = usize::try_from(fd).unwrap_or(0) % STRIPES;
    LOCKS[i].lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh non-zero sequence number (0 is reserved for unsolicited messages)
pub(crate) fn next_seq() -> u32 {
    loop {
        let s = SEQ.fetch_add(1, Ordering::Relaxed);
        if s != 0 {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_unmark() {
        for fd in [3, 63, 64, 65535, 65536, 1 << 20] {
            assert!(!is_quic(fd));
            mark(fd);
            assert!(is_quic(fd));
            unmark(fd);
            assert!(!is_quic(fd));
        }
        assert!(!is_quic(-1));
        assert_ne!(next_seq(), 0);
    }
}
