// Three accelerators on one PostgreSQL database and one S3 bucket behind haproxy
// (tests/e2e/cluster.mjs runs deploy/haproxy.cfg), driven through the SDK in
// Chromium. A device pinned to one instance uses that instance's own address; every
// other call goes through haproxy, which sends consecutive requests to different
// instances (round robin), so a sign-in through it starts on one instance and
// finishes on another. It shows that
//
// - two devices on different instances see each other's kv changes live;
// - a file written through one instance is read through another, and by manifest;
// - an instance SIGKILLed mid-upload: the SDK carries on through haproxy, the file
//   reads back whole, and no partial file is ever listed;
// - instances SIGKILLed one after another mid-feed: no change is lost, repeated or
//   reordered on a device listening through haproxy;
// - concurrent commits through different instances never pass the space quota;
// - with the collector running every second on every instance, no shard of a live
//   file is ever freed, and deleted files' shards are;
// - nothing is written on any instance's local disk: the shards are in S3.
//
// Timeouts only stop a broken run from hanging; nothing asserts on time.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "./cluster.mjs";
import { closeQuietly, launch, newPage } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

const MiB = 1024 * 1024;
const QUOTA = 16 * MiB;
// The collector runs every second on every instance; uploads stay pending for a
// minute, longer than any upload here takes. Feeds read the log unprompted only
// every ten minutes, so a change reaches another instance's feed only if its
// notification does.
const FEED_CATCH_UP_SECS = 600;
const FLAGS = [
  "--space-quota-bytes", String(QUOTA),
  "--gc-interval-secs", "1",
  "--shard-grace-secs", "60",
  "--feed-catch-up-secs", String(FEED_CATCH_UP_SECS),
];

describe("three accelerators on PostgreSQL and S3 behind haproxy", { timeout: 600_000 }, () => {
  let cluster;
  let browser;
  let page;

  before(async () => {
    cluster = await startCluster({ instances: 3, args: FLAGS });
    browser = await launch();
    ({ page } = await newPage(browser));
    await page.goto(`${cluster.url}/pkg/package.json`);
    await page.evaluate(installPageHelpers);
    // One account; each device is a sign-in at one address: a1, a2, a3 are pinned to
    // an instance, `proxied` goes through haproxy.
    await page.evaluate(
      async ({ proxy, direct }) => {
        const username = `cluster-${crypto.randomUUID().slice(0, 12)}`;
        const password = `pw-${username}`;
        await coffer.Client.signUp({ url: proxy, username, password, remember: "none" });
        const signIn = (url) => coffer.Client.signIn({ url, username, password, remember: "none" });
        window.devices = { proxied: await signIn(proxy) };
        for (const [i, url] of direct.entries()) window.devices[`a${i + 1}`] = await signIn(url);
        window.anonymous = await coffer.Client.anonymous({ url: proxy });
      },
      { proxy: cluster.url, direct: cluster.instances.map((i) => i.url) },
    );
  });

  after(async () => {
    await closeQuietly(browser);
    await cluster?.stop();
  });

  it("shows kv changes live between devices on different instances", async () => {
    const seen = await page.evaluate(async () => {
      const { a1, a2, proxied } = window.devices;
      // Far sooner than the catch-up: only a notification brings the change. (The
      // bound only stops a broken fan-out from hanging the run.)
      const arrived = (device, id) =>
        new Promise((resolve) => {
          const off = device.kv.on("change", (e) => {
            if (e.collection === "live" && e.id === id) {
              off();
              resolve(e.data);
            }
          });
          setTimeout(() => resolve("no event within 20 s: the other instance was not notified"), 20_000);
        });
      // Each device first hears its own write: its feed is then connected and
      // caught up (a1's and a2's on their own instance), so a later change made on
      // another instance can only reach it by notification.
      for (const device of [a1, a2, proxied]) {
        const warm = `warm-${crypto.randomUUID()}`;
        const heard = arrived(device, warm);
        await device.kv.set("live", warm, { warm: true });
        if ((await heard)?.warm !== true) return { warmUp: await heard };
      }
      const onA2 = arrived(a2, "from-a1");
      const onProxied = arrived(proxied, "from-a1");
      await a1.kv.set("live", "from-a1", { by: "a1" });
      const onA1 = arrived(a1, "from-a2");
      await a2.kv.set("live", "from-a2", { by: "a2" });
      return { onA2: await onA2, onProxied: await onProxied, onA1: await onA1, read: await a1.kv.get("live", "from-a2") };
    });
    assert.deepEqual(seen, { onA2: { by: "a1" }, onProxied: { by: "a1" }, onA1: { by: "a2" }, read: { by: "a2" } });
  });

  it("reads a file through another instance than the one it was written through", async () => {
    const out = await page.evaluate(async () => {
      const { a1, a3, proxied } = window.devices;
      const bytes = T.bytes(3 * 1024 * 1024 + 7, 11);
      const { id: spaceId } = await a1.space.create({ name: "across instances" });
      const { stat, manifest } = await a1.storage.writeFile({ spaceId, data: bytes, metadata: { name: "across" }, chunkSize: 1024 * 1024 });
      const byId = await a3.storage.readFile(spaceId, stat.id);
      const proxiedById = await proxied.storage.readFile(spaceId, stat.id);
      const byManifest = await anonymous.storage.readByManifest(manifest);
      return {
        byId: T.compare(byId.data, bytes),
        proxied: T.compare(proxiedById.data, bytes),
        byManifest: T.compare(byManifest.data, bytes),
        name: byId.stat.metadata.name,
      };
    });
    assert.deepEqual(out, { byId: "same", proxied: "same", byManifest: "same", name: "across" });
  });

  it("finishes an upload through haproxy when an instance is killed in the middle of it", async () => {
    const SIZE = 8 * MiB + 123;
    await page.evaluate(
      async ({ SIZE }) => {
        const { proxied, a3 } = window.devices;
        const { id: spaceId } = await proxied.space.create({ name: "killed mid-upload" });
        window.upload = { spaceId, progress: 0, listed: [], bytes: T.bytes(SIZE, 5) };
        // Another device lists the space all along: no file may show before the
        // upload finishes, and then only the whole file.
        window.upload.watching = (async () => {
          while (!window.upload.done) {
            const files = await T.settle(a3.storage.listFiles({ spaceId }));
            if (files.ok) for (const f of files.value) window.upload.listed.push({ size: f.size, done: !!window.upload.done });
            await new Promise((r) => setTimeout(r, 50));
          }
        })();
        window.upload.result = T.settle(
          proxied.storage.writeFile({
            spaceId,
            data: window.upload.bytes,
            chunkSize: 256 * 1024,
            onProgress: (done, total) => (window.upload.progress = done / total),
          }),
        ).finally(() => (window.upload.done = true));
      },
      { SIZE },
    );
    await page.waitForFunction(() => window.upload.progress >= 0.25 || window.upload.done);
    const atKill = await page.evaluate(() => ({ progress: window.upload.progress, done: !!window.upload.done }));
    await cluster.instances[1].kill("SIGKILL");
    assert.ok(!atKill.done && atKill.progress < 1, `the kill came mid-upload (${JSON.stringify(atKill)})`);

    const out = await page.evaluate(async () => {
      const { proxied, a1 } = window.devices;
      const result = await window.upload.result;
      await window.upload.watching;
      if (!result.ok) return { result };
      const { spaceId, bytes } = window.upload;
      const read = await a1.storage.readFile(spaceId, result.value.stat.id);
      const listed = await proxied.storage.listFiles({ spaceId });
      return {
        result: { ok: true },
        read: T.compare(read.data, bytes),
        listed: listed.map((f) => f.size),
        partial: window.upload.listed.filter((f) => f.size !== bytes.length),
      };
    });
    await cluster.instances[1].restart();
    assert.deepEqual(out.result, { ok: true }, "writeFile carried on through haproxy");
    assert.equal(out.read, "same");
    assert.deepEqual(out.listed, [SIZE], "one file, whole");
    assert.deepEqual(out.partial, [], "no partial file was ever listed");
  });

  it("loses, repeats and reorders no change while each instance in turn is killed mid-feed", async () => {
    const TOTAL = 90;
    await page.evaluate(
      async ({ TOTAL }) => {
        // A writer and a listener of their own, both through haproxy.
        const username = `feed-${crypto.randomUUID().slice(0, 12)}`;
        window.feedWriter = await coffer.Client.signUp({ url: location.origin, username, password: `pw-${username}`, remember: "none" });
        window.feedListener = await coffer.Client.signIn({ url: location.origin, username, password: `pw-${username}`, remember: "none" });
        window.feed = { events: [], committed: new Set() };
        feedListener.kv.on("change", (e) => window.feed.events.push({ seq: e.seq, id: e.id, n: e.data?.n }));
        window.feed.writing = (async () => {
          for (let n = 0; n < TOTAL; n++) {
            await T.untilDone(() => feedWriter.kv.set("stream", `k${n}`, { n }));
            window.feed.committed.add(`k${n}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        })();
      },
      { TOTAL },
    );
    // Each instance dies while events flow, then comes back: whichever holds the
    // listener's websocket, it was killed under it once.
    for (const [i, instance] of cluster.instances.entries()) {
      const target = 15 * (i + 1);
      await page.waitForFunction((target) => window.feed.events.length >= target, target, { timeout: 60_000 });
      await instance.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 400));
      await instance.restart();
    }
    await page.evaluate(() => window.feed.writing);
    await page.waitForFunction((TOTAL) => new Set(window.feed.events.map((e) => e.id)).size >= TOTAL, TOTAL, { timeout: 60_000 });
    const { events, committed } = await page.evaluate(() => ({ events: window.feed.events, committed: [...window.feed.committed] }));
    const seqs = events.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) {
      assert.ok(seqs[i] > seqs[i - 1], `events arrive in order with no repeat (at ${i}: ${seqs[i - 1]} → ${seqs[i]})`);
    }
    // A sequence number is skipped only where a retried write replaced its own
    // first attempt (SPEC §7.3): at most one per kill.
    const holes = seqs.at(-1) - seqs[0] + 1 - seqs.length;
    assert.ok(holes <= cluster.instances.length, `at most one retried write per kill (${holes} skipped)`);
    const seen = new Set(events.map((e) => e.id));
    for (const id of committed) assert.ok(seen.has(id), `committed write ${id} reached the listener`);
    for (const e of events) assert.equal(`k${e.n}`, e.id, "each event carries its own value");
  });

  it("never passes the space quota with commits racing through different instances", async () => {
    const out = await page.evaluate(async () => {
      const { a1, a2, a3 } = window.devices;
      const { id: spaceId } = await a1.space.create({ name: "quota race" });
      // 12 files of 2 MiB (3 MiB of shards each with 4 + 2 shards) against a 16 MiB quota.
      const writes = [];
      for (let i = 0; i < 12; i++) {
        const device = [a1, a2, a3][i % 3];
        const data = T.bytes(2 * 1024 * 1024, 100 + i);
        writes.push(T.settle(device.storage.writeFile({ spaceId, data, chunkSize: 1024 * 1024 })));
      }
      const results = await Promise.all(writes);
      const usage = await a2.space.usage(spaceId);
      const listed = await a3.storage.listFiles({ spaceId });
      return {
        committed: results.filter((r) => r.ok).length,
        refused: results.filter((r) => !r.ok).map((r) => r.code),
        usage,
        listed: listed.length,
      };
    });
    assert.ok(out.usage.usedBytes <= out.usage.quotaBytes, `used ${out.usage.usedBytes} of ${out.usage.quotaBytes}`);
    assert.equal(out.usage.quotaBytes, QUOTA);
    assert.ok(out.committed >= 1, "some files fit");
    assert.ok(out.refused.length >= 1, "not all of them fit");
    assert.deepEqual([...new Set(out.refused)], ["QuotaExceeded"]);
    assert.equal(out.listed, out.committed, "every committed file is listed, no refused one is");
  });

  it("keeps every shard of a live file and frees deleted files' shards, with collectors on every instance", async () => {
    const files = await page.evaluate(async () => {
      const { a1, a2, a3 } = window.devices;
      const devices = [a1, a2, a3];
      const { id: spaceId } = await a1.space.create({ name: "collectors" });
      const files = [];
      // Three rounds: each device writes a file, and the next device deletes every
      // other file written so far, while the collectors run.
      for (let round = 0; round < 3; round++) {
        const written = await Promise.all(
          devices.map(async (device, i) => {
            const bytes = T.bytes(300_000 + i, round * 10 + i);
            const { stat, manifest } = await device.storage.writeFile({ spaceId, data: bytes, chunkSize: 128 * 1024 });
            return { id: stat.id, seed: round * 10 + i, size: bytes.length, shards: coffer.inspectManifest(manifest).refs.flatMap((r) => r.shards) };
          }),
        );
        files.push(...written);
        for (const [i, file] of files.entries()) {
          if (i % 2 === 1 && !file.deleted) {
            file.deleted = await devices[(round + 1) % 3].storage.deleteFile(spaceId, file.id);
          }
        }
        await new Promise((r) => setTimeout(r, 1500));
      }
      const reads = [];
      for (const file of files.filter((f) => !f.deleted)) {
        const read = await devices[reads.length % 3].storage.readFile(spaceId, file.id);
        reads.push(T.compare(read.data, T.bytes(file.size, file.seed)));
      }
      return { files, reads };
    });
    assert.deepEqual(files.reads, files.reads.map(() => "same"), "every live file reads back");
    const live = files.files.filter((f) => !f.deleted);
    const deleted = files.files.filter((f) => f.deleted);
    assert.ok(live.length >= 4 && deleted.length >= 4);
    // After a few more passes of every collector: every shard of a live file is in
    // the bucket (a read would hide up to two missing ones behind parity), and no
    // shard of a deleted file is.
    await new Promise((r) => setTimeout(r, 2500));
    const stored = await cluster.stored.shards();
    const missing = live.flatMap((f) => f.shards).filter((a) => !stored.has(a));
    assert.deepEqual(missing, [], "no shard of a live file was freed");
    const left = deleted.flatMap((f) => f.shards).filter((a) => stored.has(a));
    assert.deepEqual(left, [], "deleted files' shards are freed");
  });

  it("writes nothing on any instance's local disk: the shards are in S3", async () => {
    assert.deepEqual(await cluster.localFiles(), []);
    const objects = await cluster.stored.objects();
    assert.ok(objects.length > 0 && objects.every((o) => /[0-9a-f]{64}$/.test(o.key)), `shard objects in the bucket (${objects.length})`);
  });
});
