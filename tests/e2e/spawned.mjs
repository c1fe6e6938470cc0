// The servers the end-to-end tests start themselves (accelerators, moto, haproxy):
// where the checkout is, free ports, waiting for one to answer or to end.
import { createServer } from "node:net";

/** The checkout's root, with a trailing slash. */
export const ROOT = new URL("../..", import.meta.url).pathname;

/** A TCP port nobody listens on (for a moment). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Waits until `url/v1/health` answers 200, failing if `child` exits first. */
export async function waitHealthy(url, child, what) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/v1/health`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not answer at ${url} within 10 s`);
}

/** Resolves once `child` has ended. */
export function exited(child) {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", resolve)));
}
