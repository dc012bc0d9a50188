//! The controllers' source of "now", injectable so that tests can drive schedules,
//! deadlines and TTLs deterministically: [`SystemClock`] in production, [`FakeClock`]
//! in tests.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;

/// Tells the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<Timestamp>,
}

impl FakeClock {
    /// A clock stopped at `now`.
    pub fn new(now: Timestamp) -> Self {
        FakeClock {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        *self.now.lock() = now;
    }

    /// Moves the time by `by` (saturating at the representable range).
    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.now.lock();
        *now = now.saturating_add(by).unwrap_or(*now);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.now.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let c = FakeClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(SignedDuration::from_secs(90));
        assert_eq!(c.now(), Timestamp::from_second(1_700_000_090).unwrap());
        c.set(t0);
        assert_eq!(c.now(), t0);
        assert!(SystemClock.now() > t0);
    }
}
