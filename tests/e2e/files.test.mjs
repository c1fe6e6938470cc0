// Files end to end, against an accelerator of this test's own (small quota, an
// eight-second shard grace, a collector every second) whose storage — a data dir, or
// PostgreSQL and S3 with COFFER_TEST_BACKEND=postgres — the test reads and damages
// from node (./stored.mjs):
//
// - the storage examples of SEED-storage.txt, as written, with a real `File`;
// - any m shards of every chunk deleted or corrupted in storage → identical bytes;
//   m + 1 → `Integrity`/`NotFound`, never wrong bytes (chunk-table nodes too);
// - deleteFile frees the file's shards at once and its manifest stops opening it;
// - over quota → `QuotaExceeded`, nothing visible, its shards collected;
// - an aborted upload and an accelerator killed mid-upload leave nothing visible,
//   and their shards are collected after the grace;
// - no file bytes, file name or space name at rest;
// - members read by id, non-members are refused, anyone reads by manifest.
//
// Timeouts only stop a broken run from hanging; nothing asserts on time. Waits
// for the collector poll the storage with a bound.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startAccelerator } from "./accelerator.mjs";
import { containing } from "./stored.mjs";
import { closeQuietly, launch, newPage, randomHex, uniqueName } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

const QUOTA = 3_000_000;
// Shards a write uploaded are collected this long after it, unless committed: it must
// outlast the slowest write here (a 41-chunk file took over 2 s on PostgreSQL + S3,
// and lost shards to a 2 s grace before its commit).
const GRACE_SECS = 8;
const FLAGS = ["--space-quota-bytes", String(QUOTA), "--shard-grace-secs", String(GRACE_SECS), "--gc-interval-secs", "1"];
/** How long the collector may take, at most, before a test gives up (grace + a few passes, with room). */
const COLLECT_BOUND_MS = 40_000;

// ---- what the accelerator keeps ----------------------------------------------

/** Which of `addresses` are still stored. */
async function present(stored, addresses) {
  const now = await stored.shards();
  return addresses.filter((a) => now.has(a));
}

/** Polls `remaining` (async, an array) until it is empty, or fails after `bound` ms. */
async function untilNone(remaining, what, bound = COLLECT_BOUND_MS) {
  const deadline = Date.now() + bound;
  let last;
  for (;;) {
    last = await remaining();
    if (last.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${what}: still not true after ${bound} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- in the page --------------------------------------------------------------

async function openPage(browser, url) {
  const { page } = await newPage(browser);
  await page.goto(`${url}/pkg/package.json`);
  await page.evaluate(installPageHelpers);
  await page.evaluate(() => {
    window.files = new Map(); // name → { bytes, manifest, stat, spaceId }
  });
  return page;
}

// -------------------------------------------------------------------------------

describe("files end to end on an accelerator of the test's own", { timeout: 600_000 }, () => {
  let accelerator;
  let browser;
  let page;

  before(async () => {
    accelerator = await startAccelerator(FLAGS);
    browser = await launch();
    page = await openPage(browser, accelerator.url);
    await page.evaluate(async () => {
      window.owner = await T.signUp("files");
    });
  });

  after(async () => {
    await closeQuietly(browser);
    await accelerator?.stop();
  });

  /** Writes `size` seeded bytes into a fresh space; returns `{ spaceId, id, manifest, info }`. */
  async function writeSeeded(name, size, options = {}) {
    return page.evaluate(
      async ({ name, size, options }) => {
        const bytes = T.bytes(size, size ^ name.length);
        const { id: spaceId } = await owner.space.create({ name: `space for ${name}` });
        const { stat, manifest } = await owner.storage.writeFile({ spaceId, data: bytes, metadata: { name }, ...options });
        window.files.set(name, { bytes, manifest, stat, spaceId });
        return { spaceId, id: stat.id, manifest, info: coffer.inspectManifest(manifest) };
      },
      { name, size, options },
    );
  }

  /** Reads a written file back by its manifest: "same", a difference, or `{ code }`. */
  function readBack(name) {
    return page.evaluate(async (name) => {
      const file = window.files.get(name);
      const read = await T.settle(owner.storage.readByManifest(file.manifest));
      return read.ok ? { ok: true, compare: T.compare(read.value.data, file.bytes) } : read;
    }, name);
  }

  it("runs the seed's storage examples as written, with a real File", async () => {
    const out = await page.evaluate(async () => {
      const client = owner;
      const bytes = T.bytes(150_000, 42);
      const file = new File([bytes], "seed-notes.txt", { type: "text/plain" });
      const spaceId = (await client.space.create({ name: "Seed examples" })).id;
      const r = {};

      // Write a file into a space (obtained from client.space).
      const { stat, manifest } = await client.storage.writeFile({ // seed:
      spaceId, // seed:
      data: file, // Uint8Array | Blob | File  // seed:
      metadata: { name: file.name, type: file.type }, // seed:
      }); // seed:
      // Read it back — by space + id, or straight from the manifest (the capability).
      const { data } = await client.storage.readFile(spaceId, stat.id); // seed:
      const shared = await client.storage.readByManifest(manifest); // no membership needed  // seed:
      // Discover + manage.
      const mine = await client.storage.listFiles(); // files I've shared  // seed:
      const inSpace = await client.storage.listFiles({ spaceId }); // files in a space  // seed:
      r.deleted = await client.storage.deleteFile(spaceId, stat.id); // seed: (result recorded)

      const pick = (s) => ({ id: s.id, spaceId: s.spaceId, size: s.size, metadata: s.metadata, manifest: s.manifest });
      r.spaceId = spaceId;
      r.stat = { id: stat.id, spaceId: stat.spaceId, size: stat.size, metadata: stat.metadata };
      r.manifestIsString = typeof manifest === "string" && manifest.startsWith("coffer1:");
      r.manifest = manifest;
      r.readFile = T.compare(data, bytes);
      r.byManifest = T.compare(shared.data, bytes);
      r.byManifestStat = { id: shared.stat.id, size: shared.stat.size, metadata: shared.stat.metadata };
      r.mine = mine.filter((s) => s.id === stat.id).map(pick);
      r.inSpace = inSpace.map(pick);
      r.mineAfter = (await client.storage.listFiles()).filter((s) => s.id === stat.id).length;
      r.inSpaceAfter = (await client.storage.listFiles({ spaceId })).length;
      r.readAfter = (await T.settle(client.storage.readFile(spaceId, stat.id))).code;
      r.deletedAgain = await client.storage.deleteFile(spaceId, stat.id);
      return r;
    });
    const metadata = { name: "seed-notes.txt", type: "text/plain" };
    assert.equal(out.manifestIsString, true, "writeFile resolves to a coffer1: manifest");
    assert.match(out.stat.id, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(out.stat, { id: out.stat.id, spaceId: out.spaceId, size: 150_000, metadata });
    assert.equal(out.readFile, "same", "readFile returns the File's bytes");
    assert.equal(out.byManifest, "same", "readByManifest returns the File's bytes");
    assert.deepEqual(out.byManifestStat, { id: null, size: 150_000, metadata });
    const listed = { id: out.stat.id, spaceId: out.spaceId, size: 150_000, metadata, manifest: out.manifest };
    assert.deepEqual(out.mine, [listed], "listFiles() shows the file I shared, with its manifest");
    assert.deepEqual(out.inSpace, [listed], "listFiles({ spaceId }) shows exactly the space's file");
    assert.equal(out.deleted, true);
    assert.equal(out.mineAfter, 0, "listFiles() forgets a deleted file");
    assert.equal(out.inSpaceAfter, 0, "listFiles({ spaceId }) forgets a deleted file");
    assert.equal(out.readAfter, "NotFound");
    assert.equal(out.deletedAgain, false, "deleting again answers that nothing existed");
    assert.deepEqual(page.problems.filter((p) => !/status of 404/.test(p)), []);
  });

  describe("damage in the accelerator's storage", () => {
    const CHUNK = 65_536;
    const SIZE = 3 * CHUNK - 100;
    // Three 4 + 2 chunk refs fit in a manifest (≤ 1,023 characters) only beside
    // short metadata (≤ 19 bytes of JSON); longer, and they move into a chunk table.
    const INLINE = { chunkSize: CHUNK, metadata: {} };
    const PAIRS = [];
    for (let a = 0; a < 6; a++) for (let b = a + 1; b < 6; b++) PAIRS.push([a, b]);
    const HOWS = [["delete", "delete"], ["corrupt", "corrupt"], ["delete", "corrupt"], ["corrupt", "delete"]];
    const written = [];

    // 15 pairs of the 6 shards (4 data + 2 parity) over 5 files of 3 chunks: every
    // pair once — data only, parity only, mixed — deleted, corrupted or both.
    for (let f = 0; f < 5; f++) {
      const plan = [0, 1, 2].map((c) => {
        const p = f * 3 + c;
        const [a, b] = PAIRS[p];
        const [howA, howB] = HOWS[p % 4];
        return [{ shard: a, how: howA }, { shard: b, how: howB }];
      });
      const label = plan
        .map((d, c) => `chunk ${c}: ${d.map(({ shard, how }) => `${how} ${shard < 4 ? "data" : "parity"} ${shard}`).join(" + ")}`)
        .join("; ");
      it(`m = 2 damaged shards in every chunk still read identically (${label})`, async () => {
        const name = `damaged-${f}`;
        const { info } = await writeSeeded(name, SIZE, INLINE);
        assert.deepEqual(
          { depth: info.depth, chunkCount: info.chunkCount, k: info.dataShards, m: info.parityShards, refs: info.refs.length },
          { depth: 0, chunkCount: 3, k: 4, m: 2, refs: 3 },
          "a 3-chunk file lists its chunks in the manifest (depth 0), 4 + 2 shards each",
        );
        assert.deepEqual(await readBack(name), { ok: true, compare: "same" }, "reads before any damage");
        for (const [c, ref] of info.refs.entries()) {
          assert.equal(ref.kind, "data");
          assert.equal(ref.shards.length, 6);
          for (const { shard, how } of plan[c]) await accelerator.stored.damage(ref.shards[shard], how);
        }
        assert.deepEqual(await readBack(name), { ok: true, compare: "same" }, "byte-identical after m shards of every chunk were damaged");
        written.push({ name, info, plan });
      });
    }

    it("m + 1 damaged shards of one chunk → Integrity or NotFound, never bytes", async () => {
      assert.equal(written.length, 5, "the m-damage cases ran first");
      // For each file, one more shard of one chunk (a different chunk each time),
      // deleted or corrupted.
      for (const [i, { name, info, plan }] of written.entries()) {
        const c = i % 3;
        const damaged = new Set(plan[c].map((d) => d.shard));
        const extra = [0, 1, 2, 3, 4, 5].find((s) => !damaged.has(s));
        await accelerator.stored.damage(info.refs[c].shards[extra], i % 2 ? "corrupt" : "delete");
        const read = await readBack(name);
        assert.equal(read.ok, false, `${name}: a read with 3 of 6 shards left must not resolve (got ${JSON.stringify(read)})`);
        assert.ok(["Integrity", "NotFound"].includes(read.code), `${name}: code ${read.code} (${read.message})`);
        assert.equal(read.name, "CofferError");
      }
    });

    it("every shard of a chunk deleted → NotFound", async () => {
      const name = "all-gone";
      const { info } = await writeSeeded(name, SIZE, INLINE);
      assert.equal(info.depth, 0);
      for (const hex of info.refs[1].shards) await accelerator.stored.damage(hex, "delete");
      const read = await readBack(name);
      assert.equal(read.ok, false, JSON.stringify(read));
      assert.equal(read.code, "NotFound", read.message);
    });

    it("a file read through a chunk table (depth ≥ 1) survives m damaged shards of each table node", async () => {
      const name = "tabled";
      const { info } = await writeSeeded(name, 40 * 1024 + 333, { chunkSize: 1024 });
      assert.ok(info.depth >= 1, `expected a chunk table, got depth ${info.depth}`);
      assert.ok(info.refs.length >= 1 && info.refs.every((r) => r.kind === "table"), JSON.stringify(info.refs.map((r) => r.kind)));
      for (const [i, ref] of info.refs.entries()) {
        await accelerator.stored.damage(ref.shards[i % 4], "delete");
        await accelerator.stored.damage(ref.shards[4 + (i % 2)], "corrupt");
      }
      assert.deepEqual(await readBack(name), { ok: true, compare: "same" }, "byte-identical with m shards of each table node damaged");
      // Node 0 lost shards 0 and 4 above; a third one leaves it 3 of 6.
      await accelerator.stored.damage(info.refs[0].shards[1], "corrupt");
      const read = await readBack(name);
      assert.equal(read.ok, false, `a table node with 3 of 6 shards left must not resolve (got ${JSON.stringify(read)})`);
      assert.ok(["Integrity", "NotFound"].includes(read.code), `code ${read.code} (${read.message})`);
    });
  });

  it("deleteFile frees the file's shards at once; its manifest then answers NotFound", async () => {
    const name = "to-delete";
    const { spaceId, id, info } = await writeSeeded(name, 3 * 65_536 - 100, { chunkSize: 65_536, metadata: {} });
    assert.equal(info.depth, 0);
    const addresses = info.refs.flatMap((r) => r.shards);
    assert.equal(addresses.length, 18);
    assert.deepEqual(await present(accelerator.stored, addresses), addresses, "every shard is stored before the delete");
    const out = await page.evaluate(
      async ({ spaceId, id, name }) => {
        const deleted = await owner.storage.deleteFile(spaceId, id);
        const read = await T.settle(owner.storage.readByManifest(window.files.get(name).manifest));
        return { deleted, read: { ok: read.ok, code: read.code } };
      },
      { spaceId, id, name },
    );
    assert.deepEqual(out, { deleted: true, read: { ok: false, code: "NotFound" } });
    assert.deepEqual(await present(accelerator.stored, addresses), [], "no shard of the deleted file is left");
  });

  it("a file over the space's quota → QuotaExceeded: not listed, usage unchanged, its shards collected", async () => {
    const setup = await page.evaluate(async () => {
      const { id: spaceId } = await owner.space.create({ name: "quota" });
      const small = T.bytes(10_000, 5);
      const { stat } = await owner.storage.writeFile({ spaceId, data: small, metadata: { name: "small" } });
      window.quota = { spaceId, small, smallId: stat.id };
      return { spaceId, smallId: stat.id, usage: await owner.space.usage(spaceId) };
    });
    assert.equal(setup.usage.quotaBytes, QUOTA);
    assert.ok(setup.usage.usedBytes > 10_000, `usage counts the small file's shards: ${JSON.stringify(setup.usage)}`);
    const before = await accelerator.stored.shards();

    // 2.5 MB of plaintext is about 3.75 MB of shards (4 data + 2 parity): over 3 MB.
    const out = await page.evaluate(async () => {
      const { spaceId, small, smallId } = window.quota;
      const big = T.bytes(2_500_000, 6);
      const write = await T.settle(owner.storage.writeFile({ spaceId, data: big, metadata: { name: "too-big" } }));
      const inSpace = await owner.storage.listFiles({ spaceId });
      const mine = await owner.storage.listFiles();
      return {
        write: { ok: write.ok, code: write.code, name: write.name },
        listed: inSpace.map((s) => s.id),
        mineBig: mine.filter((s) => s.metadata?.name === "too-big").length,
        usage: await owner.space.usage(spaceId),
        small: T.compare((await owner.storage.readFile(spaceId, smallId)).data, small),
      };
    });
    assert.deepEqual(out.write, { ok: false, code: "QuotaExceeded", name: "CofferError" });
    assert.deepEqual(out.listed, [setup.smallId], "only the small file is in the space");
    assert.equal(out.mineBig, 0, "listFiles() does not show the refused file");
    assert.deepEqual(out.usage, setup.usage, "usage is unchanged");
    assert.equal(out.small, "same");

    const uploaded = [...(await accelerator.stored.shards())].filter((a) => !before.has(a));
    assert.ok(uploaded.length >= 6, `the refused file's shards were uploaded before the commit (${uploaded.length} new)`);
    await untilNone(() => present(accelerator.stored, uploaded), "the refused file's shards are collected after the grace");
    const smallStill = await page.evaluate(async () => {
      const { spaceId, small, smallId } = window.quota;
      return T.compare((await owner.storage.readFile(spaceId, smallId)).data, small);
    });
    assert.equal(smallStill, "same", "the collector left the committed file alone");
  });

  it("an upload aborted from onProgress → Aborted: nothing listed, its shards collected", async () => {
    const before = await accelerator.stored.shards();
    const out = await page.evaluate(async () => {
      const { id: spaceId } = await owner.space.create({ name: "abort" });
      const controller = new AbortController();
      const chunkSize = 65_536;
      let abortedAt = null;
      const write = await T.settle(
        owner.storage.writeFile({
          spaceId,
          data: new Blob([T.bytes(24 * chunkSize, 9)]),
          metadata: { name: "aborted" },
          chunkSize,
          signal: controller.signal,
          onProgress: (done) => {
            if (abortedAt === null && done >= 3 * chunkSize) {
              abortedAt = done;
              controller.abort();
            }
          },
        }),
      );
      return {
        write: { ok: write.ok, code: write.code },
        abortedAt,
        listed: (await owner.storage.listFiles({ spaceId })).length,
        mine: (await owner.storage.listFiles()).filter((s) => s.metadata?.name === "aborted").length,
      };
    });
    assert.ok(out.abortedAt !== null && out.abortedAt < 24 * 65_536, `aborted mid-upload (at ${out.abortedAt})`);
    assert.deepEqual(out.write, { ok: false, code: "Aborted" });
    assert.equal(out.listed, 0, "nothing is listed in the space");
    assert.equal(out.mine, 0, "nothing is listed in listFiles()");
    const uploaded = [...(await accelerator.stored.shards())].filter((a) => !before.has(a));
    assert.ok(uploaded.length >= 18, `shards of the first chunks were stored (${uploaded.length})`);
    // Uploads still in flight at the abort may land a little later: they are new
    // shards too, and must go the same way.
    await untilNone(
      async () => [...(await accelerator.stored.shards())].filter((a) => !before.has(a)),
      "the aborted upload's shards are collected after the grace",
    );
  });

  it("an accelerator killed mid-upload leaves no visible partial file, and its shards are collected", async () => {
    const before = await accelerator.stored.shards();
    const chunkSize = 65_536;
    const chunks = 40;
    // The first 30 shard uploads go through and are answered; the next ones are held
    // in the browser until the accelerator is dead, so the crash lands mid-upload
    // whatever the speed.
    const held = [];
    const answered = [];
    const route = (r) => {
      if (r.request().method() !== "PUT") return r.continue();
      if (answered.length < 30) {
        answered.push(r.continue().then(() => r.request().response()));
        return;
      }
      held.push(r);
    };
    await page.route(`${accelerator.url}/v1/shards/*`, route);
    await page.evaluate(
      async ({ chunkSize, chunks }) => {
        const { id: spaceId } = await owner.space.create({ name: "crash" });
        window.crash = { spaceId, progress: 0 };
        window.crash.write = T.settle(
          owner.storage.writeFile({
            spaceId,
            data: new Blob([T.bytes(chunks * chunkSize, 11)]),
            metadata: { name: "crashed" },
            chunkSize,
            onProgress: (done) => (window.crash.progress = done),
          }),
        );
      },
      { chunkSize, chunks },
    );
    await untilNone(async () => (held.length > 0 ? [] : ["nothing held yet"]), "uploads reach the held ones");
    // Answered means stored: on a slow run, uploads let through were still on their way.
    await Promise.all(answered);
    await accelerator.kill("SIGKILL");
    await page.unroute(`${accelerator.url}/v1/shards/*`, route);
    await Promise.all(held.map((r) => r.continue().catch(() => {})));
    // The write retries, then fails: the accelerator stays down until it has.
    const write = await page.evaluate(async () => {
      const r = await window.crash.write;
      return { ok: r.ok, code: r.code, progress: window.crash.progress };
    });
    assert.equal(write.ok, false, "the write cannot finish while the accelerator is down");
    assert.equal(write.code, "Network", JSON.stringify(write));
    assert.ok(write.progress < chunks * chunkSize, "it was killed mid-upload");
    const uploaded = [...(await accelerator.stored.shards())].filter((a) => !before.has(a));
    assert.ok(uploaded.length >= 30, `the uploads answered before the crash are stored (${uploaded.length})`);

    await accelerator.restart();
    const out = await page.evaluate(async () => ({
      listed: (await owner.storage.listFiles({ spaceId: window.crash.spaceId })).length,
      mine: (await owner.storage.listFiles()).filter((s) => s.metadata?.name === "crashed").length,
    }));
    assert.deepEqual(out, { listed: 0, mine: 0 }, "no partial file is visible after the restart");
    assert.deepEqual(await accelerator.stored.halfWritten(), [], "no half-written shard is left behind");
    await untilNone(
      async () => [...(await accelerator.stored.shards())].filter((a) => !before.has(a)),
      "the crashed upload's shards are collected after the grace",
    );
  });

  it("no file bytes, file name or space name at rest (a plaintext kv value is found by the same search)", async () => {
    const markers = { bytes: `bytes-${randomHex(16)}`, name: `name-${randomHex(16)}`, space: `space-${randomHex(16)}`, plain: `plain-${randomHex(16)}` };
    const out = await page.evaluate(async (markers) => {
      const { id: spaceId } = await owner.space.create({ name: markers.space });
      const text = `${markers.bytes}\n`.repeat(64);
      const file = new File([text], `${markers.name}.txt`, { type: "text/plain" });
      const { stat, manifest } = await owner.storage.writeFile({ spaceId, data: file, metadata: { name: file.name, type: file.type } });
      await owner.kv.set("notes", "plain", { text: markers.plain }, { encrypt: false });
      const read = await owner.storage.readByManifest(manifest);
      const spaces = await owner.space.list();
      return {
        roundTrip: new TextDecoder().decode(read.data) === text && stat.metadata.name === file.name,
        spaceName: spaces.find((s) => s.id === spaceId)?.name,
      };
    }, markers);
    assert.deepEqual(out, { roundTrip: true, spaceName: markers.space }, "the SDK stored and reads back file, name and space");
    const { stored } = accelerator;
    assert.ok((await stored.shards()).size > 0, "there are shards to search");
    assert.ok((await containing(stored, markers.plain)).length > 0, "the search finds a value stored with encrypt: false");
    assert.deepEqual(await containing(stored, markers.bytes), [], "the file's bytes are nowhere at rest");
    assert.deepEqual(await containing(stored, markers.name), [], "the file's name is nowhere at rest");
    assert.deepEqual(await containing(stored, markers.space), [], "the space's name is nowhere at rest");
  });

  it("a member who joined by invite reads by id; a non-member is Forbidden; anyone reads by manifest", async () => {
    const out = await page.evaluate(async () => {
      const bytes = T.bytes(200_000, 13);
      const { id: spaceId } = await owner.space.create({ name: "shared" });
      const { stat, manifest } = await owner.storage.writeFile({ spaceId, data: bytes, metadata: { name: "shared.bin" } });
      const member = await T.signUp("member");
      const outsider = await T.signUp("outsider");
      const anonymous = await coffer.Client.anonymous({ url: location.origin });
      const token = await owner.space.invite(spaceId);
      const joined = await member.space.join(token);

      const memberRead = await member.storage.readFile(spaceId, stat.id);
      const memberList = await member.storage.listFiles({ spaceId });
      const outsiderRead = await T.settle(outsider.storage.readFile(spaceId, stat.id));
      const outsiderList = await T.settle(outsider.storage.listFiles({ spaceId }));
      const outsiderByManifest = await outsider.storage.readByManifest(manifest);
      const anonymousByManifest = await anonymous.storage.readByManifest(manifest);
      const readerDelete = await T.settle(member.storage.deleteFile(spaceId, stat.id));
      const stillThere = T.compare((await owner.storage.readFile(spaceId, stat.id)).data, bytes);
      return {
        joined: { id: joined.id === spaceId, role: joined.role, name: joined.name },
        memberRead: T.compare(memberRead.data, bytes),
        memberStat: { id: memberRead.stat.id === stat.id, metadata: memberRead.stat.metadata },
        memberList: memberList.map((s) => s.id === stat.id),
        outsiderRead: outsiderRead.ok ? "resolved" : outsiderRead.code,
        outsiderList: outsiderList.ok ? "resolved" : outsiderList.code,
        outsiderByManifest: T.compare(outsiderByManifest.data, bytes),
        anonymousByManifest: T.compare(anonymousByManifest.data, bytes),
        anonymousStat: anonymousByManifest.stat.metadata,
        readerDelete: readerDelete.ok ? "resolved" : readerDelete.code,
        stillThere,
      };
    });
    assert.deepEqual(out, {
      joined: { id: true, role: "reader", name: "shared" },
      memberRead: "same",
      memberStat: { id: true, metadata: { name: "shared.bin" } },
      memberList: [true],
      outsiderRead: "Forbidden",
      outsiderList: "Forbidden",
      outsiderByManifest: "same",
      anonymousByManifest: "same",
      anonymousStat: { name: "shared.bin" },
      readerDelete: "Forbidden",
      stillThere: "same",
    });
  });
});
