//! The store's write path alone: batches of fenced SETs through the
//! server's own SQLite store (`SqliteStore::run_batch`, the same code and
//! schema a server's store thread runs), one transaction and one fsync per
//! batch, at several batch sizes. It tells how many durable SETs a second
//! the engine itself allows, apart from the event loop and the network.
//!
//! With the `fjall` feature, the same rows through fjall (an LSM tree in
//! Rust) beside it: per SET the store's reads (the slot's right, the
//! request's dedupe record, the key's row) and writes (the row, the dedupe
//! record), one write batch and one `fsync` per batch. fjall allows one
//! process per directory, so it is measured as an engine, not as a store
//! the servers of a cluster could share.

use crate::load::Xorshift;
use failgroup::store::sqlite::{self, SqliteStore};
use failgroup::store::{BatchStore, Identity, Job};
use failgroup_model::{ClientId, Holder, Mode, ReqId, ServerId, Slot, StoreOp, StoreReply, StoreTag, Time, Write};
use std::time::{Duration, Instant};

pub struct Plan {
    /// Batch sizes to measure, each for `secs`.
    pub batches: Vec<usize>,
    pub secs: f64,
    /// Keys written (chosen at random), values of `value` bytes.
    pub keys: u64,
    pub value: usize,
}

pub fn run(plan: &Plan) -> Result<(), String> {
    if let Some(bad) = plan.batches.iter().find(|b| **b == 0) {
        return Err(format!("--batches: a batch size must be positive, not {bad}"));
    }
    let dir = std::env::temp_dir().join(format!("failgroup-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    println!(
        "# durable SETs, one transaction and fsync per batch, {} keys, {}-byte values, {} s per batch size",
        plan.keys, plan.value, plan.secs
    );
    println!("{:<8} {:>6} {:>12} {:>12} {:>12}", "engine", "batch", "SETs/s", "commits/s", "us/SET");
    let result = measure(plan, &dir.join("store.db"));
    #[cfg(feature = "fjall")]
    let result = result.and_then(|()| lsm::measure(plan, &dir.join("fjall")));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn row(engine: &str, size: usize, sets: u64, commits: u64, secs: f64) {
    println!(
        "{:<8} {:>6} {:>12.0} {:>12.0} {:>12.1}",
        engine,
        size,
        sets as f64 / secs,
        commits as f64 / secs,
        secs * 1e6 / sets as f64
    );
}

fn measure(plan: &Plan, path: &std::path::Path) -> Result<(), String> {
    let conn = sqlite::open(path).map_err(|e| e.to_string())?;
    let mut store = SqliteStore::new(conn);
    let me = Identity::new(Holder { server: ServerId(0), incarnation: 1 }, vec!["s1".into()], Mode::Linearizable);
    let slot = Slot(0);
    let acquire =
        (StoreTag::Acquire { sent: Time(0), more: false }, StoreOp::Acquire { slots: vec![(slot, None)], lease: 600 });
    let epoch = match store.run_batch(&me, &[acquire]).pop() {
        Some(StoreReply::Acquired { granted, .. }) if !granted.is_empty() => granted[0].1,
        other => return Err(format!("the store did not grant the right: {other:?}")),
    };
    let (mut rng, mut seq) = (Xorshift::new(0x9e37_79b9_7f4a_7c15), 0u64);
    let value = vec![b'x'; plan.value];
    for &size in &plan.batches {
        let (start, mut sets, mut commits) = (Instant::now(), 0u64, 0u64);
        while start.elapsed() < Duration::from_secs_f64(plan.secs) {
            let batch: Vec<Job> = (0..size)
                .map(|_| {
                    seq += 1;
                    let key = format!("{{b}}:{}", rng.next_u64() % plan.keys).into_bytes();
                    let req = ReqId { client: ClientId(1), seq };
                    let write = Write::Set(value.clone());
                    (StoreTag::Op(seq), StoreOp::Write { slot, fence: Some(epoch), req, key, write })
                })
                .collect();
            let replies = store.run_batch(&me, &batch);
            if let Some(bad) = replies.iter().find(|r| !matches!(r, StoreReply::Written { .. })) {
                return Err(format!("a SET was not written: {bad:?}"));
            }
            sets += size as u64;
            commits += 1;
        }
        row("sqlite", size, sets, commits, start.elapsed().as_secs_f64());
    }
    Ok(())
}

#[cfg(feature = "fjall")]
mod lsm {
    use super::{row, Plan};
    use crate::load::Xorshift;
    use fjall::{Config, PartitionCreateOptions, PersistMode};
    use std::time::{Duration, Instant};

    pub fn measure(plan: &Plan, path: &std::path::Path) -> Result<(), String> {
        let e = |e: fjall::Error| e.to_string();
        let ks = Config::new(path).open().map_err(e)?;
        let kv = ks.open_partition("kv", PartitionCreateOptions::default()).map_err(e)?;
        let applied = ks.open_partition("applied", PartitionCreateOptions::default()).map_err(e)?;
        let rights = ks.open_partition("rights", PartitionCreateOptions::default()).map_err(e)?;
        rights.insert(0u16.to_be_bytes(), b"s1 1 1 0 0").map_err(e)?;
        ks.persist(PersistMode::SyncAll).map_err(e)?;
        let (mut rng, mut seq, mut version) = (Xorshift::new(0x9e37_79b9_7f4a_7c15), 0u64, 0u64);
        let value = vec![b'x'; plan.value];
        for &size in &plan.batches {
            let (start, mut sets, mut commits) = (Instant::now(), 0u64, 0u64);
            while start.elapsed() < Duration::from_secs_f64(plan.secs) {
                let mut batch = ks.batch();
                for _ in 0..size {
                    seq += 1;
                    let key = format!("{{b}}:{}", rng.next_u64() % plan.keys).into_bytes();
                    let req = [1u64.to_be_bytes(), seq.to_be_bytes()].concat();
                    // The store's reads: the right, the dedupe record, the row.
                    if rights.get(0u16.to_be_bytes()).map_err(e)?.is_none() {
                        return Err("the right is gone".into());
                    }
                    if applied.get(&req).map_err(e)?.is_some() {
                        return Err("a request applied twice".into());
                    }
                    let _old = kv.get(&key).map_err(e)?;
                    version += 1;
                    let mut row = version.to_be_bytes().to_vec();
                    row.extend_from_slice(&value);
                    batch.insert(&kv, key, row);
                    batch.insert(&applied, req, b"+OK".as_slice());
                }
                batch.commit().map_err(e)?;
                ks.persist(PersistMode::SyncAll).map_err(e)?;
                sets += size as u64;
                commits += 1;
            }
            row("fjall", size, sets, commits, start.elapsed().as_secs_f64());
        }
        Ok(())
    }
}
