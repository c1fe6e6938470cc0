// The PostgreSQL database and S3 bucket of an accelerator (or several) on the remote
// backends: a fresh database on the server `scripts/postgres up` names, dropped
// afterwards, and a moto S3 server of the caller's own (scripts/setup installs it)
// with one bucket.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

import { ROOT, exited, freePort } from "./spawned.mjs";
import { inPostgresAndS3 } from "./stored.mjs";

const MOTO = join(ROOT, "target/moto-venv/bin/moto_server");

/** moto's S3 server on a free port with `bucket` made; `env` points object_store at it. */
async function startMoto(bucket) {
  if (!existsSync(MOTO)) throw new Error(`${MOTO} is missing: run scripts/setup (it installs moto's S3 server)`);
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(MOTO, ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}`);
    // moto makes a bucket for an unsigned PUT.
    const made = await fetch(`${endpoint}/${bucket}`, { method: "PUT" }).catch(() => null);
    if (made?.ok) break;
    if (made || i > 300) {
      child.kill();
      throw new Error(`moto_server: making bucket ${bucket}: ${made ? `HTTP ${made.status}` : "no answer within 30 s"}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ALLOW_HTTP: "true",
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    },
    async stop() {
      child.kill("SIGTERM");
      await exited(child);
    },
  };
}

/** A fresh database; `drop` removes it, connections and all. */
function createDatabase(label) {
  const server = execFileSync(join(ROOT, "scripts/postgres"), ["up"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  const name = `coffer_${label}_${process.pid}_${Date.now().toString(36)}`;
  const psql = (sql) => execFileSync("psql", ["-X", "-q", server, "-c", sql], { stdio: ["ignore", "ignore", "inherit"] });
  psql(`CREATE DATABASE ${name}`);
  return { url: server.replace(/\/[^/]*$/, `/${name}`), drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/**
 * A fresh database and bucket. Returns `{ flags, env, stored, stop() }`: the
 * accelerator's `--database`/`--shards` flags and AWS_* environment, what it keeps
 * (./stored.mjs), and `stop`, which ends moto and drops the database.
 */
export async function remoteBackends(label = "e2e") {
  const bucket = "coffer-test";
  const moto = await startMoto(bucket);
  let database;
  try {
    database = createDatabase(label);
  } catch (e) {
    await moto.stop();
    throw e;
  }
  return {
    flags: ["--database", database.url, "--shards", `s3://${bucket}`],
    env: moto.env,
    stored: inPostgresAndS3({ databaseUrl: database.url, endpoint: moto.endpoint, bucket }),
    async stop() {
      await moto.stop();
      database.drop();
    },
  };
}
