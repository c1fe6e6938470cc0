// The browser side of bench/s3.mjs: writeFile / readFile through an accelerator on
// PostgreSQL + S3, beside plain PUT / GET of the same bytes straight to its S3
// server, and reports the times to the node script (?report=…). Parameters arrive
// as JSON in ?p=…: { url, s3: { endpoint, bucket }, account, mib, runs, concurrency }.
// Times are seconds.

import { CHUNK, K, M, MIB, TAG, log, measured, p, pool, post, randomBytes } from "./page.js";

// moto checks no signature, only that a request says it is signed (tests/e2e/stored.mjs).
const SIGNED = { authorization: "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0" };

async function ok(response) {
  if (!response.ok) throw new Error(`${response.url}: ${response.status} ${await response.text()}`);
  return response.arrayBuffer();
}

async function drain(stream) {
  const reader = stream.getReader();
  let got = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) got += r.value.length;
  return got;
}

/** A Blob of `n` bytes made of one repeated 4 MiB random part. */
function fileBlob(n) {
  const part = randomBytes(CHUNK);
  const parts = [];
  for (let at = 0; at < n; at += part.length) parts.push(part.subarray(0, Math.min(part.length, n - at)));
  return new Blob(parts, { type: "application/octet-stream" });
}

async function run({ url, s3, account, mib, runs, concurrency: C }) {
  const { default: init, Client } = await import("/pkg/coffer.js");
  await init();
  const client = await Client.signUp({ url, ...account, remember: "none" });
  const { id: spaceId } = await client.space.create({ name: "bench" });

  const bytes = mib * MIB;
  const chunks = Math.ceil(bytes / CHUNK);
  const shardLen = Math.ceil((CHUNK + TAG) / K); // every chunk full size: mib is a multiple of 4
  const up = chunks * (K + M); // objects a write stores: data and parity shards
  const down = chunks * K; // objects a read fetches: the data shards
  const body = randomBytes(shardLen);
  const results = [];
  for (let i = 0; i < runs; i++) {
    await log(`${mib} MiB, run ${i + 1} of ${runs}`);
    const out = { chunks, shardLen, upWire: up * shardLen, downWire: down * shardLen };
    const prefix = `${s3.endpoint}/${s3.bucket}/bench-floor/${crypto.randomUUID()}`;

    // Floor: the shards' bytes PUT straight to S3, as public-read objects so that
    // the GETs below are simple requests (no CORS preflight, as the SDK's batch
    // reads have none after the first).
    const putHeaders = { "content-type": "application/octet-stream", "x-amz-acl": "public-read" };
    out.put = await measured("put", () => pool(up, C, (j) => fetch(`${prefix}/${j}`, { method: "PUT", body, headers: putHeaders }).then(ok)));

    const data = fileBlob(bytes);
    await data.slice(bytes - 1).arrayBuffer(); // readable before the clock starts
    let written;
    out.write = await measured("write", async () => {
      written = await client.storage.writeFile({ spaceId, data, metadata: { name: "bench.bin" } });
    });
    let got = 0;
    out.read = await measured("read", async () => {
      const { data } = await client.storage.readFile(spaceId, written.stat.id, { as: "stream" });
      got = await drain(data);
    });
    if (got !== bytes) throw new Error(`read ${got} bytes of ${bytes}`);

    // Floor: as many of those objects as a read fetches, straight from S3.
    let fetched = 0;
    out.get = await measured("get", () => pool(down, C, (j) => fetch(`${prefix}/${j}`).then(ok).then((b) => { fetched += b.byteLength; })));
    if (fetched !== out.downWire) throw new Error(`got ${fetched} bytes of ${out.downWire} from S3`);

    // Not measured: free what this run stored.
    await client.storage.deleteFile(spaceId, written.stat.id);
    await pool(up, C, (j) => fetch(`${prefix}/${j}`, { method: "DELETE", headers: SIGNED }).then(ok));
    results.push(out);
  }
  await client.signOut();
  return results;
}

try {
  await post("/result", JSON.stringify(await run(p)));
} catch (e) {
  await post("/error", `${e?.code ? `[${e.code}] ` : ""}${e?.stack ?? e}`);
}
