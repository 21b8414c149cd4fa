//! The node's clock.

use failgroup_model::Time;
use std::io;

/// The node's clock, in the core's milliseconds: CLOCK_BOOTTIME, which is
/// monotonic (it never steps) and, unlike CLOCK_MONOTONIC (what `Instant`
/// reads), keeps counting while the host is suspended. A holder suspended
/// past its lease thus sees the lease over when it wakes
/// (specs/properties.md, "Clocks").
#[derive(Clone, Copy, Debug)]
pub struct Clock(u64);

impl Clock {
    pub fn new() -> Clock {
        Clock(boottime_ms())
    }

    pub fn now(&self) -> Time {
        Time(boottime_ms().saturating_sub(self.0))
    }
}

fn boottime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_BOOTTIME
    // exists on every Linux since 2.6.39.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_BOOTTIME): {}", io::Error::last_os_error());
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
