// An accelerator of the test's own, for tests that need to crash it, restart it or
// start it with small limits. Uses the release binary scripts/test built.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const BINARY = join(ROOT, "target/release/accelerator");

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

async function waitHealthy(url, child) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`the accelerator exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/v1/health`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the accelerator did not come up within 10 s");
}

/**
 * Starts an accelerator on a free port with a fresh data dir (serving www/ and pkg/).
 * `args` adds flags. Returns { url, dataDir, kill(signal), restart(), stop() };
 * `stop` also removes the data dir.
 */
export async function startAccelerator(args = []) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "coffer-e2e-"));
  const url = `http://127.0.0.1:${port}`;
  const flags = ["--port", String(port), "--data-dir", dataDir, "--www-dir", join(ROOT, "www"), "--pkg-dir", join(ROOT, "pkg"), ...args];
  let child;
  const start = async () => {
    child = spawn(BINARY, flags, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn" } });
    await waitHealthy(url, child);
  };
  const exited = () => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
  await start();
  return {
    url,
    dataDir,
    /** Sends a signal (SIGKILL: a crash) and waits for the process to end. */
    async kill(signal = "SIGKILL") {
      child.kill(signal);
      await exited();
    },
    /** Starts it again on the same port and data dir. */
    restart: start,
    /** Stops it cleanly and removes its data dir. */
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited();
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
