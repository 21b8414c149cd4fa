#!/usr/bin/env bash
# Steady-state benchmark, side by side in one run on this machine:
#   redis-server (persistence off), redis-server (appendonly yes,
#   appendfsync always), twemproxy (nutcracker) in front of two
#   redis-servers with auto_eject_hosts, and a failgroup cluster
#   (failgroup dev: 3 servers, SQLite with synchronous=FULL).
# The same redis-benchmark workloads (-c 50, -r 100000, -P 1 and -P 16) run
# against each; failgroup both through the keys' owner and through a
# non-owner (forwarded). Prints ops/s, p50 and p99, and failgroup/peer.
# Then GETs of keys with a time to live (SETEX 300) through the owner beside
# redis-server, with each one's hit ratio.
#
# Usage: bench/run.sh [REQUESTS]   (default 200000 per workload)
# Also writes $OUT/steady.csv (OUT defaults to bench/results).
# Needs: redis-server, redis-benchmark, nutcracker (Debian: redis-server,
# redis-tools, nutcracker).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
echo "system,test,P,ops_per_s,p50_ms,p99_ms" >"$OUT/steady.csv"
. bench/lib.sh
need redis-server redis-benchmark nutcracker
cargo build --release -p failgroup -q
FG=target/release/failgroup
scratch bench

redis() { # port, extra args...
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
    --dbfilename "dump-$port.rdb" --appendfilename "aof-$port.aof" --daemonize no "$@" >"$DIR/redis-$port.log" 2>&1 &
  PIDS+=($!)
}
redis 7600
redis 7601 --appendonly yes --appendfsync always
redis 7602
redis 7603
cat >"$DIR/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:7610
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  server_retry_timeout: 2000
  server_failure_limit: 1
  redis: true
  servers:
   - 127.0.0.1:7602:1
   - 127.0.0.1:7603:1
EOF
nutcracker -c "$DIR/nutcracker.yml" -o "$DIR/nutcracker.log" &
PIDS+=($!)
"$FG" dev --port 7620 --data "$DIR/fg" >"$DIR/dev.out" 2>"$DIR/dev.err" &
PIDS+=($!)
ready "$DIR/dev.out" "$DIR/dev.err"
for port in 7600 7601 7602 7603 7610; do
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# Keys {b}:N hash to slot 3300, owned by s1 (port 7621); s2 (7622) forwards.
run() { # port, pipeline, command... -> "rps p50 p99"
  local port=$1 p=$2; shift 2
  redis-benchmark -p "$port" -c 50 -n "$N" -r "${R:-100000}" -P "$p" --csv "$@" 2>/dev/null |
    awk -F, 'NR==2 { gsub(/"/, ""); print $2, $5, $7 }'
}
printf '%-28s %-4s %-3s %12s %9s %9s %14s\n' system test P ops/s p50_ms p99_ms failgroup/peer
declare -A RPS
for p in 1 16; do
  for t in SET GET; do
    args=(SET '{b}:__rand_int__' xxx)
    [ "$t" = GET ] && args=(GET '{b}:__rand_int__')
    for sys in redis:7600 redis-aof-always:7601 twemproxy:7610 failgroup-owner:7621 failgroup-forwarded:7622; do
      name=${sys%%:*}; port=${sys##*:}
      read -r rps p50 p99 < <(run "$port" "$p" "${args[@]}")
      RPS[$name-$t-$p]=$rps
      ratio=""
      case $name in
        failgroup-*)
          peer=redis; [ "$t" = SET ] && peer=redis-aof-always
          ratio=$(awk -v a="$rps" -v b="${RPS[$peer-$t-$p]}" -v c="${RPS[twemproxy-$t-$p]}" -v peer="$peer" \
            'BEGIN { printf "%.2fx %s, %.2fx twemproxy", a / b, peer, a / c }')
          ;;
      esac
      printf '%-28s %-4s %-3s %12s %9s %9s %s\n' "$name" "$t" "$p" "$rps" "$p50" "$p99" "$ratio"
      echo "$name,$t,$p,$rps,$p50,$p99" >>"$OUT/steady.csv"
    done
  done
done
# Keys with a time to live (SETEX 300 s, as Django's and Rails' caches
# write them), then GETs of them: failgroup serves them from memory. The
# hit ratio is keyspace_hits / (hits + misses) over the GETs, from INFO of
# the server that served them: redis-server's keyspace_hits/misses (keys
# found), failgroup's cache_hits/misses (served from memory, not the store).
stat() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'; }
for sys in redis:7600 failgroup-owner:7621; do
  name=${sys%%:*}; port=${sys##*:}
  # 10,000 keys, each set (N writes of random ones) before it is read.
  R=10000 run "$port" 16 SETEX '{b}:ttl:__rand_int__' 300 xxx >/dev/null
  for p in 1 16; do
    sec=stats hits=keyspace_hits misses=keyspace_misses
    [ "$name" = failgroup-owner ] && sec=failgroup hits=cache_hits misses=cache_misses
    h0=$(stat "$port" $sec $hits); m0=$(stat "$port" $sec $misses)
    read -r rps p50 p99 < <(R=10000 run "$port" "$p" GET '{b}:ttl:__rand_int__')
    h1=$(stat "$port" $sec $hits); m1=$(stat "$port" $sec $misses)
    hit=$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN { printf "%.3f", (h + m) ? h / (h + m) : 0 }')
    RPS[$name-GETTTL-$p]=$rps
    ratio="hit ratio $hit"
    [ "$name" = failgroup-owner ] && ratio=$(awk -v a="$rps" -v b="${RPS[redis-GETTTL-$p]}" -v h="$hit" \
      'BEGIN { printf "%.2fx redis, hit ratio %s", a / b, h }')
    printf '%-28s %-4s %-3s %12s %9s %9s %s\n' "$name" GET-TTL "$p" "$rps" "$p50" "$p99" "$ratio"
    echo "$name,GET-TTL,$p,$rps,$p50,$p99" >>"$OUT/steady.csv"
  done
done
echo "machine: $(nproc) cores, $(uname -sr); requests per workload: $N"
