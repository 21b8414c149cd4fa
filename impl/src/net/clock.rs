//! The node's clock.

use failgroup_model::Time;
use std::io;

/// The node's clock, in the core's milliseconds: on Linux CLOCK_BOOTTIME,
/// which is monotonic (it never steps) and, unlike Linux's CLOCK_MONOTONIC
/// (what `Instant` reads), keeps counting while the host is suspended. A
/// holder suspended past its lease thus sees the lease over when it wakes
/// (specs/properties.md, "Clocks"). Elsewhere CLOCK_MONOTONIC, which on
/// macOS counts suspended time too (it is `mach_continuous_time`).
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

/// The clock read: one that counts while the host is suspended.
#[cfg(target_os = "linux")]
const CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
#[cfg(not(target_os = "linux"))]
const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

fn boottime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_BOOTTIME
    // exists on every Linux since 2.6.39, CLOCK_MONOTONIC on every Unix.
    let r = unsafe { libc::clock_gettime(CLOCK, &mut ts) };
    assert_eq!(r, 0, "clock_gettime: {}", io::Error::last_os_error());
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
