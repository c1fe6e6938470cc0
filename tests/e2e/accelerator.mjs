// Accelerators of the tests' own, for tests that need to crash one, restart it or
// start it with small limits. Uses the release binary scripts/test built.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { remoteBackends } from "./remote.mjs";
import { ROOT, exited, freePort, waitHealthy } from "./spawned.mjs";
import { inDirectory } from "./stored.mjs";

const BINARY = join(ROOT, "target/release/accelerator");

/**
 * Runs the accelerator on `port` with `flags` (serving `www`, by default www/, and
 * pkg/), in `cwd`.
 * Returns { url, kill(signal), restart(), stop() }: `kill` sends a signal (SIGKILL:
 * a crash) and waits for the end, `restart` starts it again with the same flags,
 * `stop` ends it with SIGTERM if it runs.
 */
export async function runAccelerator(port, flags, { cwd = ROOT, env = {}, www = join(ROOT, "www") } = {}) {
  const url = `http://127.0.0.1:${port}`;
  const all = ["--port", String(port), "--www-dir", www, "--pkg-dir", join(ROOT, "pkg"), ...flags];
  let child;
  const start = async () => {
    child = spawn(BINARY, all, { cwd, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn", ...env } });
    await waitHealthy(url, child, "the accelerator");
  };
  await start();
  return {
    url,
    async kill(signal = "SIGKILL") {
      child.kill(signal);
      await exited(child);
    },
    restart: start,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited(child);
      }
    },
  };
}

/**
 * Starts an accelerator on a free port with fresh storage: a data dir of its own,
 * or with COFFER_TEST_BACKEND=postgres a database and an S3 bucket of its own
 * (./remote.mjs). `args` adds flags; `www` serves another directory at `/`. Returns { url, stored, kill(signal), restart(),
 * stop() }, where `stored` reads what it keeps (./stored.mjs); `stop` also removes
 * its storage.
 */
export async function startAccelerator(args = [], { www } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "coffer-e2e-"));
  const remote = process.env.COFFER_TEST_BACKEND === "postgres" ? await remoteBackends() : null;
  const removeStorage = async () => {
    rmSync(dataDir, { recursive: true, force: true });
    await remote?.stop();
  };
  let running;
  try {
    const flags = ["--data-dir", dataDir, ...(remote?.flags ?? []), ...args];
    running = await runAccelerator(await freePort(), flags, { env: remote?.env, www });
  } catch (e) {
    await removeStorage();
    throw e;
  }
  return {
    ...running,
    stored: remote?.stored ?? inDirectory(dataDir),
    async stop() {
      await running.stop();
      await removeStorage();
    },
  };
}
