// Files through S3: writeFile / readFile through an accelerator on PostgreSQL + S3
// (tests/e2e/cluster.mjs, one instance, its own database and moto server) beside
// plain PUT / GET of the same bytes straight to the same moto server, from the page
// and from Node. Prints a table and writes it to target/bench/s3.md. Asserts nothing.
//
//   node bench/s3.mjs      (scripts/bench runs it; needs target/release/accelerator,
//                           pkg/, moto from scripts/setup, PostgreSQL)
//
// The browser side, bench/s3-page.js, runs in a bare headless Chromium (bench/lib.mjs
// runBare: no DevTools, which slows uploads) on a page server of this script's own:
// the accelerator serves its www/ under the demo's CSP (`connect-src 'self'`), which
// would refuse the page's reports and its requests to S3. From the environment:
//
//   BENCH_S3_MIB=64          the file written and read (a multiple of 4)
//   BENCH_RUNS=3             runs of each (medians)
//   BENCH_CONCURRENCY=6      requests in flight for the plain PUT / GET floors
import { fileURLToPath } from "node:url";

import { startCluster } from "../tests/e2e/cluster.mjs";
import { ROOT } from "../tests/e2e/spawned.mjs";
import { cpuByRole, findProcess, processCpuMs, report, runBare, servePages, table } from "./lib.mjs";

const env = (name, fallback) => process.env[name] ?? fallback;
const FILE_MIB = Math.max(4, Math.round(Number(env("BENCH_S3_MIB", 64)) / 4) * 4);
const RUNS = Number(env("BENCH_RUNS", 3));
const CONCURRENCY = Number(env("BENCH_CONCURRENCY", 6));
const MIB = 1024 * 1024;
const CHUNK = 4 * MIB, K = 4, M = 2, TAG = 16;
const log = (message) => console.error(`s3: ${message}`);

// moto checks no signature, only that a request says it is signed (tests/e2e/stored.mjs).
const SIGNED = { authorization: "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0" };
// What a bucket needs for browsers to PUT and GET its objects directly.
const CORS = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>" +
  "<AllowedMethod>PUT</AllowedMethod><AllowedMethod>DELETE</AllowedMethod><AllowedHeader>*</AllowedHeader></CORSRule></CORSConfiguration>";

async function ok(response) {
  if (!response.ok) throw new Error(`${response.url}: ${response.status} ${await response.text()}`);
  return response.arrayBuffer();
}

/** `n` jobs, `c` at a time. */
async function pool(n, c, job) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, c) }, async () => { while (next < n) await job(next++); }));
}

log("starting an accelerator on PostgreSQL + S3 (moto)");
const cluster = await startCluster({ instances: 1 });
let pages;
try {
  const url = cluster.instances[0].url;
  const { endpoint, bucket } = cluster.stored;
  const accelPid = findProcess("accelerator", url.split(":").at(-1));
  const motoPid = findProcess("moto_server", endpoint.split(":").at(-1));
  await ok(await cluster.stored.s3("?cors", { method: "PUT", body: CORS, headers: { "content-type": "application/xml" } }));

  // CPU milliseconds by process over each measured operation, summed over its runs.
  const cpu = new Map();
  const started = new Map();
  const mark = (text, sample) => {
    const [what, name] = text.split(" ");
    const now = sample();
    if (what === "start") return void started.set(name, now);
    const sum = cpu.get(name) ?? { runs: 0 };
    for (const [role, ms] of Object.entries(now)) sum[role] = (sum[role] ?? 0) + ms - started.get(name)[role];
    sum.runs += 1;
    cpu.set(name, sum);
  };
  const inBrowser = (browserPid) => {
    const c = cpuByRole(browserPid, accelPid);
    return { client: c.rendererMain + c.rendererWorkers + c.rendererOther + c.network + c.browser + c.chromiumOther, accelerator: c.accelerator, moto: processCpuMs(motoPid) };
  };
  const inNode = () => {
    const u = process.cpuUsage();
    return { client: (u.user + u.system) / 1000, accelerator: processCpuMs(accelPid), moto: processCpuMs(motoPid) };
  };

  pages = await servePages({ "/": fileURLToPath(new URL(".", import.meta.url)), "/pkg/": `${ROOT}pkg` });
  const page = new URL(`${pages.url}/s3.html`);
  const account = { username: `bench-${Date.now().toString(36)}`, password: "bench password" };
  page.searchParams.set("p", JSON.stringify({ url, s3: { endpoint, bucket }, account, mib: FILE_MIB, runs: RUNS, concurrency: CONCURRENCY }));
  log(`writeFile / readFile of ${FILE_MIB} MiB through ${url}, and plain PUT / GET to ${endpoint} from the page`);
  const browser = await runBare(page.href, { log, onMark: (text, pid) => mark(text, () => inBrowser(pid)) });

  // The same floors from Node: no browser, no CORS preflights.
  log("plain PUT / GET from Node");
  const chunks = Math.ceil(FILE_MIB * MIB / CHUNK);
  const shardLen = Math.ceil((CHUNK + TAG) / K);
  const up = chunks * (K + M), down = chunks * K;
  const body = new Uint8Array(shardLen).map(() => Math.random() * 256);
  const node = [];
  const timed = async (name, f) => {
    mark(`start ${name}`, inNode);
    const t = performance.now();
    await f();
    const s = (performance.now() - t) / 1000;
    mark(`end ${name}`, inNode);
    return s;
  };
  for (let i = 0; i < RUNS; i++) {
    const prefix = `/bench-floor/node-${i}-${Date.now().toString(36)}`;
    const put = await timed("nodePut", () => pool(up, CONCURRENCY, (j) => cluster.stored.s3(`${prefix}/${j}`, {
      method: "PUT", body, headers: { "content-type": "application/octet-stream" },
    }).then(ok)));
    const get = await timed("nodeGet", () => pool(down, CONCURRENCY, (j) => cluster.stored.s3(`${prefix}/${j}`).then(ok)));
    await pool(up, CONCURRENCY, (j) => cluster.stored.s3(`${prefix}/${j}`, { method: "DELETE" }).then(ok));
    node.push({ put, get });
  }

  // -------------------------------------------------------------------------------
  const MB = 1e6;
  const bytes = FILE_MIB * MIB;
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const f0 = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const secs = { ...Object.fromEntries(["put", "write", "read", "get"].map((k) => [k, median(browser.map((r) => r[k]))])),
    nodePut: median(node.map((r) => r.put)), nodeGet: median(node.map((r) => r.get)) };
  const { upWire, downWire } = browser[0];
  const row = (label, key, wire, sdkKey) => {
    const s = secs[key];
    const c = cpu.get(key);
    const cpuCell = c ? ["client", "accelerator", "moto"].map((r) => (c[r] / c.runs / 1000).toFixed(2)).join(" / ") : "–";
    const ratio = sdkKey ? `${(s / secs[sdkKey]).toFixed(2)}×` : "";
    return [label, f0(bytes / MB / s), wire ? f0(wire / MB / s) : "", ratio, s.toFixed(2), cpuCell];
  };
  const rows = [
    row("**writeFile** through the accelerator", "write", upWire),
    row(`plain PUT → S3 from the page (${CONCURRENCY} in flight)`, "put", upWire, "write"),
    row(`plain PUT → S3 from Node (${CONCURRENCY} in flight)`, "nodePut", upWire, "write"),
    row("**readFile** through the accelerator (stream)", "read", downWire),
    row(`plain GET ← S3 from the page (${CONCURRENCY} in flight)`, "get", downWire, "read"),
    row(`plain GET ← S3 from Node (${CONCURRENCY} in flight)`, "nodeGet", downWire, "read"),
  ];
  const head = ["what", "file MB/s", "wire MB/s", "SDK ÷ floor", "wall s", "CPU s: Chromium or Node / accelerator / moto"];
  const text = `## files through S3 (${FILE_MIB} MiB, median of ${RUNS}; bare headless Chromium, ${new Date().toISOString()})

${table(head, rows)}

One accelerator on PostgreSQL + S3 (moto, a server of its own), reached directly (not through haproxy).
File MB/s = file bytes ÷ time; the floors move the bytes the SDK's call moves between the accelerator and S3:
a write stores data + parity shards (1.5× the file: ${upWire / browser[0].shardLen} objects of ${browser[0].shardLen} B), a read
fetches the data shards (${downWire / browser[0].shardLen} objects). SDK ÷ floor is the ratio of the file MB/s (the SDK's over the floor's).
The SDK keeps 3 chunks in flight (its 6 shard PUTs each, at most 6 requests per host in Chromium); the accelerator
makes one S3 PUT per shard, and per read batch a HEAD per shard, then one GET after another.
The page is served from a loopback server of the benchmark's own (the accelerator's www/ carries the demo's CSP),
so every request is cross-origin: each shard PUT, the SDK's and the floor's, is preceded by a CORS preflight
(every URL differs); the floor's GETs are of public-read objects (simple requests), the SDK's batch POSTs are
preflighted once. The Node floors have neither. The bucket has a CORS rule (PutBucketCors) for the page's requests.
CPU: seconds per run, from /proc (10 ms ticks), 2 cores; "client" is every Chromium process, or this Node process.
`;
  report("s3.md", text);
} finally {
  await pages?.close();
  await cluster.stop();
}
