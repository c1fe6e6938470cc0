// Offline kv (src/offline/, SPEC.md D.5) through the real package in Chromium
// against an accelerator of the test's own, which the test stops and starts again:
//
// - while it is down, `set` and `delete` are queued and `get`/`list` answer from
//   what the device kept; `pending()` and the `status` event say so;
// - the page reloads with the accelerator still down, resumes its session offline
//   and still answers, the queue intact;
// - nothing in IndexedDB holds a value, collection or id in the clear (not even a
//   value written with `encrypt: false`);
// - once the accelerator is back the queue is sent by itself, and another device
//   sees the writes arrive in the order they were made;
// - a change made elsewhere that overwrites a write queued offline is flagged;
// - writes made together online land in the order they were made;
// - a queue left by a closed page is sent when the next page starts, unasked;
// - two tabs that queued writes offline send them once, in order, between them;
// - a queued write the accelerator refuses (over the user's allowance) is dropped
//   and reported, and the writes after it are sent;
// - a gateway answering 503 with no accelerator behind it counts as offline too;
// - a change feed stopped while it waits for the queue's Web Lock never holds it.
//
// The offline device's page comes from a little static server of the test's own
// (the package from pkg/), as an app would be served apart from its accelerator, so
// it can load while the accelerator is down; it calls the accelerator across origins.

import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join, normalize } from "node:path";
import { after, before, describe, it } from "node:test";

import { startAccelerator } from "./accelerator.mjs";
import { startHostile } from "./hostile.mjs";
import { closeQuietly, launch, newPage, randomHex, uniqueName } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";
import { ROOT } from "./spawned.mjs";

/** Bytes each user may store: every test's writes fit, one 120 KB value does not. */
const ALLOWANCE = 64 * 1024;

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/** Serves pkg/ at `/pkg/` and an empty page at `/`; resolves to `{ url, close() }`. */
async function appServer() {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") return void res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>app</title>");
    const file = normalize(join(ROOT, path));
    if (!path.startsWith("/pkg/") || !file.startsWith(join(ROOT, "pkg"))) return void res.writeHead(404).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[file.slice(file.lastIndexOf("."))] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ready) => server.listen(0, "127.0.0.1", ready));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** Runs in the page: every row of every store of the `coffer` database, as text. */
async function deviceText() {
  const db = await new Promise((resolve, reject) => {
    const request = indexedDB.open("coffer");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const text = (value) => {
    if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
      // Bytes read both ways a marker could hide in them.
      const bytes = new Uint8Array(value);
      return `${new TextDecoder().decode(bytes)} ${String.fromCharCode(...bytes)}`;
    }
    if (value && typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}=${text(v)}`).join(" ");
    return String(value);
  };
  const rows = {};
  for (const store of db.objectStoreNames) {
    const all = await new Promise((resolve, reject) => {
      const request = db.transaction(store).objectStore(store).getAll();
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    rows[store] = all.map(text);
  }
  db.close();
  return rows;
}

describe("offline kv", { timeout: 300_000 }, () => {
  const username = uniqueName("offline");
  const password = `pw-${randomHex(8)}`;
  const marker = `marker${randomHex(8)}`;
  const plainMarker = `plain${randomHex(8)}`;
  const collection = `notes${randomHex(6)}`;
  const secretId = `id${randomHex(6)}`;
  let accelerator;
  let app;
  let browser;
  let device; // { context, page }: the device that goes offline
  let other; // another device, online throughout

  /** Another tab of the offline device, its session resumed as `window.client`. */
  async function resumedTab() {
    const page = await device.context.newPage();
    await page.goto(app.url);
    await page.evaluate(installPageHelpers);
    await page.evaluate(async (url) => {
      window.client = await coffer.Client.resume({ url });
    }, accelerator.url);
    return page;
  }

  before(async () => {
    // A small allowance, so a queued write can be refused when it is sent.
    accelerator = await startAccelerator(["--user-allowance-bytes", String(ALLOWANCE)]);
    browser = await launch();

    // The other device makes the account and writes a value the first never reads.
    other = await newPage(browser);
    await other.page.goto(`${accelerator.url}/pkg/package.json`);
    await other.page.evaluate(installPageHelpers);
    await other.page.evaluate(
      async ({ url, username, password, collection }) => {
        window.client = await coffer.Client.signUp({ url, username, password, remember: "none" });
        await client.kv.set("elsewhere", "e1", { n: 1 });
        window.events = [];
        client.kv.on("change", (e) => {
          if (e.collection === collection) window.events.push({ seq: e.seq, id: e.id, type: e.type, data: e.data });
        });
      },
      { url: accelerator.url, username, password, collection },
    );

    app = await appServer();
    device = await newPage(browser);
    device.page.on("console", (m) => m.type() === "warning" && device.page.problems.push(`console.warn: ${m.text()}`));
    await device.page.goto(app.url);
    await device.page.evaluate(installPageHelpers);
    await device.page.evaluate(
      async ({ url, username, password, collection }) => {
        window.client = await coffer.Client.signIn({ url, username, password, remember: "local", offline: true });
        window.statuses = [];
        client.kv.on("status", (e) => window.statuses.push(e));
        window.changes = [];
        client.kv.on("change", (e) => window.changes.push(e));
        await client.kv.set(collection, "t1", { n: 1 });
        await client.kv.set(collection, "t2", { n: 2 });
        // Read once online: what this device keeps for offline reads.
        await client.kv.list(collection);
      },
      { url: accelerator.url, username, password, collection },
    ).catch((e) => {
      throw new Error(`${e.message}; the page said ${device.page.problems.join(" | ")}`);
    });
  });

  after(async () => {
    await closeQuietly(browser);
    app?.close();
    await accelerator?.stop();
  });

  it("queues writes while the accelerator is down and answers reads from the device", async () => {
    await accelerator.kill("SIGTERM");
    const seen = await device.page.evaluate(
      async ({ collection, marker, plainMarker, secretId }) => {
        const k = client.kv;
        await k.set(collection, "t3", { n: 3, text: marker });
        await k.set(collection, "t1", { n: 10 });
        const existed = await k.delete(collection, "t2");
        await k.set(collection, secretId, { text: plainMarker }, { encrypt: false });
        return {
          existed,
          pending: await k.pending(),
          t1: await k.get(collection, "t1"),
          t2: await k.get(collection, "t2"),
          never: await k.get(collection, "never-written"),
          ids: await k.list(collection),
          unknownCollection: await T.settle(k.list("never-listed")),
          unreadValue: await T.settle(k.get("elsewhere", "e1")),
          statuses: window.statuses,
        };
      },
      { collection, marker, plainMarker, secretId },
    );
    assert.equal(seen.existed, true, "t2 existed, as far as the device knew");
    assert.equal(seen.pending, 4);
    assert.deepEqual(seen.t1, { n: 10 }, "a queued write is read back");
    assert.equal(seen.t2, null, "a queued delete is read back");
    assert.equal(seen.never, null, "a listed collection answers for keys it does not hold");
    assert.deepEqual(seen.ids, [secretId, "t1", "t3"].sort());
    assert.equal(seen.unknownCollection.code, "Network", "a collection never listed is not guessed");
    assert.equal(seen.unreadValue.code, "Network", "a value never read is not guessed");
    assert.deepEqual(seen.statuses[0], { status: "online", pending: 0 }, "a status listener is told at once");
    assert.ok(
      seen.statuses.some((s) => s.status === "offline"),
      `the app was told it is offline: ${JSON.stringify(seen.statuses)}`,
    );
    assert.deepEqual(seen.statuses.at(-1), { status: "offline", pending: 4 });
  });

  it("keeps nothing readable on the device", async () => {
    const rows = await device.page.evaluate(deviceText);
    for (const store of ["kv_cache", "kv_listed", "kv_queue"]) {
      assert.ok(rows[store]?.length > 0, `${store} holds rows (${Object.keys(rows)})`);
    }
    const all = Object.values(rows).flat().join("\n");
    const owner = /owner=([0-9a-f]{32})/.exec(all)?.[1];
    assert.ok(owner && all.includes(owner), "the search reads the rows' fields");
    for (const [what, text] of [
      ["a sealed value", marker],
      ["a plain (encrypt: false) value", plainMarker],
      ["a collection name", collection],
      ["an id", secretId],
    ]) {
      assert.ok(!all.includes(text), `${what} is not on the device in the clear`);
    }
  });

  it("survives a reload while still offline", async () => {
    await device.page.reload();
    await device.page.evaluate(installPageHelpers);
    const seen = await device.page.evaluate(
      async ({ url, collection }) => {
        window.client = await coffer.Client.resume({ url });
        window.statuses = [];
        client.kv.on("status", (e) => window.statuses.push(e));
        window.changes = [];
        client.kv.on("change", (e) => window.changes.push(e));
        return {
          username: client?.username,
          pending: await client.kv.pending(),
          t1: await client.kv.get(collection, "t1"),
          t3: await client.kv.get(collection, "t3"),
          ids: await client.kv.list(collection),
        };
      },
      { url: accelerator.url, collection },
    );
    assert.equal(seen.username, username, "the remembered session resumed without the accelerator");
    assert.equal(seen.pending, 4, "the queue survived the reload");
    assert.deepEqual(seen.t1, { n: 10 });
    assert.equal(seen.t3.n, 3);
    assert.equal(seen.ids.length, 3);
  });

  it("sends the queue, in order, once the accelerator is back", async () => {
    await accelerator.restart();
    await device.page.waitForFunction(() => window.statuses.at(-1)?.status === "online" && window.statuses.at(-1)?.pending === 0, null, {
      timeout: 60_000,
    });
    await other.page.waitForFunction((id) => window.events.some((e) => e.id === id), secretId, { timeout: 60_000 });
    const events = await other.page.evaluate(() => window.events);
    const late = events.filter((e) => e.seq > events.find((x) => x.id === "t2" && x.type === "set").seq);
    assert.deepEqual(
      late.map((e) => `${e.type} ${e.id}`),
      ["set t3", "set t1", "delete t2", `set ${secretId}`],
      "the other device saw the queued writes in the order they were made",
    );
    assert.deepEqual(late[1].data, { n: 10 });
    assert.equal(late[0].data.text, marker);
    const stored = await other.page.evaluate(async (collection) => ({
      ids: await client.kv.list(collection),
      t1: await client.kv.get(collection, "t1"),
    }), collection);
    assert.deepEqual(stored.ids, [secretId, "t1", "t3"].sort());
    assert.deepEqual(stored.t1, { n: 10 });
    assert.equal(await device.page.evaluate(() => client.kv.pending()), 0);
  });

  it("flags a change elsewhere that overwrites a write queued offline", async () => {
    await other.page.evaluate(async (collection) => {
      await client.kv.set(collection, "t1", { n: 20 });
      await client.kv.set(collection, "t9", { n: 9 });
    }, collection);
    await device.page
      .waitForFunction(() => window.changes.some((e) => e.id === "t9"), null, { timeout: 60_000 })
      .catch((e) => {
        throw new Error(`${e.message}; the page said ${device.page.problems.slice(-15).join(" | ")}`);
      });
    const changes = await device.page.evaluate(() => window.changes.map((e) => ({ id: e.id, n: e.data?.n, overwritten: e.overwritten })));
    const t1 = changes.filter((e) => e.id === "t1");
    assert.deepEqual(t1.at(-1), { id: "t1", n: 20, overwritten: true }, JSON.stringify(changes));
    assert.ok(t1.slice(0, -1).every((e) => e.overwritten === undefined), "its own write is not flagged");
    assert.equal(changes.find((e) => e.id === "t9").overwritten, undefined, "a key never queued is not flagged");
  });

  it("writes made together, online, land in the order they were made", async () => {
    const final = await device.page.evaluate(async (collection) => {
      const k = client.kv;
      // Not awaited one by one: a delete does more work before it is queued than a set.
      await Promise.all([k.set(collection, "together", { n: 1 }), k.delete(collection, "together"), k.set(collection, "together", { n: 3 })]);
      return k.get(collection, "together");
    }, collection);
    // Nothing is queued now, so both reads are the accelerator's: the last write made
    // is the last it got (the feed need not show the others: its log keeps only a
    // key's latest change, SPEC §7.3).
    assert.deepEqual(final, { n: 3 });
    assert.deepEqual(await other.page.evaluate((collection) => client.kv.get(collection, "together"), collection), { n: 3 });
  });

  it("a queue left by a closed page is sent when the next page starts, unasked", async () => {
    const leaving = await resumedTab();
    await accelerator.kill("SIGTERM");
    assert.equal(await leaving.evaluate((collection) => client.kv.set(collection, "left-behind", { n: 1 }).then(() => client.kv.pending()), collection), 1);
    await leaving.close();
    await accelerator.restart();
    // The open tab is online with nothing to send; only the next page can notice the queue.
    const next = await resumedTab();
    await other.page.waitForFunction(() => window.events.some((e) => e.id === "left-behind"), null, { timeout: 60_000 });
    await next.waitForFunction(async () => (await client.kv.pending()) === 0);
    await next.close();
  });

  it("two tabs that queued writes offline send each once, in order", async () => {
    const second = await resumedTab();
    await accelerator.kill("SIGTERM");
    // Two runs of writes, one per tab, long enough that both tabs' senders are at it
    // at once when the accelerator is back.
    const order = [];
    for (const [page, from] of [[device.page, 0], [second, 50]]) {
      const ids = Array.from({ length: 50 }, (_, i) => `q${String(from + i).padStart(3, "0")}`);
      const pending = await page.evaluate(
        async ({ collection, ids }) => {
          for (const id of ids) await client.kv.set(collection, id, { id });
          return client.kv.pending();
        },
        { collection, ids },
      );
      order.push(...ids);
      assert.equal(pending, order.length, "the tabs share one queue");
    }
    const before = await other.page.evaluate(() => window.events.length);
    await accelerator.restart();
    await other.page.waitForFunction((n) => window.events.length >= n + 100, before, { timeout: 60_000 });
    // Both tabs are asking by now; give a second sender the time to repeat a write.
    await Promise.all([device.page, second].map((page) => page.waitForFunction(async () => (await client.kv.pending()) === 0)));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const events = (await other.page.evaluate(() => window.events)).slice(before);
    assert.deepEqual(events.map((e) => e.id), order, "each queued write arrived once, in the order made");
    await second.close();
  });

  it("a queued write the accelerator refuses is dropped and reported; the writes after it are sent", async () => {
    await accelerator.kill("SIGTERM");
    const pending = await device.page.evaluate(async (collection) => {
      window.refused = [];
      client.kv.on("change", (e) => e.error && window.refused.push({ id: e.id, type: e.type, seq: e.seq, data: e.data, code: e.error.code }));
      await client.kv.set(collection, "too-big", { pad: "x".repeat(120_000) });
      await client.kv.set(collection, "after-it", { n: 1 });
      return client.kv.pending();
    }, collection);
    assert.equal(pending, 2);
    await accelerator.restart();
    await other.page.waitForFunction(() => window.events.some((e) => e.id === "after-it"), null, { timeout: 60_000 });
    await device.page.waitForFunction(() => window.refused.length > 0);
    const seen = await device.page.evaluate(async (collection) => ({
      refused: window.refused,
      pending: await client.kv.pending(),
      bigOnAccelerator: await client.kv.get(collection, "too-big"),
    }), collection);
    assert.deepEqual(seen.refused, [{ id: "too-big", type: "set", seq: 0, data: null, code: "QuotaExceeded" }]);
    assert.equal(seen.pending, 0);
    assert.equal(seen.bigOnAccelerator, null, "the refused write is not read back either");
    assert.ok(!(await other.page.evaluate(() => window.events.some((e) => e.id === "too-big"))));
  });

  it("a gateway answering 503 (no accelerator behind it) counts as offline", async () => {
    // The page is on the gateway's origin, as the demo is behind haproxy: a 503 page
    // without CORS headers would fail as a network error on any other.
    const gateway = await startHostile(accelerator.url);
    try {
      const page = await device.context.newPage();
      await page.goto(`${gateway.url}/pkg/package.json`);
      await page.evaluate(installPageHelpers);
      // Its own account: a sign-in is bound to the accelerator's origin, a sign-up is not.
      await page.evaluate(
        async ({ url, username, collection }) => {
          window.client = await coffer.Client.signUp({ url, username, password: "pw", remember: "none", offline: true });
          window.statuses = [];
          client.kv.on("status", (e) => window.statuses.push(e));
          await client.kv.list(collection);
        },
        { url: gateway.url, username: uniqueName("gateway"), collection },
      );
      for (const method of ["GET", "POST"]) {
        gateway.lie(method, /^\/v1\//, ({ res }) => {
          res.writeHead(503, { "content-type": "text/html" });
          res.end("<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>");
        });
      }
      const seen = await page.evaluate(async (collection) => {
        await client.kv.set(collection, "via-gateway", { n: 1 });
        return { pending: await client.kv.pending(), ids: await client.kv.list(collection), status: window.statuses.at(-1) };
      }, collection);
      assert.equal(seen.pending, 1);
      assert.ok(seen.ids.includes("via-gateway"));
      assert.deepEqual(seen.status, { status: "offline", pending: 1 });
      gateway.truth();
      await page.waitForFunction(() => window.statuses.at(-1)?.status === "online" && window.statuses.at(-1)?.pending === 0, null, {
        timeout: 60_000,
      });
      // Nothing is queued now, so this read is the accelerator's answer.
      const stored = await page.evaluate((collection) => client.kv.get(collection, "via-gateway"), collection);
      assert.deepEqual(stored, { n: 1 }, "the accelerator holds the write");
      await page.close();
    } finally {
      await gateway.stop();
    }
  });

  it("a feed stopped while it waits for the queue's lock never takes it", async () => {
    // A device of its own, so its feed leads (a tab of the first device would follow).
    const { context, page } = await newPage(browser);
    await page.goto(app.url);
    await page.evaluate(installPageHelpers);
    await page.evaluate(
      ({ url, username, password }) => coffer.Client.signIn({ url, username, password, remember: "local", offline: true }),
      { url: accelerator.url, username, password },
    );
    // The queue lock's name holds the account's owner tag (SPEC D.1), derived here from
    // the root secret the page remembers.
    const saved = await page.evaluate((url) => localStorage.getItem(`coffer:session:${url}`), accelerator.url);
    const root = Buffer.from(JSON.parse(saved).root, "base64url");
    const owner = Buffer.from(hkdfSync("sha256", root, Buffer.alloc(0), "coffer/v1/device-owner", 32)).subarray(0, 16).toString("hex");
    const seen = await page.evaluate(
      async ({ url, name, collection }) => {
        const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
        const names = async (kind) => (await navigator.locks.query())[kind].map((lock) => lock.name);
        window.client = await coffer.Client.resume({ url });
        // The page holds the queue lock, as a tab sending a long queue would.
        let letGo;
        const holding = new Promise((resolve) => (letGo = resolve));
        await new Promise((granted) => navigator.locks.request(name, () => (granted(), holding)));
        // A listener starts the feed, which sends the queue before it connects: it waits.
        const off = client.kv.on("change", () => {});
        for (let i = 0; i < 50 && !(await names("pending")).includes(name); i++) await sleep(100);
        const waited = (await names("pending")).includes(name);
        off(); // the feed stops while it waits
        await sleep(200);
        letGo();
        await sleep(500);
        const heldAfter = (await names("held")).includes(name);
        const write = await Promise.race([client.kv.set(collection, "after-the-wait", { n: 1 }).then(() => "stored"), sleep(10_000).then(() => "hung")]);
        return { waited, heldAfter, write };
      },
      { url: accelerator.url, name: `coffer/v1/kv-queue/${owner}`, collection },
    );
    await context.close();
    assert.equal(seen.waited, true, "the feed waited for the queue lock");
    assert.equal(seen.heldAfter, false, "nobody holds the queue lock once its waiter is gone");
    assert.equal(seen.write, "stored", "the next write is not stuck behind a lock nobody will let go");
  });
});
