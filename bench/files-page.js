// The browser side of bench/files.mjs: runs one phase, on the accelerator's origin,
// and reports its figures to the node script (?report=…). Parameters arrive as JSON
// in ?p=…: { phase, url, … }. Times are milliseconds or seconds as named.

import { CHUNK, K, M, MIB, TAG, log, measured, median, p, pool, post, randomBytes, seconds } from "./page.js";

/**
 * Main-thread tasks over 50 ms from now until the returned function is called, and
 * for the longest one what ran in it: the scripts that Chromium's long-animation-
 * frame entries attribute it to (entry points, not the wasm inside them).
 */
function watchLongTasks() {
  const seen = [];
  const frames = [];
  const tasks = new PerformanceObserver((list) => seen.push(...list.getEntries()));
  tasks.observe({ type: "longtask" });
  const loaf = new PerformanceObserver((list) => frames.push(...list.getEntries()));
  try { loaf.observe({ type: "long-animation-frame" }); } catch { /* not in this browser */ }
  return async () => {
    await new Promise((ok) => setTimeout(ok, 100)); // let the last entries arrive
    seen.push(...tasks.takeRecords());
    frames.push(...loaf.takeRecords());
    tasks.disconnect();
    loaf.disconnect();
    const longest = seen.reduce((a, e) => (!a || e.duration > a.duration ? e : a), null);
    const frame = longest && frames.find((f) => f.startTime <= longest.startTime + 1 && f.startTime + f.duration >= longest.startTime + longest.duration - 1);
    const scripts = (frame?.scripts ?? []).filter((s) => s.duration >= 5)
      .map((s) => `${s.invokerType} ${s.invoker} ${Math.round(s.duration)} ms`);
    return { count: seen.length, max: longest?.duration ?? 0, total: seen.reduce((a, e) => a + e.duration, 0), scripts };
  };
}

/** The peak of a wasm memory, sampled every 20 ms and whenever `look` is called. */
function watchMemory(memory) {
  let peak = memory.buffer.byteLength;
  const look = () => { peak = Math.max(peak, memory.buffer.byteLength); };
  const timer = setInterval(look, 20);
  return { look, stop: () => { clearInterval(timer); look(); return peak; } };
}

/** A Blob of `n` bytes made of one repeated 4 MiB random part, itself a Blob: the
 * browser keeps the part once and the file as references to it (built from the
 * bytes each time, two 256 MiB files alive at once were more than Chromium here
 * would read back: "NotReadableError"). JS never holds the file. */
let blobPart;
let partBlob;
function fileBlob(n) {
  blobPart ??= randomBytes(CHUNK);
  partBlob ??= new Blob([blobPart]);
  const parts = [];
  for (let at = 0; at < n; at += CHUNK) parts.push(n - at >= CHUNK ? partBlob : partBlob.slice(0, n - at));
  return new Blob(parts, { type: "application/octet-stream" });
}

/**
 * A Blob of `n` bytes whose slices are made when asked for (each a real Blob of the
 * repeated part), like a File on disk: Chromium here refuses to read a Blob built in
 * memory much over 256 MiB ("NotReadableError"), so the 1 GiB file is this one.
 */
class GeneratedBlob extends Blob {
  #size;
  constructor(n) { super([]); this.#size = n; }
  get size() { return this.#size; }
  get type() { return "application/octet-stream"; }
  slice(start = 0, end = this.#size) {
    blobPart ??= randomBytes(CHUNK);
    const parts = [];
    for (let at = Math.max(0, start); at < Math.min(end, this.#size);) {
      const offset = at % blobPart.length;
      const take = Math.min(blobPart.length - offset, Math.min(end, this.#size) - at);
      parts.push(blobPart.subarray(offset, offset + take));
      at += take;
    }
    return new Blob(parts);
  }
}

async function drain(stream) {
  const reader = stream.getReader();
  let got = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) got += r.value.length;
  return got;
}

async function ok(response) {
  if (!response.ok) throw new Error(`${response.url}: ${response.status} ${await response.text()}`);
  return response.arrayBuffer();
}

// ---------------------------------------------------------------------------------
// Per-chunk stages: the bench build's wasm beside WebCrypto on the same buffers.
async function stages({ runs }) {
  const { default: init, BenchChunk } = await import("/bench-pkg/coffer.js");
  await init();
  const plain = randomBytes(CHUNK);
  const raw = randomBytes(32);
  const chunk = new BenchChunk(plain, raw, K, M);
  const gcm = { name: "AES-GCM", iv: new Uint8Array(12), additionalData: chunk.aad(), tagLength: 128 };
  // Imported per chunk, as the SDK does (every chunk has its own key).
  const key = (usage) => crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, [usage]);
  const sealed = chunk.sealed();
  const batch = chunk.batch();
  const webSealed = new Uint8Array(await crypto.subtle.encrypt(gcm, await key("encrypt"), plain));
  const time = async (f) => {
    await f(); await f();
    const ms = [];
    for (let i = 0; i < runs; i++) { const t = performance.now(); await f(); ms.push(performance.now() - t); }
    return median(ms);
  };
  const out = {
    same: webSealed.length === sealed.length && webSealed.every((b, i) => b === sealed[i]),
    plainBytes: CHUNK,
    sealedBytes: sealed.length,
    shardBytes: chunk.shardBytes(),
    wasm: {
      seal: await time(() => chunk.seal()),
      open: await time(() => chunk.open()),
      encode: await time(() => chunk.encode()),
      hash: await time(() => chunk.hash()),
      pipeline: await time(() => chunk.pipeline()),
      rebuild: await time(() => chunk.rebuild()),
      readPipeline: await time(() => chunk.readPipeline()),
    },
    web: {
      seal: await time(async () => crypto.subtle.encrypt(gcm, await key("encrypt"), plain)),
      open: await time(async () => crypto.subtle.decrypt(gcm, await key("decrypt"), sealed)),
      // storage/write.rs per chunk: WebCrypto seal, the seal copied into wasm,
      // encode, address, each shard copied out for fetch.
      pipeline: await time(async () => {
        const s = new Uint8Array(await crypto.subtle.encrypt(gcm, await key("encrypt"), plain));
        chunk.encodeAddress(s);
        chunk.copyShardsOut();
      }),
      // storage/read.rs per chunk once its batch has arrived: copied into wasm,
      // split, checked, joined, copied out, WebCrypto open.
      readPipeline: await time(async () => {
        const s = chunk.fetchPath(batch);
        await crypto.subtle.decrypt(gcm, await key("decrypt"), s);
      }),
    },
  };
  chunk.free();
  return out;
}

// ---------------------------------------------------------------------------------
// writeFile / readFile beside plain fetch moving the same wire bytes.
async function e2e({ url, account, sizesMib, runs, concurrency: C, inline = false }) {
  // `inline`: no Worker, so the SDK seals and opens on the page (as before workers).
  if (inline) globalThis.Worker = undefined;
  const sdk = await import("/pkg/coffer.js");
  const bench = await import("/bench-pkg/coffer.js");
  await sdk.default();
  await bench.default();
  // remember: "session", so the upload floor can borrow the session token.
  const client = await sdk.Client.signUp({ url, ...account, remember: "session" });
  const token = JSON.parse(sessionStorage.getItem(`coffer:session:${url}`)).token;
  const { id: spaceId } = await client.space.create({ name: "bench" });

  const results = [];
  for (const mib of sizesMib) {
    const bytes = mib * MIB;
    const chunks = Math.max(1, Math.ceil(bytes / CHUNK));
    const shardLen = Math.ceil((CHUNK + TAG) / K); // every chunk full size: true for these sizes
    const up = chunks * (K + M);
    const batch = K * (4 + shardLen); // one chunk's data shards, framed as /v1/shards/fetch answers
    const body = randomBytes(shardLen);
    const view = new DataView(body.buffer);
    for (let run = 0; run < runs; run++) {
      await log(`${mib} MiB, run ${run + 1} of ${runs}`);
      const out = { upWire: up * shardLen, downWire: chunks * batch, chunks, shardLen };

      // Floor A: the shards' bytes POSTed to a sink that discards them.
      out.upSink = await measured(`${mib} upSink`, () => pool(up, C, () => fetch(`${url}/v1/bench/sink`, { method: "POST", body }).then(ok)));

      // Floor B: real shards PUT to the real route (hashed, written, fsynced).
      // Distinct bodies (a counter and a run tag in the first bytes), addresses
      // computed before the clock starts; fetch copies the body when called.
      const tag = crypto.getRandomValues(new Uint32Array(1))[0];
      const stamp = (i) => { view.setUint32(0, i); view.setUint32(4, tag); };
      const addresses = Array.from({ length: up }, (_, i) => { stamp(i); return bench.shardAddress(body); });
      const headers = { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" };
      out.upShards = await measured(`${mib} upShards`, () => pool(up, C, (i) => {
        stamp(i);
        return fetch(`${url}/v1/shards/${addresses[i]}`, { method: "PUT", body, headers }).then(ok);
      }));

      // The SDK: writeFile of a generated Blob, then readFile as a stream, discarded.
      // The Blob is built (and readable) before the clock starts.
      const data = fileBlob(bytes);
      await data.slice(bytes - 1).arrayBuffer();
      // Bytes the SDK copied (src/copies.rs): the page's instance and every worker's.
      const copied = () => sdk.copiedBytes() + (sdk.fileWorkerStats()?.copiedBytes ?? 0);
      let stop = watchLongTasks();
      let written;
      let before = copied();
      out.write = await measured(`${mib} ${inline ? "inlineWrite" : "write"}`, async () => {
        written = await client.storage.writeFile({ spaceId, data, metadata: { name: "bench.bin" } });
      });
      out.writeCopied = copied() - before;
      out.writeLong = await stop();
      stop = watchLongTasks();
      let got = 0;
      before = copied();
      out.read = await measured(`${mib} ${inline ? "inlineRead" : "read"}`, async () => {
        const { data } = await client.storage.readFile(spaceId, written.stat.id, { as: "stream" });
        got = await drain(data);
      });
      out.readCopied = copied() - before;
      out.readLong = await stop();
      out.workers = sdk.fileWorkerStats()?.started ?? 0;
      if (got !== bytes) throw new Error(`read ${got} bytes of ${bytes}`);

      // Floor C: the bytes a read fetches (data shards only), from a source route,
      // in requests of the SDK's batch size.
      out.downSource = await measured(`${mib} downSource`, () => pool(chunks, C, () => fetch(`${url}/v1/bench/source?bytes=${batch}`).then(ok)));
      // Floor D: floor B's data shards through the real batch route, K per request.
      out.downShards = await measured(`${mib} downShards`, () => pool(chunks, C, (c) => fetch(`${url}/v1/shards/fetch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ addresses: addresses.slice(c * (K + M), c * (K + M) + K) }),
      }).then(ok)));

      await client.storage.deleteFile(spaceId, written.stat.id); // frees the disk
      results.push({ mib, ...out });
    }
  }
  await client.signOut();
  return { spaceId, results };
}

// ---------------------------------------------------------------------------------
// Peak wasm memory: a fresh page (so a fresh wasm memory, which only ever grows)
// for the write, and another for the read.
async function bigWrite({ url, account, spaceId, mib }) {
  const { default: init, Client, fileWorkerStats } = await import("/pkg/coffer.js");
  const { memory } = await init();
  const client = await Client.signIn({ url, ...account, remember: "none" });
  const start = memory.buffer.byteLength;
  const data = new GeneratedBlob(mib * MIB);
  const watch = watchMemory(memory);
  let written;
  const s = await seconds(async () => {
    written = await client.storage.writeFile({ spaceId, data, onProgress: watch.look });
  });
  return { start, peak: watch.stop(), workers: fileWorkerStats(), seconds: s, manifest: written.manifest, id: written.stat.id };
}

async function bigRead({ url, account, spaceId, mib, manifest, id }) {
  const { default: init, Client, fileWorkerStats } = await import("/pkg/coffer.js");
  const { memory } = await init();
  const reader = await Client.anonymous({ url });
  const start = memory.buffer.byteLength;
  const watch = watchMemory(memory);
  let got = 0;
  const s = await seconds(async () => {
    const { data } = await reader.storage.readByManifest(manifest, { as: "stream", onProgress: watch.look });
    got = await drain(data);
  });
  const peak = watch.stop();
  const workers = fileWorkerStats();
  if (got !== mib * MIB) throw new Error(`read ${got} bytes of ${mib * MIB}`);
  // Measured; now free the disk.
  const client = await Client.signIn({ url, ...account, remember: "none" });
  await client.storage.deleteFile(spaceId, id);
  return { start, peak, workers, seconds: s };
}

const phases = { stages, e2e, bigWrite, bigRead };
try {
  const out = await phases[p.phase](p);
  await post("/result", JSON.stringify(out));
} catch (e) {
  await post("/error", `${e?.code ? `[${e.code}] ` : ""}${e?.stack ?? e}`);
}
