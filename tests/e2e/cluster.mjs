// Several accelerators on one PostgreSQL database and one S3 bucket behind haproxy,
// as README "Running several accelerators" describes: each instance runs with
// --database postgres://… and --shards s3://… (./remote.mjs makes both fresh), in
// an empty working directory of its own (which must stay empty), behind
// deploy/haproxy.cfg with only the addresses changed.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { runAccelerator } from "./accelerator.mjs";
import { remoteBackends } from "./remote.mjs";
import { ROOT, exited, freePort, waitHealthy } from "./spawned.mjs";
import { filesUnder } from "./stored.mjs";

const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((path) => existsSync(path));

/**
 * deploy/haproxy.cfg with its listening address and servers replaced: the shipped
 * file is what runs. Throws if the file no longer has the shape this expects.
 */
function haproxyConfig(port, serverPorts) {
  const lines = readFileSync(join(ROOT, "deploy/haproxy.cfg"), "utf8").split("\n");
  const bind = lines.findIndex((line) => /^\s*bind 127\.0\.0\.1:\d+\s*$/.test(line));
  const servers = lines.flatMap((line, i) => (/^\s*server a\d+ 127\.0\.0\.1:\d+ /.test(line) ? [i] : []));
  if (bind < 0 || servers.length === 0) {
    throw new Error("deploy/haproxy.cfg: no `bind 127.0.0.1:PORT` or `server aN 127.0.0.1:PORT …` lines to point at the test's ports");
  }
  const template = lines[servers[0]];
  lines[bind] = lines[bind].replace(/:\d+/, `:${port}`);
  const ours = serverPorts.map((p, i) => template.replace(/server a\d+ 127\.0\.0\.1:\d+/, `server a${i + 1} 127.0.0.1:${p}`));
  lines.splice(servers[0], servers.length, ...ours);
  return lines.join("\n");
}

/** haproxy in the foreground with `config`, answering at `url`. */
async function startHaproxy(config, url) {
  if (!HAPROXY) throw new Error("haproxy is not installed: run scripts/setup");
  const dir = mkdtempSync(join(tmpdir(), "coffer-haproxy-"));
  const path = join(dir, "haproxy.cfg");
  writeFileSync(path, config);
  // -db: no daemon, no background. What it says (servers going down and up as the
  // tests kill them) is shown only if it does not start.
  const child = spawn(HAPROXY, ["-db", "-f", path], { stdio: ["ignore", "ignore", "pipe"] });
  let said = "";
  child.stderr.on("data", (text) => (said += text));
  try {
    await waitHealthy(url, child, "haproxy");
  } catch (e) {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${e.message}; it said:\n${said}`);
  }
  return {
    async stop() {
      child.kill("SIGTERM");
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `instances` accelerators on PostgreSQL and S3 behind haproxy. `args` adds
 * flags to every instance. Returns:
 * - `url`: haproxy's address, the one address clients use;
 * - `instances[i]`: `{ url, workDir, kill(signal), restart(), stop() }`, each
 *   instance's own address (for a client that must land on that instance);
 * - `stored`: what they keep (./stored.mjs);
 * - `localFiles()`: every file under any instance's working directory (none expected);
 * - `stop()`: ends everything and drops the database.
 */
export async function startCluster({ instances = 3, args = [] } = {}) {
  const stops = [];
  const stop = async () => {
    for (const step of stops.reverse()) await step().catch((e) => console.error(`cluster stop: ${e.message}`));
  };
  try {
    const remote = await remoteBackends("cluster");
    stops.push(() => remote.stop());
    const url = `http://127.0.0.1:${await freePort()}`;
    const ports = [];
    for (let i = 0; i < instances; i++) ports.push(await freePort());
    const starting = ports.map(async (port) => {
      const workDir = mkdtempSync(join(tmpdir(), "coffer-instance-"));
      stops.push(async () => rmSync(workDir, { recursive: true, force: true }));
      const flags = [
        "--data-dir", "data",
        ...remote.flags,
        "--trusted-proxy", "127.0.0.1",
        "--public-origin", `${url},http://127.0.0.1:${port}`,
        ...args,
      ];
      return { ...(await runAccelerator(port, flags, { cwd: workDir, env: remote.env })), workDir };
    });
    // All at once: the schema is migrated once under the race.
    const settled = await Promise.allSettled(starting);
    for (const s of settled) if (s.status === "fulfilled") stops.push(() => s.value.stop());
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const running = settled.map((s) => s.value);
    const haproxy = await startHaproxy(haproxyConfig(url.split(":").at(-1), ports), url);
    stops.push(() => haproxy.stop());
    return {
      url,
      instances: running,
      stored: remote.stored,
      async localFiles() {
        return (await Promise.all(running.map((i) => filesUnder(i.workDir)))).flat();
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
