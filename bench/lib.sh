# Sourced by the benchmark scripts: the tools each needs, a scratch
# directory and the processes it starts (both gone on exit), and waiting
# for `failgroup dev` to say it is ready.

# need TOOL...: exits 2 naming the first one not installed.
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 2; }
  done
}

# scratch NAME: sets DIR to a new directory and PIDS to none; on exit the
# processes in PIDS are killed and DIR removed.
scratch() {
  DIR="$(mktemp -d "/tmp/failgroup-$1.XXXXXX")"
  PIDS=()
  trap cleanup EXIT
}

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}

# ready OUT ERR: waits up to 10 s for `ready` in OUT (failgroup dev's
# output); exits 1 with ERR shown if it does not come.
ready() {
  for _ in $(seq 100); do grep -q '^ready' "$1" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$1" || { echo "error: failgroup dev did not start" >&2; cat "$2" >&2; exit 1; }
}
