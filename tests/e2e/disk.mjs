// Looking at an accelerator's data dir from the tests: every file in it, and which
// of them hold a given string (the at-rest searches).
import { readdir, readFile } from "node:fs/promises";
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

/** The files under `dir` whose raw bytes contain `needle` (UTF-8). */
export async function filesContaining(dir, needle) {
  const bytes = Buffer.from(needle, "utf8");
  const hits = [];
  for (const path of await filesUnder(dir)) {
    let content;
    try {
      content = await readFile(path);
    } catch (e) {
      if (e.code === "ENOENT") continue; // e.g. a journal removed while we walked
      throw e;
    }
    if (content.includes(bytes)) hits.push(path);
  }
  return hits;
}
