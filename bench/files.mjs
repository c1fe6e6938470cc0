// Files benchmark: the per-chunk stages in wasm beside WebCrypto and native, then
// writeFile / readFile beside plain fetch of the same bytes to the same accelerator,
// wasm memory while a large file moves, and long tasks on the page's main thread.
// Prints tables and writes them to target/bench/files.md. Asserts nothing.
//
//   COFFER_URL=http://127.0.0.1:PORT node bench/files.mjs      (scripts/bench sets it)
//
// Each phase runs in a fresh headless Chromium with no DevTools client attached
// (bench/lib.mjs runBare): with Playwright's DevTools session on the page (its
// Network domain reports request bodies), 1 MiB ArrayBuffer uploads ran at 22 MB/s
// here against 193 MB/s without it, with long tasks to match.
// The page, bench/files-page.js, is served by the accelerator itself, so it runs on
// the accelerator's origin. Needs an accelerator started with --bench-endpoints,
// pkg/ (the shipped package) at /pkg/, target/bench-www/ at / (bench/files.html,
// bench/files-page.js and bench-pkg/, the SDK built with its `bench` feature), and
// target/bench/native.json (crates/core/examples/bench_native.rs) — scripts/bench
// prepares all of it. Sizes and repetitions come from the environment:
//
//   BENCH_SIZES_MIB=64,256   files written and read end to end
//   BENCH_RUNS=3             runs of each (medians)
//   BENCH_STAGE_RUNS=9       runs of each per-chunk stage (medians)
//   BENCH_BIG_MIB=1024       the file whose wasm memory is sampled (0 skips it)
//   BENCH_CONCURRENCY=6      requests in flight for the plain-fetch floors
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { acceleratorUrl, cpuByRole, report, runBare, table } from "./lib.mjs";

const url = acceleratorUrl();
const env = (name, fallback) => process.env[name] ?? fallback;
const SIZES_MIB = env("BENCH_SIZES_MIB", "64,256").split(",").map(Number).filter((n) => n > 0);
const RUNS = Number(env("BENCH_RUNS", 3));
const STAGE_RUNS = Number(env("BENCH_STAGE_RUNS", 9));
const BIG_MIB = Number(env("BENCH_BIG_MIB", 1024));
const CONCURRENCY = Number(env("BENCH_CONCURRENCY", 6));
const native = JSON.parse(readFileSync(env("BENCH_NATIVE_JSON", "target/bench/native.json"), "utf8"));
const MIB = 1024 * 1024;
const log = (message) => console.error(`files: ${message}`);

const ACCEL_PID = Number(env("ACCEL_PID", 0)); // for CPU accounting; scripts/bench sets it

// CPU milliseconds by role over each measured operation ("<MiB> <op>"), summed
// over its runs: the page marks the start and end, this reads /proc in between.
const cpu = new Map();
const started = new Map();
function onMark(text, browserPid) {
  const [what, ...rest] = text.split(" ");
  const name = rest.join(" ");
  const now = cpuByRole(browserPid, ACCEL_PID);
  if (what === "start") return void started.set(name, now);
  const before = started.get(name);
  const sum = cpu.get(name) ?? { runs: 0 };
  for (const role of Object.keys(now)) sum[role] = (sum[role] ?? 0) + now[role] - before[role];
  sum.runs += 1;
  cpu.set(name, sum);
}

/** Runs one phase of bench/files-page.js in a fresh, bare headless Chromium. */
function phase(name, params) {
  const page = new URL(`${url}/files.html`);
  page.searchParams.set("p", JSON.stringify({ phase: name, url, ...params }));
  return runBare(page.href, { log, onMark });
}

const account = { username: `bench-${Date.now().toString(36)}`, password: "bench password" };
log("per-chunk stages");
const stage = await phase("stages", { runs: STAGE_RUNS });
log("writeFile / readFile against plain fetch");
const e2e = await phase("e2e", { account, sizesMib: SIZES_MIB, runs: RUNS, concurrency: CONCURRENCY });
log("writeFile / readFile inline (no workers), the largest size");
const inline = await phase("e2e", { account: { ...account, username: `${account.username}-inline` }, sizesMib: [Math.max(...SIZES_MIB)], runs: RUNS, concurrency: CONCURRENCY, inline: true });
let mem;
if (BIG_MIB > 0) {
  log(`wasm memory: writing ${BIG_MIB} MiB`);
  const write = await phase("bigWrite", { account, spaceId: e2e.spaceId, mib: BIG_MIB });
  log(`wasm memory: reading ${BIG_MIB} MiB`);
  const read = await phase("bigRead", { account, spaceId: e2e.spaceId, mib: BIG_MIB, manifest: write.manifest, id: write.id });
  mem = { write, read };
}

// ---------------------------------------------------------------------------------
// Tables.
const MB = 1e6;
const mbps = (bytes, ms) => bytes / MB / (ms / 1000);
const f0 = (x) => (x == null ? "–" : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const x2 = (a, b) => (a == null || b == null ? "–" : `${(a / b).toFixed(2)}×`);

const stageRows = [
  ["seal (AES-256-GCM)", "seal", "seal", "seal", "plainBytes", "4 MiB plaintext"],
  ["open (AES-256-GCM)", "open", "open", "open", "sealedBytes", "4 MiB seal"],
  ["erasure encode 4 + 2", "encode", null, "encode", "sealedBytes", "4 MiB seal"],
  ["BLAKE3 of the 6 shards", "hash", null, "hash", "shardBytes", "6 MiB shards"],
  ["**write pipeline**: seal → encode → address", "pipeline", "pipeline", "pipeline", "plainBytes", "4 MiB plaintext"],
  ["check + join 4 data shards", "rebuild", null, "rebuild", "sealedBytes", "4 MiB seal"],
  ["**read pipeline**: check → join → open", "readPipeline", "readPipeline", "readPipeline", "plainBytes", "4 MiB plaintext"],
].map(([name, w, web, nat, bytesKey, what]) => {
  const bytes = stage[bytesKey];
  const a = mbps(bytes, stage.wasm[w]);
  const b = web ? mbps(bytes, stage.web[web]) : null;
  const n = mbps(native[nat].bytes, native[nat].ms);
  return [name, what, `${f0(a)} (${stage.wasm[w].toFixed(1)} ms)`, b == null ? "–" : `${f0(b)} (${stage.web[web].toFixed(1)} ms)`,
    `${f0(n)} (${native[nat].ms.toFixed(1)} ms)`, x2(a, b), x2(a, n), x2(b, n)];
});
const stageTable = table(
  ["stage, one 4 MiB chunk", "MB/s over", "wasm", "WebCrypto / as the SDK runs it", "native (release)", "wasm ÷ WebCrypto", "wasm ÷ native", "WebCrypto ÷ native"],
  stageRows);

const med = (runs, key) => median(runs.map((r) => r[key]));
function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }
const e2eRows = [];
const longRows = [];
const copyRows = [];
for (const mib of SIZES_MIB) {
  const runs = e2e.results.filter((r) => r.mib === mib);
  const bytes = mib * MIB;
  const fileMBps = (key) => bytes / MB / med(runs, key);
  const wireMBps = (key, wire) => runs[0][wire] / MB / med(runs, key);
  const write = fileMBps("write"), read = fileMBps("read");
  const upSink = fileMBps("upSink"), upShards = fileMBps("upShards");
  const downSource = fileMBps("downSource"), downShards = fileMBps("downShards");
  e2eRows.push(
    [`${mib} MiB`, "**writeFile** (Blob)", f0(write), "", "", ""],
    ["", "plain fetch POST → sink (loopback floor)", f0(upSink), f0(wireMBps("upSink", "upWire")), x2(write, upSink), "≥ 0.70×"],
    ["", "plain fetch PUT → /v1/shards (stored)", f0(upShards), f0(wireMBps("upShards", "upWire")), x2(write, upShards), ""],
    ["", "**readFile** (stream)", f0(read), "", "", ""],
    ["", "plain fetch GET ← source (loopback floor)", f0(downSource), f0(wireMBps("downSource", "downWire")), x2(read, downSource), "≥ 0.80×"],
    ["", "plain fetch POST ← /v1/shards/fetch (stored)", f0(downShards), f0(wireMBps("downShards", "downWire")), x2(read, downShards), ""],
  );
  const long = (key, op) => {
    const all = runs.map((r) => r[key]);
    const worst = all.reduce((a, r) => (r.max > a.max ? r : a));
    const perRun = all.reduce((a, r) => a + r.count, 0) / runs.length;
    const busy = all.reduce((a, r) => a + r.total, 0) / runs.length;
    const wall = med(runs, op) * 1000;
    return [`${mib} MiB`, op === "write" ? "writeFile" : "readFile", perRun.toFixed(1), `${worst.max.toFixed(0)} ms`,
      `${(100 * busy / wall).toFixed(0)} %`, worst.scripts.join("; ") || "–"];
  };
  longRows.push(long("writeLong", "write"), long("readLong", "read"));
  const perChunk = (key) => `${(med(runs, key) / runs[0].chunks / MIB).toFixed(1)} MiB`;
  copyRows.push([`${mib} MiB`, String(runs[0].workers), perChunk("writeCopied"), perChunk("readCopied")]);
}
// Where the time goes, per 4 MiB chunk of each file: wall time, and CPU time by role
// (a sum over 2 cores can exceed the wall time; cores busy = CPU ÷ wall).
const ROLES = ["rendererMain", "rendererWorkers", "rendererOther", "network", "browser", "chromiumOther", "accelerator"];
const OPERATIONS = [
  ["writeFile", "write"], ["writeFile inline (no workers)", "inlineWrite"], ["fetch POST → sink", "upSink"],
  ["fetch PUT → /v1/shards", "upShards"], ["readFile", "read"], ["readFile inline (no workers)", "inlineRead"],
  ["fetch GET ← source", "downSource"], ["fetch POST ← /v1/shards/fetch", "downShards"],
];
const cpuRows = [];
const spent = new Map(); // "<MiB> <key>" → { wall, total } ms per chunk
for (const mib of SIZES_MIB) {
  const sized = e2e.results.filter((r) => r.mib === mib);
  const perChunk = sized[0].chunks;
  OPERATIONS.filter(([, key]) => cpu.has(`${mib} ${key}`)).forEach(([label, key], i) => {
    const c = cpu.get(`${mib} ${key}`);
    const ms = (role) => c[role] / c.runs / perChunk;
    const [runs, field] = key.startsWith("inline")
      ? [inline.results.filter((r) => r.mib === mib), key === "inlineWrite" ? "write" : "read"]
      : [sized, key];
    const wall = (runs.reduce((a, r) => a + r[field], 0) / runs.length) * 1000 / perChunk;
    const total = ROLES.reduce((a, role) => a + ms(role), 0);
    spent.set(`${mib} ${key}`, { wall, total });
    cpuRows.push([i === 0 ? `${mib} MiB` : "", label, wall.toFixed(1), ...ROLES.map((role) => ms(role).toFixed(1)),
      total.toFixed(1), (total / wall).toFixed(2)]);
  });
}
// What the CPU allows: with every core busy, a call that spends `total` ms of CPU per
// chunk takes at least total ÷ cores ms per chunk, whatever else is done.
const CORES = cpus().length;
const ceilingRows = [];
for (const mib of SIZES_MIB) {
  for (const [label, key, floorKey, target] of [["writeFile", "write", "upSink", 0.7], ["readFile", "read", "downSource", 0.8]]) {
    const sdk = spent.get(`${mib} ${key}`), floor = spent.get(`${mib} ${floorKey}`);
    if (!sdk || !floor) continue;
    const best = sdk.total / CORES;
    ceilingRows.push([`${mib} MiB`, label, sdk.total.toFixed(1), floor.total.toFixed(1), best.toFixed(1), sdk.wall.toFixed(1),
      floor.wall.toFixed(1), x2(floor.wall, best), x2(floor.wall, sdk.wall), `≥ ${target.toFixed(2)}×`]);
  }
}
const ceilingTable = table(["file", "call", "CPU per chunk (ms)", "the floor's CPU per chunk", `least wall on ${CORES} cores`,
  "wall", "the floor's wall", "at best ÷ floor", "measured ÷ floor", "target"], ceilingRows);
const cpuTable = table(["file", "operation", "wall", "renderer main thread", "file workers", "renderer other threads",
  "network service", "browser process", "other Chromium", "accelerator", "CPU total", "cores busy"], cpuRows);

{
  const mibInline = Math.max(...SIZES_MIB);
  const runs = inline.results;
  const bytes = mibInline * MIB;
  const write = bytes / MB / med(runs, "write"), read = bytes / MB / med(runs, "read");
  const upSink = bytes / MB / med(runs, "upSink"), downSource = bytes / MB / med(runs, "downSource");
  e2eRows.push(
    [`${mibInline} MiB`, "writeFile **inline** (no workers)", f0(write), "", x2(write, upSink), ""],
    ["", "readFile **inline** (no workers)", f0(read), "", x2(read, downSource), ""],
  );
}
const e2eTable = table(["file", "what", "file MB/s", "wire MB/s", "SDK ÷ floor", "target"], e2eRows);
const longTable = table(["file", "while", "long tasks per run", "longest", "share of the wall time in long tasks",
  "the longest ran (long-animation-frame script entries)"], longRows);

const copyTable = table(["file", "workers started", "writeFile: copied per 4 MiB chunk", "readFile (stream): copied per 4 MiB chunk"], copyRows);

const inMib = (bytes) => `${(bytes / MIB).toFixed(1)} MiB`;
const memRow = (label, m, mbps) => {
  const workers = m.workers?.peakWasmBytes ?? 0;
  return [label, inMib(m.start), inMib(m.peak), m.workers ? `${inMib(workers)} (${m.workers.started} workers)` : "inline",
    `**${inMib(m.peak + workers)}**`, f0(mbps), "≤ 64 MiB"];
};
const memRows = mem ? [
  memRow(`writeFile, ${BIG_MIB} MiB generated Blob`, mem.write, BIG_MIB * MIB / MB / mem.write.seconds),
  memRow(`readByManifest, ${BIG_MIB} MiB, as: "stream"`, mem.read, BIG_MIB * MIB / MB / mem.read.seconds),
] : [];
const memTable = table(["operation (fresh page each)", "page's wasm before", "page's wasm peak", "workers' wasm peak (summed)",
  "together", "file MB/s", "target"], memRows);

const sizes = SIZES_MIB.join(" and ");
const text = `## files (headless Chromium, ${new Date().toISOString()})

### Per-chunk stages (MB/s, MB = 10⁶ bytes; median of ${STAGE_RUNS}; ms per chunk in brackets)

${stageTable}

WebCrypto and wasm seal the same bytes under the same key, nonce and AAD (identical ciphertext: ${stage.same ? "yes" : "**NO**"}).
"As the SDK runs it": the write pipeline with WebCrypto sealing, the seal copied into wasm and every shard copied
out for \`fetch\` (storage/write.rs); the read pipeline from a fetched batch — copied in, split, checked, joined,
copied out — to WebCrypto's open (storage/shards.rs, storage/read.rs). Native runs the same core functions
(crates/core/examples/bench_native.rs) with memory reused, as wasm's linear memory is.

### writeFile / readFile against plain fetch to the same accelerator (median of ${RUNS}; no DevTools attached)

${e2eTable}

File MB/s = file bytes ÷ time, for the SDK and for each floor moving the bytes the SDK's call moves on the wire:
a write sends data + parity shards (1.5× the file: ${e2e.results[0].chunks * 6} bodies of ${e2e.results[0].shardLen} B for ${e2e.results[0].mib} MiB),
a read fetches the data shards only (one batch of 4 per chunk). Floors run ${CONCURRENCY} requests in flight
(Chromium's HTTP/1.1 limit per host); "→ sink" / "← source" are \`--bench-endpoints\` routes that only move
bytes (the loopback limit); "/v1/shards" is the real route (BLAKE3 check, temp file, fsync, rename; batch read).
SDK ÷ floor is the ratio of the file MB/s; the target is against the loopback floor.

### Where the time goes: ms per 4 MiB chunk, mean of ${RUNS} runs (CPU from /proc, 10 ms ticks; ${ACCEL_PID ? "" : "accelerator not counted: ACCEL_PID unset; "}${CORES} cores)

${cpuTable}

What the CPU allows. A call that spends its CPU per chunk on ${CORES} cores can take no less than that ÷ ${CORES}
per chunk; "at best ÷ floor" is the most the call could reach against its loopback floor (→ sink, ← source) on
this machine if nothing waited on anything, and "measured" is what it reached. Where the two meet, the cores
are the floor that stops the call; less CPU per chunk (or more cores: the pool runs up to 4 workers) moves it.

${ceilingTable}

### Long tasks while a file moves (PerformanceObserver "longtask", ${sizes} MiB; target: none over 50 ms)

${longTable}

"resolve-promise Promise.resolve" is wasm-bindgen-futures' executor: one microtask that polls every Rust future
that is ready, so the wasm work of several chunks (and their \`fetch\` calls) can land in one task.

### Bytes the SDK copies (src/copies.rs: Blob slices read, bytes into and out of wasm, buffers joined; median of ${RUNS})

${copyTable}

Copies the browser makes inside an API (\`fetch\` taking a body, WebCrypto taking its input) are not counted.

### Peak wasm memory (\`memory.buffer.byteLength\` of the page's instance, sampled every 20 ms and per chunk; each worker's as it answers)

${memTable}
`;
report("files.md", text);
