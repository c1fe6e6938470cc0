// What an accelerator keeps, read (and damaged) from outside it, on either backend:
//
// - embedded: the files under its data directory, raw bytes (database, WAL and
//   shared-memory files included), shards at `shards/<first two hex>/<hex>`;
// - PostgreSQL + S3: every table's rows as PostgreSQL's binary COPY gives them (raw
//   bytes, no hex or escapes), and every object in the bucket (on moto).
//
// The at-rest searches and the files tests use one interface for both.
import { execFileSync } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Every regular file under `dir`, recursively. */
export async function filesUnder(dir) {
  const files = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await filesUnder(path)));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}

/** Damages `bytes` in place, keeping the length, so only the hash can tell. */
function corrupt(bytes) {
  for (let i = 0; i < bytes.length; i += 61) bytes[i] ^= 0x5a;
  bytes[bytes.length - 1] ^= 0xff;
  return bytes;
}

const ADDRESS = /[0-9a-f]{64}$/;

// moto checks no signature, only that a request says it is signed: an anonymous
// request may list and write, but not read or delete, a private object.
const SIGNED = {
  authorization: "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
};

/** An embedded accelerator's data directory. */
class InDirectory {
  constructor(dataDir) {
    this.dataDir = dataDir;
    this.shardRoot = join(dataDir, "shards");
  }

  describe() {
    return this.dataDir;
  }

  /** Every stored thing as `{ name, bytes }`. */
  async *blobs() {
    for (const path of await filesUnder(this.dataDir)) {
      try {
        yield { name: path, bytes: await readFile(path) };
      } catch (e) {
        if (e.code !== "ENOENT") throw e; // e.g. a journal removed while we walked
      }
    }
  }

  /** The address of every stored shard (fan-out folders only; `tmp/` excluded). */
  async shards() {
    const found = new Set();
    for (const folder of await readdir(this.shardRoot)) {
      if (!/^[0-9a-f]{2}$/.test(folder)) continue;
      for (const name of await readdir(join(this.shardRoot, folder)).catch(() => [])) {
        if (ADDRESS.test(name) && name.length === 64) found.add(name);
      }
    }
    return found;
  }

  /** Half-written shards left behind (a directory's temp files). */
  async halfWritten() {
    return readdir(join(this.shardRoot, "tmp"));
  }

  /**
   * `"delete"` removes a shard, `"corrupt"` overwrites bytes in place. Throws if the
   * shard is not where the layout says, so a wrong path cannot pass for damage.
   */
  async damage(hex, how) {
    const path = join(this.shardRoot, hex.slice(0, 2), hex);
    const bytes = await readFile(path);
    if (how === "delete") await rm(path);
    else await writeFile(path, corrupt(bytes));
  }
}

/** A PostgreSQL database (by URL) and an S3 bucket on moto. */
class InPostgresAndS3 {
  constructor({ databaseUrl, endpoint, bucket, prefix = "" }) {
    Object.assign(this, { databaseUrl, endpoint, bucket, prefix: prefix.replace(/^\/+|\/+$/g, "") });
  }

  describe() {
    return `${this.databaseUrl.replace(/\/\/[^@]*@/, "//")} and s3://${this.bucket}/${this.prefix}`;
  }

  psql(args, encoding = "utf8") {
    return execFileSync("psql", ["-X", "-q", this.databaseUrl, ...args], { encoding, maxBuffer: 1 << 30 });
  }

  /** Every object under the prefix: [{ key, size }]. */
  async objects() {
    const objects = [];
    let token = null;
    do {
      const query = new URLSearchParams({ "list-type": "2", ...(this.prefix ? { prefix: `${this.prefix}/` } : {}), ...(token ? { "continuation-token": token } : {}) });
      const answer = await this.s3(`?${query}`);
      if (!answer.ok) throw new Error(`listing s3://${this.bucket}: HTTP ${answer.status}`);
      const xml = await answer.text();
      for (const [, body] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        objects.push({ key: /<Key>([^<]*)<\/Key>/.exec(body)[1], size: Number(/<Size>(\d+)<\/Size>/.exec(body)[1]) });
      }
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? /<NextContinuationToken>([^<]*)</.exec(xml)[1] : null;
    } while (token);
    return objects;
  }

  /** A request to the bucket: `path` is `/key` or `?query`. */
  s3(path, init = {}) {
    return fetch(`${this.endpoint}/${this.bucket}${path}`, { ...init, headers: { ...SIGNED, ...init.headers } });
  }

  async *blobs() {
    const tables = this.psql(["-At", "-c", "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"])
      .split("\n")
      .filter(Boolean);
    if (tables.length === 0) throw new Error(`no tables in ${this.describe()}`);
    for (const table of tables) {
      const rows = this.psql(["-c", `\\copy (SELECT * FROM "${table}") TO STDOUT WITH (FORMAT binary)`], "buffer");
      yield { name: `table ${table}`, bytes: rows };
    }
    for (const { key } of await this.objects()) {
      const answer = await this.s3(`/${key}`);
      if (answer.status === 404) continue; // freed while we walked
      if (!answer.ok) throw new Error(`reading ${key}: HTTP ${answer.status}`);
      yield { name: `s3 ${key}`, bytes: Buffer.from(await answer.arrayBuffer()) };
    }
  }

  async shards() {
    return new Set((await this.objects()).map((o) => o.key).filter((key) => ADDRESS.test(key)).map((key) => key.slice(-64)));
  }

  /** An object store writes whole objects or none. */
  async halfWritten() {
    return [];
  }

  async damage(hex, how) {
    const key = (await this.objects()).map((o) => o.key).find((k) => k.endsWith(hex));
    if (!key) throw new Error(`shard ${hex} is not in the bucket`);
    if (how === "delete") {
      const answer = await this.s3(`/${key}`, { method: "DELETE" });
      if (!answer.ok) throw new Error(`deleting ${key}: HTTP ${answer.status}`);
    } else {
      const bytes = Buffer.from(await (await this.s3(`/${key}`)).arrayBuffer());
      const answer = await this.s3(`/${key}`, { method: "PUT", body: corrupt(bytes) });
      if (!answer.ok) throw new Error(`overwriting ${key}: HTTP ${answer.status}`);
    }
  }
}

/** The store of an embedded accelerator with this data directory. */
export function inDirectory(dataDir) {
  return new InDirectory(dataDir);
}

/** The store of an accelerator on this PostgreSQL database and S3 bucket. */
export function inPostgresAndS3(options) {
  return new InPostgresAndS3(options);
}

/** The names of the stored things whose raw bytes contain `needle` (UTF-8). */
export async function containing(store, needle) {
  const bytes = Buffer.from(needle, "utf8");
  const hits = [];
  for await (const { name, bytes: content } of store.blobs()) {
    if (content.includes(bytes)) hits.push(name);
  }
  return hits;
}

/** How many things the store holds (to show a search had something to search). */
export async function count(store) {
  let n = 0;
  for await (const _ of store.blobs()) n++;
  return n;
}
