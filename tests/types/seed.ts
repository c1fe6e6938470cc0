// The API description's examples (SEED-storage.txt) and the README's, as written,
// type-checked against the generated pkg/coffer.d.ts with `tsc --strict`: the
// declarations are complete and generic. Lines marked @ts-expect-error must NOT
// type-check — they prove the types are strict, not `any`.
import init, { Client, inspectManifest } from "coffer";
import type { CofferError, KvChangeEvent, ManifestInfo, SkippedEntry } from "coffer";

declare const file: File;
declare function refreshTodos(): void;
declare function showSignIn(note: string): void;
declare function tell(message: string): void;
declare const badge: { textContent: string };

await init();
const url = "http://127.0.0.1:8080";
const client = await Client.signUp({ url, username: "ada", password: "correct horse", remember: "session" });
const again: Client | null = await Client.resume({ url });
const reader = await Client.anonymous({ url });

// kv, as the seed shows.
await client.kv.set("todos", "t1", { title: "Ship docs", done: false });
const todo = await client.kv.get<{ title: string; done: boolean }>("todos", "t1");
// → { title: "Ship docs", done: false } (decrypted locally)
const existed = await client.kv.delete("todos", "t1"); // → true
const ids = await client.kv.list("todos"); // → ["t1", "t2", …] (ids only)
await client.kv.set("public-profile", "ada", { handle: "@ada" }, { encrypt: false });

const off = client.kv.on("change", (e) => {
  // e.collection, e.id, e.type ("set" | "delete"), e.data (decrypted | null)
  if (e.collection === "todos") refreshTodos();
});
// later
off();

{
  const ids = await client.kv.list("todos");
  const todos = await Promise.all(ids.map((id) => client.kv.get<{ done: boolean }>("todos", id)));
  const open = todos.filter((t) => t && !t.done);
  open satisfies ({ done: boolean } | null)[];
}

// storage, as the seed shows.
const spaceId = (await client.space.create({ name: "Docs" })).id;
const { stat, manifest } = await client.storage.writeFile({
  spaceId,
  data: file, // Uint8Array | Blob | File
  metadata: { name: file.name, type: file.type },
});
const { data } = await client.storage.readFile(spaceId, stat.id!);
const shared = await client.storage.readByManifest(manifest); // no membership needed
const mine = await client.storage.listFiles(); // files I've shared
const inSpace = await client.storage.listFiles({ spaceId }); // files in a space
await client.storage.deleteFile(spaceId, stat.id!);

// Options and read forms.
const controller = new AbortController();
await client.storage.writeFile({ spaceId, data: new Uint8Array(8), onProgress: (done, total) => done / total, signal: controller.signal });
const asBlob: Blob = (await reader.storage.readByManifest(manifest, { as: "blob" })).data;
const asStream: ReadableStream<Uint8Array> = (await reader.storage.readByManifest(manifest, { as: "stream" })).data;
const bytes: Uint8Array = data;
const token: string = await client.space.invite(spaceId, { role: "writer", maxUses: 1 });
const info: ManifestInfo = inspectManifest(manifest);
const usage: number = (await client.space.usage(spaceId)).usedBytes;
client.kv.on("resync", (e) => e.seq);
const skipped: SkippedEntry[] = (await client.space.list()).skipped;
const firstSpace: string | undefined = (await client.space.list())[0]?.id;
const skippedCodes: CofferError["code"][] = mine.skipped.map((s) => s.code);
const typed = client.kv.on<{ title: string }>("change", (e: KvChangeEvent<{ title: string }>) => e.data?.title);
// The README's "Several tabs".
// Offline kv, as the README shows.
{
  const client = await Client.signIn({ url, username: "ada", password: "correct horse", offline: true });
  client.kv.on("status", ({ status, pending }) => {
    badge.textContent = status === "offline" ? `Offline · ${pending} waiting` : "";
  });
  await client.kv.set("todos", "t1", { title: "Works on a train" });
  const waiting: number = await client.kv.pending();
  client.kv.on("change", (e) => {
    if (e.overwritten) tell(`Your offline edit of ${e.id} was replaced by one made elsewhere`);
  });
  const resumed: Client | null = await Client.resume({ url, offline: true });
  // @ts-expect-error — a status is "online" or "offline"
  client.kv.on("status", (e) => e.status === "reconnecting");
  void waiting, resumed;
}
// Recovery codes, as the README shows.
{
  const code: string = await client.createRecoveryCode();
  const recovered: Client = await Client.recover({ url, username: "ada", recoveryCode: code, newPassword: "new horse", remember: "local" });
  // @ts-expect-error — recover takes no password, only a recovery code and the new one
  await Client.recover({ url, username: "ada", password: "x", newPassword: "y" });
  void recovered;
}
// Removing a member rotates the space's key; nothing more to call.
await client.space.removeMember(spaceId, "usr_1");
const offSignOut: () => void = client.on("signout", (e) => e.reason === "another-tab" && showSignIn("You signed out in another tab."));
try {
  await client.signOut();
} catch (e) {
  const code: CofferError["code"] = (e as CofferError).code;
}

// The types are strict.
// @ts-expect-error — get may resolve to null
todo.title;
// @ts-expect-error — unknown event names are refused
client.kv.on("chnage", () => {});
// @ts-expect-error — a client emits only "signout"; changes are kv's
client.on("change", () => {});
// @ts-expect-error — writeFile needs a spaceId
await client.storage.writeFile({ data: file });
// @ts-expect-error — "as" takes only bytes | blob | stream
await client.storage.readByManifest(manifest, { as: "text" });
// @ts-expect-error — set options are typed
await client.kv.set("a", "b", 1, { encrypt: "yes" });
// @ts-expect-error — a listing's skipped entries are read-only
inSpace.skipped = [];

export { again, existed, ids, shared, mine, inSpace, asBlob, asStream, bytes, token, info, usage, typed, skipped, firstSpace, skippedCodes, offSignOut };
