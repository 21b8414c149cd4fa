#!/usr/bin/env bash
# Hit ratio under Zipf-distributed reads (skew 0.99) over a key space ten
# times the cache, side by side: redis-server (cache-aside, maxmemory and
# allkeys-lru) and one failgroup server (SQLite, the same room and policy).
# Usage: bench/zipf.sh [KEYS] [READS]   (defaults 100000 500000)
# Needs: redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${1:-100000}"
READS="${2:-500000}"
. bench/lib.sh
need redis-server redis-cli
cargo build --release -p failgroup -p failgroup-bench ${BENCH_FEATURES:+--features "$BENCH_FEATURES"} -q
scratch zipf
redis-server --port 7700 --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" --daemonize no >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
target/release/failgroup dev --port 7710 --servers 1 --data "$DIR/fg" >"$DIR/dev.out" 2>"$DIR/dev.err" &
PIDS+=($!)
ready "$DIR/dev.out" "$DIR/dev.err"
for _ in $(seq 50); do redis-cli -p 7700 ping >/dev/null 2>&1 && break; sleep 0.1; done
target/release/failgroup-bench zipf --redis 127.0.0.1:7700 --failgroup 127.0.0.1:7711 --keys "$KEYS" --reads "$READS"
