#!/usr/bin/env bash
# The builds with the declared minimum Rust version and for macOS
# (tests/scripts/toolchains.sh), then every test, on both stores: `cargo test --workspace` (SQLite, plus the
# PostgreSQL unit tests and the cluster across hosts), then the end-to-end
# suites again with every cluster on PostgreSQL. A throwaway PostgreSQL
# (tests/scripts/postgres.sh) runs on 127.0.0.1:55432 meanwhile and is
# stopped at the end. Without PostgreSQL installed, only the SQLite run
# happens, and it says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
# First the declared minimum Rust version and the macOS build.
tests/scripts/toolchains.sh
# One build of everything the tests run, before PostgreSQL starts: the
# end-to-end tests start the `failgroup` binary, which `cargo test` builds
# (with the test profile) for the workspace's tests.
cargo test --workspace --no-run
if ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  PGDIR="$(mktemp -d /tmp/failgroup-pg.XXXXXX)/data"
  chmod 755 "$(dirname "$PGDIR")" # the server runs as the postgres user
  trap 'tests/scripts/postgres.sh stop "$PGDIR" || true; rm -rf "$(dirname "$PGDIR")"' EXIT
  FAILGROUP_TEST_PG="$(tests/scripts/postgres.sh start "$PGDIR" 55432)"
  export FAILGROUP_TEST_PG FAILGROUP_REQUIRE_PG=1
  echo "PostgreSQL for the tests: $FAILGROUP_TEST_PG"
  cargo test --workspace
  echo "The end-to-end suites again, on PostgreSQL:"
  FAILGROUP_TEST_STORE=postgres cargo test -p failgroup-tests \
    --test resp_conformance --test redis_differential --test runtime_failover --test bad_input --test fault_suite
else
  echo "note: PostgreSQL is not installed: running on SQLite only (apt-get install postgresql for both)"
  cargo test --workspace
fi
