# Shared by scripts/demo, scripts/test and scripts/bench. Source it; don't run it.

say() { printf '\033[1m%s:\033[0m %s\n' "$(basename "$0")" "$*"; }

# Builds the npm package into pkg/ (wasm-pack with the size-oriented `wasm-release`
# profile of Cargo.toml, ES module for the web), then shrinks its wasm.
build_package() {
  say "building the npm package into pkg/ (wasm-pack build --target web --profile wasm-release, wasm-opt)"
  wasm-pack --log-level warn build --target web --profile wasm-release --out-dir pkg
  shrink_wasm pkg/coffer_bg.wasm
  node scripts/merge-pkg-template.mjs
}

# Optimises a wasm file in place for size with wasm-opt from npm's `binaryen` (pinned
# in package.json; scripts/setup installs it). Not wasm-pack's own wasm-opt step (off
# in Cargo.toml): wasm-pack runs whatever wasm-opt is on PATH — Debian's binaryen 108
# breaks current Rust output — or downloads binaryen from GitHub, which this network
# refuses. The wasm features to allow come from the module's target_features section.
# -Oz also drops the name section (function names: ~130 KB raw, ~37 KB gzipped);
# -ocimfs 0 keeps binaryen from inlining functions into their only caller, which
# made the module 13 KB larger gzipped (bench/package.mjs measures the result).
shrink_wasm() {
  node_modules/.bin/wasm-opt -Oz -ocimfs 0 --strip-producers --strip-target-features "$1" -o "$1"
}

# A TCP port nobody is listening on.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts the accelerator in the background on a free port with a fresh data dir.
# With COFFER_TEST_BACKEND=postgres its records go to a fresh database (on the server
# scripts/postgres names) and its shards to a bucket on a moto server of its own.
# Sets ACCEL_PID, ACCEL_URL, ACCEL_DATA and ACCEL_STORED, the environment that tells
# the end-to-end tests where it keeps things (tests/e2e/browser.mjs: sharedStore);
# stop it with stop_accelerator, which also drops the database.
start_accelerator() {
  local port flags=()
  port=$(free_port)
  ACCEL_DATA=$(mktemp -d -t coffer-data.XXXXXX)
  ACCEL_URL="http://127.0.0.1:$port"
  ACCEL_STORED=(COFFER_DATA_DIR="$ACCEL_DATA")
  cargo build --quiet --release -p coffer-accelerator
  if [ "${COFFER_TEST_BACKEND:-}" = postgres ]; then
    ACCEL_DB_SERVER=$(scripts/postgres up)
    ACCEL_DB="coffer_e2e_$$"
    psql -X -q "$ACCEL_DB_SERVER" -c "CREATE DATABASE $ACCEL_DB"
    eval "$(scripts/s3 up)"
    curl -fsS -X PUT "$AWS_ENDPOINT_URL/coffer-e2e" >/dev/null
    flags=(--database "${ACCEL_DB_SERVER%/*}/$ACCEL_DB" --shards s3://coffer-e2e)
    ACCEL_STORED=(COFFER_STORED_DATABASE="${ACCEL_DB_SERVER%/*}/$ACCEL_DB" COFFER_STORED_BUCKET=coffer-e2e)
  fi
  target/release/accelerator --port "$port" --data-dir "$ACCEL_DATA" --www-dir www --pkg-dir pkg "${flags[@]}" "$@" \
    >"$ACCEL_DATA.log" 2>&1 &
  ACCEL_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$ACCEL_URL/v1/health" >/dev/null 2>&1; then
      say "accelerator up at $ACCEL_URL (${flags[*]:-data in $ACCEL_DATA})"
      return 0
    fi
    if ! kill -0 "$ACCEL_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  say "the accelerator did not start; its log:"
  cat "$ACCEL_DATA.log" >&2
  return 1
}

# Stops it and removes its data dir and log (KEEP_DATA=1 keeps them for a
# post-mortem), its database and its S3 server.
stop_accelerator() {
  if [ -n "${ACCEL_PID:-}" ] && kill -0 "$ACCEL_PID" 2>/dev/null; then
    kill -TERM "$ACCEL_PID" 2>/dev/null || true
    wait "$ACCEL_PID" 2>/dev/null || true
  fi
  ACCEL_PID=
  if [ -n "${ACCEL_DATA:-}" ] && [ -z "${KEEP_DATA:-}" ]; then
    rm -rf "$ACCEL_DATA" "$ACCEL_DATA.log"
  fi
  if [ -n "${ACCEL_DB:-}" ]; then
    scripts/s3 down
    psql -X -q "$ACCEL_DB_SERVER" -c "DROP DATABASE IF EXISTS $ACCEL_DB WITH (FORCE)" || true
    ACCEL_DB=
  fi
}

# Chromium leaves ~17 MB profile folders in /tmp for every run; remove ours.
chromium_tmp_snapshot() { ls -d /tmp/org.chromium.Chromium.* /tmp/.org.chromium.Chromium.* 2>/dev/null | sort || true; }
chromium_tmp_cleanup() {
  local before=$1
  comm -13 <(printf '%s\n' "$before") <(chromium_tmp_snapshot) | while read -r dir; do
    [ -n "$dir" ] && rm -rf "$dir"
  done
}

# Runs the browser tests (wasm-pack test --headless --chrome, tests/*.rs) against
# $ACCEL_URL. The SDK ships its JavaScript as one module (src/browser.js): with one
# snippet module per helper, wasm-bindgen-test's little server left a test page's
# seventh concurrent module request unanswered about one load in three here.
browser_tests() {
  COFFER_TEST_URL="$ACCEL_URL" wasm-pack --log-level warn test --headless --chrome
}
