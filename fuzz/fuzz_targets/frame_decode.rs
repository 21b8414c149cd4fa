//! The node-protocol frame decoder on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = failgroup::net::wire::decode(data, 1 << 20) {
        assert!(used >= 4 && used <= data.len());
    }
});
