// Files attached to to-dos, kept with `client.storage` in a space the app creates
// for the user ("My to-dos"), whose id it remembers in kv. A to-do keeps each
// attachment's manifest (the read capability) in its own sealed kv value, so any of
// the user's devices opens it with `readByManifest`, whichever space it is in.
// Uploads are resumable: one cut off by a reload or a lost network is kept (sealed)
// on this device with its to-do's id, and finishes when the file is given again.

import { fileMetadata } from "./files.js";

const SETTINGS = "settings";
const SPACE_SETTING = "attachments-space";
/** Smaller than the SDK's 4 MiB default, so the progress bar moves for photo-sized files. */
const CHUNK_SIZE = 1024 * 1024;

/** The attachment a to-do keeps for a written file. */
function attachmentOf({ stat, manifest }, name, spaceId) {
  return {
    name: String(stat.metadata?.name ?? name),
    type: String(stat.metadata?.type ?? ""),
    size: stat.size,
    manifest,
    spaceId: stat.spaceId ?? spaceId,
    fileId: stat.id,
  };
}

export class AttachmentStore {
  /** @param {import("/pkg/coffer.js").Client} client */
  constructor(client) {
    this.client = client;
    /** @type {Promise<string> | null} the space id, once looked up or created */
    this.spaceId = null;
  }

  /**
   * The space attachments go into: looked up in kv, or created (once) and
   * remembered there. Two devices attaching their very first file at the same
   * moment may each create one; both keep working, as each attachment carries
   * its own space id.
   */
  space({ fresh = false } = {}) {
    if (fresh || !this.spaceId) {
      const lookup = fresh ? this.#create() : this.#findOrCreate();
      this.spaceId = lookup;
      lookup.catch(() => {
        if (this.spaceId === lookup) this.spaceId = null; // try again next time
      });
    }
    return this.spaceId;
  }

  async #findOrCreate() {
    // `list` first: a `get` of a missing key answers 404, which the browser logs
    // as an error on a new account's first attachment.
    const ids = await this.client.kv.list(SETTINGS);
    const saved = ids.includes(SPACE_SETTING) ? await this.client.kv.get(SETTINGS, SPACE_SETTING) : null;
    if (saved && typeof saved.id === "string") return saved.id;
    return this.#create();
  }

  async #create() {
    const space = await this.client.space.create({ name: "My to-dos" });
    await this.client.kv.set(SETTINGS, SPACE_SETTING, { id: space.id });
    return space.id;
  }

  /**
   * Uploads a file for the to-do `todoId`; resolves to the attachment to keep in it.
   * The upload is resumable: cut off by a reload or a lost network, it is listed by
   * `interrupted()` and finished by `resume()`; a failure that it carries
   * `uploadId` for can be resumed at once.
   * @param {File} file
   * @param {{ todoId: string, onProgress?: (done: number, total: number) => void, signal?: AbortSignal }} options
   */
  async upload(file, { todoId, onProgress, signal } = {}) {
    const write = async (spaceId) => {
      try {
        return await this.client.storage.writeFile({
          spaceId,
          data: file,
          metadata: fileMetadata(file),
          chunkSize: CHUNK_SIZE,
          resumable: { context: { todoId } },
          onProgress,
          signal,
        });
      } catch (e) {
        // Written, but not recorded in the account's list of shared files: the
        // to-do keeps its own record, so the attachment is fine.
        if (e?.result?.manifest) return e.result;
        // Only a lost connection is worth resuming; anything else starts afresh.
        if (e?.uploadId && e.code !== "Network") await this.client.storage.discardUpload(e.uploadId);
        throw e;
      }
    };
    let spaceId = await this.space();
    let written;
    try {
      written = await write(spaceId);
    } catch (e) {
      // The remembered space is gone or no longer ours: make a new one, once.
      if (e?.code !== "Forbidden" && e?.code !== "NotFound") throw e;
      spaceId = await this.space({ fresh: true });
      written = await write(spaceId);
    }
    return attachmentOf(written, file.name, spaceId);
  }

  /** This device's uploads that a reload or a lost network cut off, with their to-do's id. */
  async interrupted() {
    const pending = await this.client.storage.pendingUploads();
    return pending.filter((upload) => typeof upload.context?.todoId === "string");
  }

  /**
   * Finishes an interrupted upload given the same file again; resolves to the
   * attachment. Rejects with `FileChanged` for another file.
   */
  async resume(upload, file, { onProgress, signal } = {}) {
    let written;
    try {
      written = await this.client.storage.resumeUpload(upload.id, file, { onProgress, signal });
    } catch (e) {
      if (!e?.result?.manifest) throw e;
      written = e.result;
    }
    return attachmentOf(written, file.name, upload.spaceId);
  }

  /** Gives an interrupted upload up. */
  async discard(upload) {
    await this.client.storage.discardUpload(upload.id);
  }

  /** Reads an attachment back as a Blob. */
  async read(attachment, { onProgress } = {}) {
    const { data } = await this.client.storage.readByManifest(attachment.manifest, { as: "blob", onProgress });
    return data;
  }

  /** Deletes an attachment's file: its share link stops working. */
  async remove(attachment) {
    await this.client.storage.deleteFile(attachment.spaceId, attachment.fileId);
  }
}
