// The change feed across an accelerator crash: a second device keeps listening
// while the accelerator is killed (SIGKILL) and restarted in the middle of a stream
// of writes. Every write arrives exactly once per sequence number, in order, with
// no gap, and nothing the writer saw committed is missing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startAccelerator } from "./accelerator.mjs";
import { closeQuietly, launch, newPage, uniqueName } from "./browser.mjs";

let accelerator;
let browser;

before(async () => {
  accelerator = await startAccelerator();
  browser = await launch();
});

after(async () => {
  await closeQuietly(browser);
  await accelerator?.stop();
});

test("no change event is lost, duplicated or reordered across an accelerator crash", async () => {
  const { page } = await newPage(browser);
  await page.goto(`${accelerator.url}/pkg/package.json`);
  const username = uniqueName("crash");
  await page.evaluate(async ({ url, username }) => {
    const { default: init, Client } = await import("/pkg/coffer.js");
    await init();
    const writer = await Client.signUp({ url, username, password: "pw for crash test", remember: "none" });
    const listener = await Client.signIn({ url, username, password: "pw for crash test", remember: "none" });
    window.events = [];
    window.committed = new Set();
    // Only the listener callback is kept, not `listener` itself: a subscription must
    // keep its client alive (a collected client once silently stopped its feed).
    listener.kv.on("change", (e) => window.events.push({ seq: e.seq, id: e.id, n: e.data?.n }));
    // Writes 120 values one after another; a write that fails because the
    // accelerator is down is retried until it goes through.
    window.writing = (async () => {
      for (let n = 0; n < 120; n++) {
        for (;;) {
          try {
            await writer.kv.set("stream", `k${n}`, { n });
            window.committed.add(`k${n}`);
            break;
          } catch (e) {
            if (e.code !== "Network" && e.code !== "Internal") throw e;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }
    })();
  }, { url: accelerator.url, username });

  // Crash the accelerator once writes are flowing, then bring it back.
  await page.waitForFunction(() => window.events.length >= 20);
  await accelerator.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 700));
  await accelerator.restart();

  await page.evaluate(() => window.writing);
  await page
    .waitForFunction(() => new Set(window.events.map((e) => e.id)).size >= 120, null, { timeout: 60_000 })
    .catch(async (e) => {
      const state = await page.evaluate(() => ({ events: window.events.slice(-3), n: window.events.length, committed: window.committed.size }));
      throw new Error(`${e.message}; state ${JSON.stringify(state)}; problems ${page.problems}`);
    });
  const { events, committed } = await page.evaluate(() => ({ events: window.events, committed: [...window.committed] }));

  // In order, never repeated. A sequence number may be skipped only where a later
  // change replaced that key's change (SPEC §7.3): a write retried after the crash
  // whose first attempt had committed. Every committed key still arrives (below).
  const seqs = events.map((e) => e.seq);
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `events arrive in order with no repeat (at ${i}: ${seqs[i - 1]} → ${seqs[i]})`);
  }
  const holes = seqs.at(-1) - seqs[0] + 1 - seqs.length;
  assert.ok(holes <= 2, `at most the writes in flight at the crash were retried (${holes} skipped)`);
  const seen = new Set(events.map((e) => e.id));
  for (const id of committed) assert.ok(seen.has(id), `committed write ${id} reached the other device`);
  for (const e of events) assert.equal(`k${e.n}`, e.id, "each event carries its own decrypted value");
  // Only the refused connections while the accelerator was down may be reported.
  const unexpected = page.problems.filter((p) => !/ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|404 \(Not Found\)/.test(p));
  assert.deepEqual(unexpected, []);
});
