#!/usr/bin/env bash
# Every benchmark table and plot of docs/BENCHMARKS.md, in one run:
#   bench/run.sh      steady state vs redis-server and twemproxy (steady.csv)
#   bench/memory.sh   RSS per cached key vs redis-server
#   bench/zipf.sh     hit ratio under Zipf reads, maxmemory, vs redis-server
#   failgroup-bench store      durable SETs through the store alone: SQLite vs fjall
#   failgroup-bench failover   the failover window (failover-*.csv, summary), and a
#                              rolling restart of every server (rolling-*.csv, summary)
#   failgroup-bench plot       failover.svg and steady.svg
#   failgroup check            the model checker's speed (two configurations)
# Results go to $OUT (default docs/bench, which docs/BENCHMARKS.md shows). Usage: bench/all.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-docs/bench}"
mkdir -p "$OUT"
# The store benchmark's fjall rows (zipf.sh builds the bench with these too).
export BENCH_FEATURES=failgroup-bench/fjall
cargo build --release -p failgroup -p failgroup-bench --features "$BENCH_FEATURES" -q
bench/run.sh "${1:-200000}" | tee "$OUT/steady.txt"
bench/memory.sh | tee "$OUT/memory.txt"
bench/zipf.sh | tee "$OUT/zipf.txt"
target/release/failgroup-bench store | tee "$OUT/store.txt"
target/release/failgroup-bench failover --out "$OUT"
target/release/failgroup-bench failover --scenario rolling-restart --secs 20 --out "$OUT"
target/release/failgroup-bench plot --out "$OUT"
{
  echo "# model checker: unique states, time, states/s (one thread)"
  for flags in "" "--threads 2"; do
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    line=$(target/release/failgroup check $flags | tail -1)
    end=$(date +%s.%N)
    states=$(echo "$line" | sed -n 's/^unique states \([0-9]*\),.*/\1/p')
    awk -v f="${flags:-defaults}" -v s="$states" -v a="$start" -v b="$end" -v l="$line" \
      'BEGIN { t = b - a; printf "%-28s %10d states %7.1f s %8.0f states/s  | %s\n", f, s, t, s / t, l }'
  done
} | tee "$OUT/checker.txt"
