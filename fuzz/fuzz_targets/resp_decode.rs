//! The RESP request decoder on arbitrary bytes: no panic, progress, and
//! never more bytes claimed than given.
#![no_main]
use failgroup::resp::{decode, decode_reply, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_bulk: 1024, max_args: 64, max_inline: 1024 };
    let mut buf = data;
    while let Ok(Some((_, used))) = decode(buf, &limits) {
        assert!(used > 0 && used <= buf.len());
        buf = &buf[used..];
    }
    let _ = decode_reply(data);
});
