// Range reads (`readFile`/`readByManifest` with `{ offset, length }`), through the
// real package in Chromium against the shared accelerator, behind a proxy that
// passes everything through and notes which shards each read asks for:
//
// - ranges at chunk boundaries, inside one chunk, across two, across the last
//   chunk and past the end, in every output kind, checked byte for byte;
// - only the chunks that hold the range are fetched (a file the manifest lists
//   directly: the addresses asked for name the chunks), and a file behind a
//   two-level chunk table fetches one table node per level, not the whole table;
// - an empty range fetches nothing; an offset past the end, or one that is not a
//   whole number, is refused with `InvalidInput`;
// - `stat` is the whole file's; progress counts the range.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { blankPageOnOrigin, closeQuietly, cofferUrl, launch, newPage } from "./browser.mjs";
import { startHostile } from "./hostile.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

const CHUNK = 64 * 1024;
/** Six chunks, the last one short. */
const SIZE = 5 * CHUNK + 1000;

/** Runs in the page: reads a range in `as` and returns what came back, compared. */
async function readRange({ offset, length, as, byManifest }) {
  const progress = [];
  const options = { offset, length, as, onProgress: (done, total) => progress.push([done, total]) };
  const { data, stat } = await (byManifest
    ? anonymous.storage.readByManifest(file.manifest, options)
    : owner.storage.readFile(spaceId, file.stat.id, options));
  let bytes = data;
  if (as === "blob") bytes = new Uint8Array(await data.arrayBuffer());
  if (as === "stream") bytes = new Uint8Array(await new Response(data).arrayBuffer());
  const end = Math.min(offset + (length ?? Infinity), file.bytes.length);
  return {
    compared: T.compare(bytes, file.bytes.subarray(offset, end)),
    length: bytes.length,
    statSize: stat.size,
    lastProgress: progress.at(-1),
  };
}

describe("range reads", { timeout: 300_000 }, () => {
  let browser;
  let proxy;
  let page;
  /** Every shard address a read asked for, in order. */
  let asked = [];

  before(async () => {
    proxy = await startHostile(cofferUrl());
    proxy.lie("POST", /^\/v1\/shards\/fetch$/, ({ json }) => {
      asked.push(...(json?.addresses ?? []));
      return "pass";
    });
    browser = await launch();
    ({ page } = await newPage(browser));
    await blankPageOnOrigin(page);
    await page.evaluate(installPageHelpers);
    await page.evaluate(
      async ({ url, size, chunk }) => {
        const username = `ranges-${crypto.randomUUID().slice(0, 12)}`;
        window.owner = await coffer.Client.signUp({ url, username, password: `pw-${username}`, remember: "none" });
        window.anonymous = await coffer.Client.anonymous({ url });
        window.spaceId = (await owner.space.create({ name: "ranges" })).id;
        const bytes = T.bytes(size, 7);
        // One data shard and one parity shard per chunk keep the six refs in the
        // manifest itself, so its addresses name every chunk.
        const written = await owner.storage.writeFile({ spaceId, data: bytes, chunkSize: chunk, dataShards: 1, parityShards: 1 });
        window.file = { ...written, bytes };
        window.chunkOf = new Map();
        const { depth, refs } = coffer.inspectManifest(written.manifest);
        if (depth !== 0) throw new Error(`the manifest has a chunk table (depth ${depth})`);
        refs.forEach((ref) => {
          for (const address of ref.shards) chunkOf.set(address, ref.index);
        });
      },
      { url: proxy.url, size: SIZE, chunk: CHUNK },
    );
  });

  after(async () => {
    await closeQuietly(browser);
    await proxy?.stop();
  });

  /** Reads a range and returns the result with the chunk indices its fetches named. */
  async function read(range) {
    asked = [];
    const out = await page.evaluate(readRange, range);
    const chunks = await page.evaluate((asked) => [...new Set(asked.map((a) => chunkOf.get(a) ?? a))], asked);
    return { ...out, chunks };
  }

  const cases = [
    ["the first byte", 0, 1],
    ["one whole chunk, boundary to boundary", CHUNK, CHUNK],
    ["across one boundary", CHUNK - 3, 6],
    ["from a boundary to the end", 2 * CHUNK, undefined],
    ["inside a middle chunk", 3 * CHUNK + 100, 200],
    ["exactly the last, short chunk", 5 * CHUNK, 1000],
    ["across into the last chunk", 5 * CHUNK - 10, 20],
    ["across the last chunk and past the end", 4 * CHUNK + 5, 3 * CHUNK],
    ["the last byte", SIZE - 1, undefined],
    ["all of it", 0, undefined],
  ];
  for (const [label, offset, length] of cases) {
    it(`${label}: bytes ${offset}…${length ?? "end"}, in every output kind, fetching only its chunks`, async () => {
      const end = Math.min(offset + (length ?? Infinity), SIZE);
      const expected = [];
      for (let c = Math.floor(offset / CHUNK); c <= Math.floor((end - 1) / CHUNK); c++) expected.push(c);
      for (const as of ["bytes", "blob", "stream"]) {
        const out = await read({ offset, length, as });
        assert.equal(out.compared, "same", `${as}: ${out.compared}`);
        assert.equal(out.statSize, SIZE, "stat is the whole file's");
        assert.deepEqual(out.lastProgress, [end - offset, end - offset], `${as}: progress counts the range`);
        assert.deepEqual(out.chunks.sort((a, b) => a - b), expected, `${as}: the chunks fetched`);
      }
    });
  }

  it("by manifest too, with no account", async () => {
    const out = await read({ offset: CHUNK + 1, length: CHUNK, as: "bytes", byManifest: true });
    assert.equal(out.compared, "same");
    assert.deepEqual(out.chunks.sort(), [1, 2]);
  });

  it("an empty range, at the end or of length 0, fetches nothing", async () => {
    for (const [offset, length] of [
      [SIZE, undefined],
      [SIZE, 10],
      [CHUNK, 0],
    ]) {
      for (const as of ["bytes", "blob", "stream"]) {
        const out = await read({ offset, length, as });
        assert.equal(out.compared, "same");
        assert.equal(out.length, 0);
        assert.deepEqual(out.chunks, [], `${offset}+${length} as ${as} fetched nothing`);
      }
    }
  });

  it("an offset past the end, or a range that is not whole numbers, is refused with InvalidInput", async () => {
    const refusals = await page.evaluate(async (size) => {
      const read = (options) => T.settle(owner.storage.readFile(spaceId, file.stat.id, options));
      return {
        past: await read({ offset: size + 1 }),
        negative: await read({ offset: -1 }),
        fraction: await read({ offset: 0, length: 1.5 }),
        text: await read({ offset: "10" }),
      };
    }, SIZE);
    for (const [what, outcome] of Object.entries(refusals)) {
      assert.equal(outcome.ok, false, what);
      assert.equal(outcome.code, "InvalidInput", `${what}: ${outcome.message}`);
    }
    assert.match(refusals.past.message, new RegExp(`offset ${SIZE + 1} is past the end of this ${SIZE}-byte file`));
    assert.match(refusals.fraction.message, /length/);
  });

  it("a file behind a two-level chunk table: the right bytes, one table node per level fetched", async () => {
    // 1 KiB chunks with 2 + 1 shards: 7 refs per table node, so 61 chunks take
    // two levels of table below the manifest.
    const out = await page.evaluate(async () => {
      const bytes = T.bytes(60 * 1024 + 17, 11);
      const written = await owner.storage.writeFile({ spaceId, data: bytes, chunkSize: 1024, dataShards: 2, parityShards: 1 });
      window.deep = { ...written, bytes };
      return coffer.inspectManifest(written.manifest).depth;
    });
    assert.ok(out >= 2, `depth ${out}`);
    for (const [offset, length] of [
      [0, 10],
      [7 * 1024 - 5, 10], // across two level-1 nodes
      [49 * 1024 - 5, 10], // across two level-2 nodes
      [60 * 1024 - 3, 100], // across into the last, short chunk, and past the end
    ]) {
      asked = [];
      const compared = await page.evaluate(
        async ({ offset, length }) => {
          const { data } = await owner.storage.readFile(spaceId, deep.stat.id, { offset, length });
          const end = Math.min(offset + length, deep.bytes.length);
          return T.compare(data, deep.bytes.subarray(offset, end));
        },
        { offset, length },
      );
      assert.equal(compared, "same", `${offset}+${length}`);
      // Two data chunks and, on each side, at most one node per level: 2 shards each.
      const fetches = asked.length / 2;
      assert.ok(fetches <= 2 + 2 * out, `${offset}+${length}: ${fetches} chunks and nodes fetched`);
    }
  });
});
