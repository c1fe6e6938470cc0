// kv benchmark: latency and throughput of client.kv and the change feed in headless
// Chromium against a local accelerator, each beside its floor measured in the same
// run (a bare fetch round trip, a bare websocket echo). Prints a table and writes it
// to target/bench/kv.md. Asserts nothing.
//
//   COFFER_URL=http://127.0.0.1:PORT node bench/kv.mjs      (scripts/bench sets it)
import { acceleratorUrl, launch, report, table as markdownTable } from "./lib.mjs";

const url = acceleratorUrl();
const N = Number(process.env.BENCH_N ?? 300);

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(`${url}/v1/health`); // any same-origin page will do
  const r = await page.evaluate(async ({ url, N }) => {
    const { default: init, Client } = await import("/pkg/coffer.js");
    await init();
    const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
    const stats = (xs) => ({ p50: q(xs, 0.5), p99: q(xs, 0.99) });
    const time = async (f) => { const t = performance.now(); await f(); return performance.now() - t; };
    const out = {};

    // Floor 1: a bare fetch round trip to the same accelerator.
    for (let i = 0; i < 20; i++) await fetch(`${url}/v1/health`);
    const rtt = [];
    for (let i = 0; i < N; i++) rtt.push(await time(() => fetch(`${url}/v1/health`).then((r) => r.text())));
    out.rtt = stats(rtt);

    // Floor 2: a bare websocket echo on the same accelerator.
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/bench/echo`);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error("echo endpoint missing: start the accelerator with --bench-endpoints")); });
    const echo = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      await new Promise((ok) => { ws.onmessage = ok; ws.send(JSON.stringify({ i, pad: "x".repeat(64) })); });
      echo.push(performance.now() - t);
    }
    ws.close();
    out.echo = stats(echo);

    const name = `bench-${crypto.randomUUID().slice(0, 8)}`;
    const a = await Client.signUp({ url, username: name, password: "bench password", remember: "none" });
    const b = await Client.signIn({ url, username: name, password: "bench password", remember: "none" });
    const value = { title: "Ship docs", done: false, note: "x".repeat(64) };
    for (let i = 0; i < 20; i++) await a.kv.set("warm", `w${i}`, value);

    const set = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) set.push(await time(() => a.kv.set("bench", `k${i}`, value)));
    out.setSeqPerSec = N / ((performance.now() - t0) / 1000);
    out.set = stats(set);

    const get = [];
    for (let i = 0; i < N; i++) get.push(await time(() => a.kv.get("bench", `k${i}`)));
    out.get = stats(get);

    // 64 in flight.
    const total = Math.max(N * 4, 1000);
    let next = 0;
    const t1 = performance.now();
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < total) { const i = next++; await a.kv.set("bench64", `k${i}`, value); }
    }));
    out.set64PerSec = total / ((performance.now() - t1) / 1000);

    // The same with offline kv (offline: true): every write goes through the sealed
    // queue in IndexedDB, every read past it, and what was read is kept. An account
    // of its own: signing it out below must not sign out the two above (same origin).
    const c = await Client.signUp({ url, username: `${name}-offline`, password: "bench password", remember: "none", offline: true });
    for (let i = 0; i < 20; i++) await c.kv.set("warm-offline", `w${i}`, value);
    const setOffline = [];
    for (let i = 0; i < N; i++) setOffline.push(await time(() => c.kv.set("bench-offline", `k${i}`, value)));
    out.setOffline = stats(setOffline);
    const getOffline = [];
    for (let i = 0; i < N; i++) getOffline.push(await time(() => c.kv.get("bench-offline", `k${i}`)));
    out.getOffline = stats(getOffline);
    next = 0;
    const t2 = performance.now();
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < total) { const i = next++; await c.kv.set("bench64-offline", `k${i}`, value); }
    }));
    out.set64OfflinePerSec = total / ((performance.now() - t2) / 1000);
    await c.signOut();

    // Change-feed delay: a set on one client until the other's listener has it.
    let waiting = null;
    const off = b.kv.on("change", (e) => { if (e.collection === "feed" && waiting) waiting(e); });
    await new Promise((ok) => { waiting = ok; a.kv.set("feed", "warm", { t: 0 }); });
    const feed = [];
    for (let i = 0; i < N; i++) {
      const got = new Promise((ok) => { waiting = ok; });
      const t = performance.now();
      await a.kv.set("feed", `f${i}`, { i });
      await got;
      feed.push(performance.now() - t);
    }
    off();
    out.feed = stats(feed);
    await a.signOut(); await b.signOut();
    return out;
  }, { url, N });

  const f = (x) => x.toFixed(2);
  const ratio = (x, floor) => `${(x / floor).toFixed(2)}×`;
  const rows = [
    ["bare fetch round trip (floor)", `${f(r.rtt.p50)} ms`, `${f(r.rtt.p99)} ms`, "", ""],
    ["bare websocket echo (floor)", `${f(r.echo.p50)} ms`, `${f(r.echo.p99)} ms`, "", ""],
    ["kv.set latency", `${f(r.set.p50)} ms`, `${f(r.set.p99)} ms`, ratio(r.set.p50, r.rtt.p50), "≤ 2× round trip"],
    ["kv.get latency", `${f(r.get.p50)} ms`, `${f(r.get.p99)} ms`, ratio(r.get.p50, r.rtt.p50), ""],
    ["change-feed delay (set → other client)", `${f(r.feed.p50)} ms`, `${f(r.feed.p99)} ms`, ratio(r.feed.p50, r.echo.p50), "≤ 2× echo (set + feed)"],
    ["kv.set sequential", `${r.setSeqPerSec.toFixed(0)} /s`, "", "", ""],
    ["kv.set, 64 in flight", `${r.set64PerSec.toFixed(0)} /s`, "", "", ""],
    ["kv.set latency, offline: true", `${f(r.setOffline.p50)} ms`, `${f(r.setOffline.p99)} ms`, ratio(r.setOffline.p50, r.rtt.p50), ""],
    ["kv.get latency, offline: true", `${f(r.getOffline.p50)} ms`, `${f(r.getOffline.p99)} ms`, ratio(r.getOffline.p50, r.rtt.p50), ""],
    ["kv.set, 64 in flight, offline: true", `${r.set64OfflinePerSec.toFixed(0)} /s`, "", "", ""],
  ];
  const head = ["measure", "p50 / rate", "p99", "p50 vs floor", "target"];
  const table = markdownTable(head, rows);
  const note = "The change-feed delay runs from calling `set` on one client until the other client's listener has the\n" +
    "decrypted value: one HTTP request in, one websocket frame out. Both clients share one page, so one clock.";
  const text = `## kv (N = ${N}, headless Chromium, ${new Date().toISOString()})\n\n${table}\n\n${note}\n`;
  report("kv.md", text);
} finally {
  await browser.close();
}
