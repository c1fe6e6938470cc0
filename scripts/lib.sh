# Shared by scripts/demo, scripts/test and scripts/bench. Source it; don't run it.

say() { printf '\033[1m%s:\033[0m %s\n' "$(basename "$0")" "$*"; }

# Builds the npm package into pkg/ (wasm-pack, release, ES module for the web).
build_package() {
  say "building the npm package into pkg/ (wasm-pack build --target web)"
  wasm-pack --log-level warn build --target web --release --out-dir pkg
  node scripts/merge-pkg-template.mjs
}

# A TCP port nobody is listening on.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts the accelerator in the background on a free port with a fresh data dir.
# Sets ACCEL_PID, ACCEL_URL and ACCEL_DATA; stop it with stop_accelerator.
start_accelerator() {
  local port
  port=$(free_port)
  ACCEL_DATA=$(mktemp -d -t coffer-data.XXXXXX)
  ACCEL_URL="http://127.0.0.1:$port"
  cargo build --quiet --release -p coffer-accelerator
  target/release/accelerator --port "$port" --data-dir "$ACCEL_DATA" --www-dir www --pkg-dir pkg "$@" \
    >"$ACCEL_DATA.log" 2>&1 &
  ACCEL_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$ACCEL_URL/v1/health" >/dev/null 2>&1; then
      say "accelerator up at $ACCEL_URL (data in $ACCEL_DATA)"
      return 0
    fi
    if ! kill -0 "$ACCEL_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  say "the accelerator did not start; its log:"
  cat "$ACCEL_DATA.log" >&2
  return 1
}

# Stops it and removes its data dir and log (KEEP_DATA=1 keeps them for a post-mortem).
stop_accelerator() {
  if [ -n "${ACCEL_PID:-}" ] && kill -0 "$ACCEL_PID" 2>/dev/null; then
    kill -TERM "$ACCEL_PID" 2>/dev/null || true
    wait "$ACCEL_PID" 2>/dev/null || true
  fi
  ACCEL_PID=
  if [ -n "${ACCEL_DATA:-}" ] && [ -z "${KEEP_DATA:-}" ]; then
    rm -rf "$ACCEL_DATA" "$ACCEL_DATA.log"
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
