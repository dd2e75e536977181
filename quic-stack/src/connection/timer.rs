//! Connection timers: one enum and a fixed table; the earliest deadline is the connection's
//! `poll_timeout`

use std::time::Instant;

/// Every kind of deadline a connection tracks
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub(crate) enum Timer {
    /// Time-threshold loss detection or PTO (RFC 9002 §6)
    LossDetection = 0,
    /// Idle timeout (RFC 9000 §10.1)
    Idle = 1,
    /// End of the closing or draining period (RFC 9000 §10.2)
    Close = 2,
    /// Send a PING to keep the connection alive
    KeepAlive = 3,
    /// Pacing delay before the next packet may leave
    Pacing = 4,
    /// Delayed ACK deadline for the Data space (max_ack_delay)
    MaxAckDelay = 5,
    /// Give up on an outstanding PATH_CHALLENGE
    PathValidation = 6,
    /// Forget the previous 1-RTT key phase (RFC 9001 §6.5)
    KeyDiscard = 7,
    /// Resend an unanswered PATH_CHALLENGE (RFC 9000 §8.2.1)
    PathChallenge = 8,
    /// Client: resend or give up the probe of the server's preferred address (RFC 9000 §9.6)
    PreferredAddress = 9,
}

impl Timer {
    pub(crate) const ALL: [Self; 10] = [
        Self::LossDetection,
        Self::Idle,
        Self::Close,
        Self::KeepAlive,
        Self::Pacing,
        Self::MaxAckDelay,
        Self::PathValidation,
        Self::KeyDiscard,
        Self::PathChallenge,
        Self::PreferredAddress,
    ];
}

/// Deadlines indexed by [`Timer`]
#[derive(Debug, Default, Copy, Clone)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; 10],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, time: Instant) {
        self.data[timer as usize] = Some(time);
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    pub(crate) fn set_or_stop(&mut self, timer: Timer, time: Option<Instant>) {
        self.data[timer as usize] = time;
    }

    /// The earliest armed deadline
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// Disarm and return `timer` if it has expired at `now`
    pub(crate) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        match self.data[timer as usize] {
            Some(t) if t <= now => {
                self.data[timer as usize] = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn stop_all(&mut self) {
        self.data = [None; 10];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_and_expire() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Idle, now + Duration::from_secs(3));
        t.set(Timer::Pacing, now + Duration::from_secs(1));
        assert_eq!(t.next_timeout(), Some(now + Duration::from_secs(1)));
        assert!(!t.expire(Timer::Idle, now + Duration::from_secs(2)));
        assert!(t.expire(Timer::Pacing, now + Duration::from_secs(2)));
        assert_eq!(t.next_timeout(), Some(now + Duration::from_secs(3)));
    }
}
