//! The memory the process uses, as Redis reports it: `used_memory` is what
//! the allocator handed out and not yet got back (counted by [`Counting`],
//! the global allocator the `failgroup` binary installs, as Redis's
//! zmalloc counts), `used_memory_rss` what the kernel says is resident.
//! A library user that installs no counting allocator gets the resident
//! size for both.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting the bytes it has out.
pub struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only a
// counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        USED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            USED.fetch_add(new_size, Ordering::Relaxed);
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

impl Counting {
    /// Called once by the binary that installs it: from then on `used`
    /// reports the count.
    pub fn installed() {
        COUNTING.store(true, Ordering::Relaxed);
    }
}

/// Bytes allocated and not freed (the resident size where no counting
/// allocator is installed).
pub fn used() -> u64 {
    if COUNTING.load(Ordering::Relaxed) {
        USED.load(Ordering::Relaxed) as u64
    } else {
        rss()
    }
}

/// The resident set size, from `/proc/self/statm` (0 where there is none).
pub fn rss() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// Redis's human form of a size: `1.50M`, `512B`.
pub fn human(bytes: u64) -> String {
    let units = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (u, size) in units {
        if bytes >= size {
            return format!("{:.2}{u}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_redis_writes_them() {
        assert_eq!(super::human(512), "512B");
        assert_eq!(super::human(1536), "1.50K");
        assert_eq!(super::human(3 << 20), "3.00M");
        assert_eq!(super::human(5 << 30), "5.00G");
        assert!(super::rss() > 0 || !cfg!(target_os = "linux"));
    }
}
