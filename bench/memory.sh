#!/usr/bin/env bash
# Memory per cached key, failgroup beside redis-server, in one run: both are
# loaded with the same keys ({b}:N, 3-byte values) by redis-benchmark; the
# growth of the process's resident set is divided by the number of keys it
# then holds (DBSIZE; for failgroup the database's keys, every one of them
# cached by s1, which serves the slot of {b}).
#
# Usage: bench/memory.sh [KEYSPACE]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
R="${1:-1000000}"
. bench/lib.sh
need redis-server redis-benchmark redis-cli
cargo build --release -p failgroup -q
scratch mem
redis-server --port 7700 --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" --daemonize no >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
REDIS_PID=$!
target/release/failgroup dev --port 7720 --data "$DIR/fg" >"$DIR/dev.out" 2>"$DIR/dev.err" &
PIDS+=($!)
ready "$DIR/dev.out" "$DIR/dev.err"
FG_PID=$(awk '$1 == "server" && $2 == "s1" { print $5 }' "$DIR/dev.out")
for _ in $(seq 50); do redis-cli -p 7700 ping >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ { print $2 * 1024 }' "/proc/$1/status"; }
measure() { # name, port, pid
  local before after keys
  before=$(rss "$3")
  # Sequential keys (-r with a counter is random; two passes cover most).
  redis-benchmark -p "$2" -c 50 -n "$((R * 2))" -r "$R" -P 16 -q SET '{b}:__rand_int__' xxx >/dev/null 2>&1
  sleep 1
  after=$(rss "$3")
  keys=$(redis-cli -p "$2" dbsize)
  awk -v n="$1" -v b="$before" -v a="$after" -v k="$keys" \
    'BEGIN { printf "%-10s keys %9d  rss %7.1f MiB -> %7.1f MiB  %6.1f bytes/key\n", n, k, b / 1048576, a / 1048576, (a - b) / k }'
  echo "$(( (after - before) / keys ))" >"$DIR/$1.per"
}
measure redis 7700 "$REDIS_PID"
measure failgroup 7721 "$FG_PID"
awk -v f="$(cat "$DIR/failgroup.per")" -v r="$(cat "$DIR/redis.per")" 'BEGIN { printf "failgroup/redis: %.2fx bytes per key\n", f / r }'
