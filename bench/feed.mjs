// Change-feed delay on each backend and across instances: a kv.set on client a until
// client b's listener has the change, beside a bare fetch round trip to the same
// accelerator, rows measured in turns in one page. Prints a table and writes it to
// target/bench/feed.md. Asserts nothing.
//
//   COFFER_URL=http://127.0.0.1:PORT node bench/feed.mjs      (scripts/bench sets it)
//
// COFFER_URL is the embedded accelerator (SQLite + directory); this script starts
// two more on PostgreSQL + S3 behind haproxy (tests/e2e/cluster.mjs). The page,
// bench/feed-page.js, runs in a bare headless Chromium (bench/lib.mjs runBare:
// Playwright's DevTools session added ~0.6 ms to a bare fetch round trip here),
// served by a page server of this script's own: the accelerators' www/ carries the
// demo's CSP, which would refuse the page's reports. BENCH_N (300) changes per row.
import { fileURLToPath } from "node:url";

import { startCluster } from "../tests/e2e/cluster.mjs";
import { ROOT } from "../tests/e2e/spawned.mjs";
import { acceleratorUrl, report, runBare, servePages, table } from "./lib.mjs";

const embedded = acceleratorUrl();
const N = Number(process.env.BENCH_N ?? 300);
const TURNS = 10;
const log = (message) => console.error(`feed: ${message}`);

log("starting two accelerators on PostgreSQL + S3 behind haproxy");
const cluster = await startCluster({ instances: 2 });
let pages;
try {
  const [one, two] = cluster.instances.map((i) => i.url);
  const rows = [
    { backend: "SQLite + directory (embedded)", where: "one instance", a: embedded, b: embedded },
    { backend: "PostgreSQL + S3", where: "one instance", a: one, b: one },
    { backend: "PostgreSQL + S3", where: "across instances (NOTIFY)", a: one, b: two },
  ];
  pages = await servePages({ "/": fileURLToPath(new URL(".", import.meta.url)), "/pkg/": `${ROOT}pkg` });
  const page = new URL(`${pages.url}/feed.html`);
  page.searchParams.set("p", JSON.stringify({ rows: rows.map(({ a, b }) => ({ a, b })), n: N, turns: TURNS }));
  log(`${N} changes per row`);
  const measured = await runBare(page.href, { log });

  const f = (x) => x.toFixed(2);
  const body = rows.map((row, i) => {
    const m = measured[i];
    const rtt = m.rttB == null ? `${f(m.rttA)} ms` : `${f(m.rttA)} ms (b's: ${f(m.rttB)} ms)`;
    return [row.backend, row.where, rtt, `${f(m.p50)} ms`, `${f(m.p99)} ms`, `${(m.p50 / m.rttA).toFixed(2)}×`, "≤ 2× round trip"];
  });
  const head = ["backend", "clients a → b", "bare fetch round trip p50 (a's instance)", "feed delay p50", "p99", "p50 ÷ round trip", "target"];
  const text = `## change feed (N = ${measured[0].n} per row, bare headless Chromium, ${new Date().toISOString()})

${table(head, body)}

Feed delay: from calling \`kv.set\` on client a until client b's \`change\` listener has the decrypted value, both
clients in one page (one clock), the same user signed in twice. One instance: a and b on the same accelerator (one
HTTP request in, one websocket frame out, woken in process). Across instances: a on instance 1, b's feed on
instance 2, so only PostgreSQL's NOTIFY (crates/accelerator/src/fanout.rs) brings the change. The round trip is a
GET /v1/health from the same page to a's accelerator, the one the set goes to. Rows were measured in ${TURNS} turns,
a slice of each in each turn. No DevTools attached; the page is on a loopback origin of its own, so every request is
cross-origin (kv.set's preflight is cached after the warm-up, the health GET needs none). The PostgreSQL + S3
instances are tests/e2e/cluster.mjs's; \`performance.now()\` counts in 0.1 ms steps here. kv.md's change-feed row
(Playwright attached, against the websocket echo) measures the SQLite row's path too.
`;
  report("feed.md", text);
} finally {
  await pages?.close();
  await cluster.stop();
}
