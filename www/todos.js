// The to-do list of one signed-in user, kept in `client.kv` (collection "todos",
// one sealed value per to-do) and in step with the user's other devices through
// the change feed.

const COLLECTION = "todos";

/**
 * A file attached to a to-do: enough to open it (`manifest`, the read capability)
 * and to delete it (`spaceId`, `fileId`).
 * @typedef {{ name: string, type: string, size: number, manifest: string, spaceId: string, fileId: string }} Attachment
 */
/** @typedef {{ title: string, done: boolean, created: number, attachments: Attachment[] }} Todo */

export class TodoStore {
  /**
   * @param {import("/pkg/coffer.js").Client} client
   * @param {{ onChange: (remoteIds: Set<string>) => void, onError: (e: unknown) => void }} hooks
   *   `onChange` after every change to `items`, with the ids another device changed.
   */
  constructor(client, { onChange, onError }) {
    this.client = client;
    this.onChange = onChange;
    this.onError = onError;
    /** @type {Map<string, Todo>} */
    this.items = new Map();
    /** Ids changed by the feed while a full load was running: the feed wins. */
    this.touchedDuringLoad = null;
    /** Values this device wrote and has not yet seen come back on the feed. */
    this.ownWrites = new Map();
    this.offs = [
      client.kv.on("change", (e) => this.applyChange(e)),
      client.kv.on("resync", () => this.load().catch(onError)),
    ];
  }

  /** Stops listening to the feed. */
  close() {
    for (const off of this.offs) off();
    this.offs = [];
  }

  /** The to-dos, oldest first. */
  sorted() {
    return [...this.items]
      .map(([id, todo]) => ({ id, ...todo }))
      .sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
  }

  /** How many are not done. */
  openCount() {
    let open = 0;
    for (const todo of this.items.values()) if (!todo.done) open += 1;
    return open;
  }

  /**
   * Reads the whole list: ids first, then each value (there is no server-side
   * query: the accelerator cannot read the values).
   */
  async load() {
    const touched = new Set();
    this.touchedDuringLoad = touched;
    try {
      const ids = await this.client.kv.list(COLLECTION);
      const values = await Promise.all(ids.map((id) => this.client.kv.get(COLLECTION, id)));
      const fresh = new Map();
      ids.forEach((id, i) => {
        const todo = normalize(values[i]);
        if (todo) fresh.set(id, todo);
      });
      for (const id of touched) {
        if (this.items.has(id)) fresh.set(id, this.items.get(id));
        else fresh.delete(id);
      }
      this.items = fresh;
    } finally {
      if (this.touchedDuringLoad === touched) this.touchedDuringLoad = null;
    }
    this.onChange(new Set());
  }

  /** Adds a to-do; resolves to its id. */
  async add(title) {
    const id = crypto.randomUUID();
    await this.write(id, { title, done: false, created: Date.now(), attachments: [] });
    return id;
  }

  /** Changes some fields of a to-do. */
  async update(id, fields) {
    const current = this.items.get(id);
    if (!current) return;
    await this.write(id, { ...current, ...fields });
  }

  /** Adds an attachment to a to-do; false if the to-do is gone. */
  async attach(id, attachment) {
    const current = this.items.get(id);
    if (!current) return false;
    await this.write(id, { ...current, attachments: [...current.attachments, attachment] });
    return true;
  }

  /** Removes the attachment with this file id from a to-do. */
  async detach(id, fileId) {
    const current = this.items.get(id);
    if (!current) return;
    await this.write(id, { ...current, attachments: current.attachments.filter((a) => a.fileId !== fileId) });
  }

  /** Deletes a to-do. */
  async remove(id) {
    this.ownWrites.set(id, null);
    await this.client.kv.delete(COLLECTION, id);
    this.items.delete(id);
    this.onChange(new Set());
  }

  async write(id, todo) {
    this.ownWrites.set(id, JSON.stringify(todo));
    await this.client.kv.set(COLLECTION, id, todo);
    this.items.set(id, todo);
    this.onChange(new Set());
  }

  /** One event from the change feed (this device's writes come back too). */
  applyChange(e) {
    if (e.collection !== COLLECTION) return;
    this.touchedDuringLoad?.add(e.id);
    if (e.error) {
      this.onError(e.error);
      return;
    }
    const todo = e.type === "set" ? normalize(e.data) : null;
    const echo = this.ownWrites.has(e.id) && this.ownWrites.get(e.id) === (todo && JSON.stringify(todo));
    if (echo) this.ownWrites.delete(e.id);
    if (todo) this.items.set(e.id, todo);
    else this.items.delete(e.id);
    this.onChange(echo ? new Set() : new Set([e.id]));
  }
}

/** A stored value as a Todo, or null if it is not one (written by something else). */
function normalize(value) {
  if (!value || typeof value !== "object" || typeof value.title !== "string") return null;
  return {
    title: value.title,
    done: value.done === true,
    created: Number.isFinite(value.created) ? value.created : 0,
    attachments: Array.isArray(value.attachments) ? value.attachments.filter(isAttachment) : [],
  };
}

function isAttachment(a) {
  return (
    a !== null &&
    typeof a === "object" &&
    typeof a.name === "string" &&
    typeof a.type === "string" &&
    Number.isSafeInteger(a.size) &&
    typeof a.manifest === "string" &&
    a.manifest.startsWith("coffer1:") &&
    typeof a.spaceId === "string" &&
    typeof a.fileId === "string"
  );
}
