// The demo to-do app: signs a user in with Coffer and keeps their list in
// `client.kv`, live across their devices, with files attached to to-dos kept in
// `client.storage`. The accelerator serving this page is the one it talks to.

import init, { Client } from "/pkg/coffer.js";
import { TodoStore } from "./todos.js";
import { createListView } from "./list.js";
import { AttachmentStore } from "./attachments.js";
import { saveBlob } from "./files.js";

const URL_ = location.origin;
const $ = (id) => document.getElementById(id);

const ui = {
  boot: $("boot"),
  authView: $("auth-view"),
  authForm: $("auth-form"),
  username: $("username"),
  password: $("password"),
  keep: $("keep"),
  authError: $("auth-error"),
  authNote: $("auth-note"),
  authBusy: $("auth-busy"),
  todoView: $("todo-view"),
  whoami: $("whoami"),
  avatar: $("avatar"),
  signOut: $("sign-out"),
  newForm: $("new-form"),
  newTitle: $("new-title"),
  todoError: $("todo-error"),
  list: $("todo-list"),
  empty: $("empty"),
  openCount: $("open-count"),
  syncNote: $("sync-note"),
  syncText: $("sync-text"),
  colophon: $("colophon"),
  attachInput: $("attach-input"),
  resumeInput: $("resume-input"),
};

/**
 * The signed-in session, or null: `{ client, store, files, uploads }`, where
 * `uploads` maps a to-do's id to the AbortControllers of its uploads in progress.
 */
let session = null;

/** The to-do the file picker is choosing for. */
let attachingTo = null;

const view = createListView(ui.list, {
  toggle: (id, done) => act(() => session.store.update(id, { done })),
  rename: (id, title) => act(() => session.store.update(id, { title })),
  remove: (id) => {
    ui.newTitle.focus();
    act(() => removeTodo(id));
  },
  attach: (id) => {
    attachingTo = id;
    ui.attachInput.value = "";
    ui.attachInput.click();
  },
  open: (id, attachment, report) => act(() => openAttachment(attachment, report)),
  detach: (id, attachment) => act(() => detach(id, attachment)),
});

/** Deletes a to-do, stops its uploads and deletes its attachments' files. */
async function removeTodo(id) {
  const { store, files, uploads } = session;
  const attachments = store.items.get(id)?.attachments ?? [];
  for (const controller of uploads.get(id) ?? []) controller.abort();
  await store.remove(id);
  const failed = [];
  for (const attachment of attachments) {
    await files.remove(attachment).catch((e) => failed.push(`“${attachment.name}”: ${e.message}`));
  }
  if (failed.length) throw new Error(`The to-do was deleted, but not all of its files: ${failed.join("; ")}`);
}

/** Uploads a file and attaches it to a to-do, with a progress bar until it is done. */
async function attachFile(id, file) {
  const current = session;
  const controller = new AbortController();
  const running = current.uploads.get(id) ?? new Set();
  current.uploads.set(id, running.add(controller));
  const bar = view.upload(id, file.name, () => controller.abort());
  try {
    const attachment = await current.files.upload(file, {
      todoId: id,
      onProgress: (done, total) => bar.progress(done, total),
      signal: controller.signal,
    });
    if (!(await current.store.attach(id, attachment))) {
      // The to-do was deleted while the file uploaded: don't leave the file behind.
      await current.files.remove(attachment);
    }
  } catch (e) {
    if (e?.code === "Aborted") return;
    if (e?.uploadId) {
      // The connection went: offer to finish it, with the file still in hand.
      showInterrupted(current, { id: e.uploadId, name: file.name, doneBytes: 0, size: file.size, context: { todoId: id } }, file);
    }
    throw new Error(`Could not attach “${file.name}”: ${e?.message ?? e}`);
  } finally {
    bar.end();
    running.delete(controller);
    if (running.size === 0 && current.uploads.get(id) === running) current.uploads.delete(id);
  }
}

/**
 * Shows an interrupted upload under its to-do. "Resume" uses `file` if the page
 * still has it, else asks for it again; "Discard" gives it up.
 */
function showInterrupted(current, upload, file = null) {
  const todoId = upload.context.todoId;
  const item = view.interrupted(todoId, upload, {
    resume: () => {
      if (file) return act(() => resumeFile(current, upload, file, item));
      resuming = { current, upload, item };
      ui.resumeInput.value = "";
      ui.resumeInput.click();
    },
    discard: () => act(async () => {
      item.end();
      await current.files.discard(upload);
    }),
  });
}

/** The interrupted upload the file picker is choosing the file of. */
let resuming = null;

/** Finishes an interrupted upload with `file` and attaches it, with a progress bar. */
async function resumeFile(current, upload, file, item) {
  const todoId = upload.context.todoId;
  const controller = new AbortController();
  const running = current.uploads.get(todoId) ?? new Set();
  current.uploads.set(todoId, running.add(controller));
  item.end();
  const bar = view.upload(todoId, file.name, () => controller.abort());
  try {
    const attachment = await current.files.resume(upload, file, {
      onProgress: (done, total) => bar.progress(done, total),
      signal: controller.signal,
    });
    if (!(await current.store.attach(todoId, attachment))) await current.files.remove(attachment);
  } catch (e) {
    if (e?.code === "Aborted") return;
    // Not the same file, or the connection went again: keep offering it.
    if (e?.code === "FileChanged" || e?.code === "Network") showInterrupted(current, upload, e.code === "Network" ? file : null);
    const why = e?.code === "FileChanged" ? `that is not the file the upload began with (${e.message})` : e?.message ?? e;
    throw new Error(`Could not finish uploading “${upload.name ?? file.name}”: ${why}`);
  } finally {
    bar.end();
    running.delete(controller);
    if (running.size === 0 && current.uploads.get(todoId) === running) current.uploads.delete(todoId);
  }
}

/** Lists the uploads a reload cut off under their to-dos. */
async function showInterruptedUploads(current) {
  for (const upload of await current.files.interrupted()) {
    if (current.store.items.has(upload.context.todoId)) showInterrupted(current, upload);
  }
}

/** Decrypts an attachment and hands it to the browser as a download. */
async function openAttachment(attachment, report) {
  report("Opening…");
  const blob = await session.files.read(attachment, {
    onProgress: (done, total) => report(`Opening… ${total ? Math.floor((100 * done) / total) : 100}%`),
  });
  saveBlob(blob, attachment.name);
}

/** Deletes an attachment's file (its share link stops working), then drops it from the to-do. */
async function detach(id, attachment) {
  await session.files.remove(attachment);
  await session.store.detach(id, attachment.fileId);
}

/** Runs a list action, showing its error if it fails. */
async function act(action) {
  showError(ui.todoError, null);
  try {
    await action();
  } catch (e) {
    showError(ui.todoError, e);
    if (session) render(new Set()); // undo an optimistic checkbox
  }
}

function showError(element, error) {
  if (!error) {
    element.hidden = true;
    element.textContent = "";
    return;
  }
  console.error(error);
  element.textContent = messageOf(error);
  element.hidden = false;
}

/** What to tell the person: the CofferError's own message, made into a sentence. */
function messageOf(error) {
  const text = String(error?.message || error || "Something went wrong.");
  return /[.!?]$/.test(text) ? capitalize(text) : `${capitalize(text)}.`;
}

const capitalize = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function render(remote) {
  const todos = session.store.sorted();
  view.render(todos, remote);
  ui.empty.hidden = todos.length > 0;
  const open = session.store.openCount();
  const done = todos.length - open;
  ui.openCount.textContent =
    todos.length === 0 ? "" : open === 0 ? "All done" : `${open} open${done ? ` · ${done} done` : ""}`;
  ui.openCount.dataset.open = String(open);
}

/** The footer's badge: live, sending what waited, or offline with what is waiting. */
function showStatus({ status, pending }) {
  const changes = `${pending} change${pending === 1 ? "" : "s"}`;
  ui.syncNote.dataset.status = status;
  ui.syncNote.dataset.pending = String(pending);
  ui.syncText.textContent =
    status === "offline"
      ? `Offline · ${pending ? `${changes} saved here, sent when you are back` : "showing what this device has"}`
      : pending
        ? `Sending ${changes}…`
        : "Live on all your devices";
}

function show(which) {
  ui.boot.hidden = which !== "boot";
  ui.authView.hidden = which !== "auth";
  ui.todoView.hidden = which !== "todos";
  ui.colophon.hidden = which !== "todos";
}

async function enter(client) {
  const store = new TodoStore(client, {
    onChange: (remote) => session?.store === store && render(remote),
    onError: (e) => showError(ui.todoError, e),
  });
  session = { client, store, files: new AttachmentStore(client), uploads: new Map() };
  // Signing out in another tab signs this one out too.
  session.offSignOut = client.on("signout", () => {
    if (session?.client !== client) return;
    close();
    ui.authNote.textContent = "You signed out in another tab.";
    ui.authNote.hidden = false;
  });
  // Offline kv: while the accelerator cannot be reached, changes wait on this device.
  session.offStatus = client.kv.on("status", (status) => session?.client === client && showStatus(status));
  ui.whoami.textContent = client.username;
  ui.avatar.textContent = (client.username || "?").charAt(0).toUpperCase();
  view.clear();
  showError(ui.todoError, null);
  show("todos");
  render(new Set());
  document.body.dataset.state = "loading";
  try {
    await store.load();
    await showInterruptedUploads(session);
  } catch (e) {
    showError(ui.todoError, e);
  }
  document.body.dataset.state = "ready";
  ui.newTitle.focus();
}

/** Leaves the list view for the sign-in form; returns the session it closed. */
function close() {
  const current = session;
  session = null;
  current?.offSignOut?.();
  current?.offStatus?.();
  showStatus({ status: "online", pending: 0 });
  current?.store.close();
  for (const controllers of current?.uploads.values() ?? []) for (const c of controllers) c.abort();
  view.clear();
  ui.password.value = "";
  showError(ui.authError, null);
  show("auth");
  document.body.dataset.state = "signed-out";
  ui.username.focus();
  return current;
}

async function leave() {
  const current = close();
  try {
    await current?.client.signOut();
  } catch (e) {
    // Signed out on this device anyway; say why the server may still hold it.
    showError(ui.authError, e);
  }
}

function setBusy(busy, submitter) {
  for (const el of ui.authForm.elements) el.disabled = busy;
  ui.authForm.setAttribute("aria-busy", String(busy));
  for (const button of ui.authForm.querySelectorAll("button")) button.classList.toggle("busy", busy && button === submitter);
  ui.authBusy.textContent = busy
    ? submitter?.value === "signUp"
      ? "Creating your keys on this device…"
      : "Unlocking your keys on this device…"
    : "";
}

/** Lets the browser paint before Argon2 holds the main thread for half a second. */
const nextPaint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

ui.authForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const submitter = event.submitter ?? ui.authForm.querySelector("button[value=signIn]");
  const username = ui.username.value.trim();
  const password = ui.password.value;
  if (!username || !password) {
    showError(ui.authError, new Error("Enter a username and a password."));
    (username ? ui.password : ui.username).focus();
    return;
  }
  showError(ui.authError, null);
  ui.authNote.hidden = true;
  setBusy(true, submitter);
  await nextPaint();
  let client;
  try {
    const remember = ui.keep.checked ? "local" : "session";
    // offline: changes made while the accelerator cannot be reached wait on this device.
    const options = { url: URL_, username, password, remember, offline: true };
    client = submitter.value === "signUp" ? await Client.signUp(options) : await Client.signIn(options);
  } catch (e) {
    setBusy(false);
    showError(ui.authError, e);
    // A taken or malformed username is fixed in the username; anything else, retype the password.
    const field = e?.code === "Conflict" || e?.code === "InvalidInput" ? ui.username : ui.password;
    field.focus();
    field.select();
    return;
  }
  setBusy(false);
  ui.password.value = "";
  await enter(client);
});

ui.newForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = ui.newTitle.value.trim();
  if (!title || !session) return;
  ui.newTitle.value = "";
  await act(async () => {
    try {
      await session.store.add(title);
    } catch (e) {
      ui.newTitle.value ||= title; // give the text back to fix and retry
      throw e;
    }
  });
});

ui.attachInput.addEventListener("change", () => {
  const id = attachingTo;
  const picked = [...ui.attachInput.files];
  attachingTo = null;
  ui.attachInput.value = "";
  if (!session || !id) return;
  for (const file of picked) act(() => attachFile(id, file));
});

ui.resumeInput.addEventListener("change", () => {
  const [file] = ui.resumeInput.files;
  const picked = resuming;
  resuming = null;
  ui.resumeInput.value = "";
  if (!file || !picked || picked.current !== session) return;
  act(() => resumeFile(picked.current, picked.upload, file, picked.item));
});

ui.signOut.addEventListener("click", () => leave());

async function boot() {
  document.body.dataset.state = "booting";
  try {
    await init();
  } catch (e) {
    ui.boot.textContent = `Could not load Coffer: ${messageOf(e)}`;
    ui.boot.classList.add("error");
    return;
  }
  let client = null;
  try {
    client = await Client.resume({ url: URL_ });
  } catch (e) {
    showError(ui.authError, e);
  }
  if (client) {
    await enter(client);
  } else {
    show("auth");
    document.body.dataset.state = "signed-out";
    ui.username.focus();
  }
}

boot();
