#!/usr/bin/env bash
# Every benchmark table and plot of docs/BENCHMARKS.md, in one run:
#   bench/run.sh      steady state vs redis-server and twemproxy (steady.csv)
#   bench/memory.sh   RSS per cached key vs redis-server
#   failgroup-bench failover   the failover window (failover-*.csv, summary)
#   failgroup-bench plot       failover.svg and steady.svg
# Results go to $OUT (default docs/bench, which docs/BENCHMARKS.md shows). Usage: bench/all.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-docs/bench}"
mkdir -p "$OUT"
cargo build --release -p failgroup -p failgroup-bench -q
bench/run.sh "${1:-200000}" | tee "$OUT/steady.txt"
bench/memory.sh | tee "$OUT/memory.txt"
target/release/failgroup-bench failover --out "$OUT"
target/release/failgroup-bench plot --out "$OUT"
