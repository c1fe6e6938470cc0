// Merges pkg-template/ into the package wasm-pack built in pkg/: package.json fields
// from pkg-template/package.json win over wasm-pack's, other files are copied over.
import { readFileSync, writeFileSync, readdirSync, copyFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const template = join(root, "pkg-template");
const pkg = join(root, "pkg");

const generated = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
const overrides = JSON.parse(readFileSync(join(template, "package.json"), "utf8"));
const merged = { ...generated, ...overrides, files: [...new Set([...(generated.files ?? []), ...(overrides.files ?? [])])] };
writeFileSync(join(pkg, "package.json"), JSON.stringify(merged, null, 2) + "\n");

for (const name of readdirSync(template)) {
  if (name !== "package.json") copyFileSync(join(template, name), join(pkg, name));
}
