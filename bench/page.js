// Shared by the benchmark pages (bench/*-page.js), which run in a bare headless
// Chromium opened by bench/lib.mjs runBare: their parameters (JSON in ?p=…), their
// reports to the node script (?report=…), test bytes and timing.

const query = new URLSearchParams(location.search);
const reportUrl = query.get("report");

/** The page's parameters. */
export const p = JSON.parse(query.get("p"));

/** POSTs `body` to the node script at `path`: /log, /mark, /result or /error. */
export const post = (path, body) => fetch(`${reportUrl}${path}`, { method: "POST", body });

/** Prints a line on the node script's side. */
export const log = (message) => post("/log", message);

export const MIB = 1024 * 1024;
/** The SDK's default file parameters: 4 MiB chunks, 4 data and 2 parity shards, a 16-byte GCM tag. */
export const CHUNK = 4 * MIB, K = 4, M = 2, TAG = 16;

/** `n` random bytes. */
export function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `f`'s time in seconds. */
export const seconds = async (f) => { const t = performance.now(); await f(); return (performance.now() - t) / 1000; };

/** `seconds(f)`, with the node script told before and after (it reads CPU counters). */
export async function measured(name, f) {
  await post("/mark", `start ${name}`);
  const s = await seconds(f);
  await post("/mark", `end ${name}`);
  return s;
}

/** `n` jobs, `c` at a time. */
export async function pool(n, c, job) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, c) }, async () => { while (next < n) await job(next++); }));
}
