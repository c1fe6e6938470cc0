// The browser side of bench/feed.mjs: per row, a bare fetch round trip to client a's
// accelerator and the change-feed delay (kv.set on client a until client b's
// listener has it), rows measured in turns; reports to the node script (?report=…).
// Parameters arrive as JSON in ?p=…: { rows: [{ a, b }], n, turns }. Times are ms.

import { p, post } from "./page.js";

const time = async (f) => { const t = performance.now(); await f(); return performance.now() - t; };
const roundTrip = (url) => time(() => fetch(`${url}/v1/health`).then((r) => r.text()));
const q = (xs, at) => { const s = [...xs].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(at * s.length))]; };

/** Client a on `row.a` and b on `row.b`, one user signed in twice; b listening. */
async function pair(Client, row) {
  const account = { username: `bench-${crypto.randomUUID().slice(0, 8)}`, password: "bench password", remember: "none" };
  const a = await Client.signUp({ url: row.a, ...account });
  const b = await Client.signIn({ url: row.b, ...account });
  let waiting = null;
  const off = b.kv.on("change", (e) => { if (e.collection === "feed" && waiting) waiting(e); });
  let key = 0;
  /** A set on a until b's listener has it, in ms. */
  const delay = async () => {
    const got = new Promise((ok) => { waiting = ok; });
    const t = performance.now();
    await a.kv.set("feed", `f${key++}`, { key });
    await got;
    return performance.now() - t;
  };
  return { row, delay, rttA: [], rttB: [], feed: [], close: async () => { off(); await a.signOut(); await b.signOut(); } };
}

async function run({ rows, n, turns }) {
  const { default: init, Client } = await import("/pkg/coffer.js");
  await init();
  const pairs = [];
  for (const row of rows) {
    const clients = await pair(Client, row);
    // Warm: connections open, preflights cached, both feeds live.
    for (let i = 0; i < 20; i++) { await roundTrip(row.a); await roundTrip(row.b); await clients.delay(); }
    pairs.push(clients);
  }
  // In turns, a slice of every row each, so a busy moment of the machine falls on all.
  for (let turn = 0; turn < turns; turn++) {
    for (const { row, delay, rttA, rttB, feed } of pairs) {
      for (let i = 0; i < n / turns; i++) {
        rttA.push(await roundTrip(row.a));
        if (row.b !== row.a) rttB.push(await roundTrip(row.b));
        feed.push(await delay());
      }
    }
  }
  const out = [];
  for (const { close, rttA, rttB, feed } of pairs) {
    await close();
    out.push({ n: feed.length, rttA: q(rttA, 0.5), rttB: rttB.length ? q(rttB, 0.5) : null, p50: q(feed, 0.5), p99: q(feed, 0.99) });
  }
  return out;
}

try {
  await post("/result", JSON.stringify(await run(p)));
} catch (e) {
  await post("/error", `${e?.code ? `[${e.code}] ` : ""}${e?.stack ?? e}`);
}
