// Renders the to-do list into a <ul>, keyed by id so that a change from another
// device never disturbs a to-do being edited here, and handles inline editing.
// Each to-do shows its attachments (open, share link, remove) and the uploads in
// progress on this device.

import { formatBytes, shareLink } from "./files.js";

const ICONS = {
  attach: "M20 11.5l-7.8 7.8a4.8 4.8 0 0 1-6.8-6.8l8.1-8.1a3.2 3.2 0 0 1 4.5 4.5l-8.1 8.1a1.6 1.6 0 0 1-2.3-2.3l7.4-7.4",
  edit: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
  delete: "M5 7h14M10 7V5h4v2M7 7l1 13h8l1-13",
  share: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  close: "M7 7l10 10M17 7L7 17",
  file: "M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5",
};

/**
 * @param {HTMLUListElement} list
 * @param {{ toggle(id: string, done: boolean): void, rename(id: string, title: string): void,
 *           remove(id: string): void, attach(id: string): void,
 *           open(id: string, attachment: object, report: (text: string | null) => void): Promise<void>,
 *           detach(id: string, attachment: object): void }} actions
 */
export function createListView(list, actions) {
  /** @type {Map<string, HTMLLIElement>} */
  const rows = new Map();

  function row(id) {
    let li = rows.get(id);
    if (li) return li;
    li = document.createElement("li");
    li.className = "todo";
    li.dataset.testid = "todo";
    li.dataset.id = id;
    li.addEventListener("animationend", () => li.classList.remove("flash"));

    const check = document.createElement("input");
    check.type = "checkbox";
    check.className = "todo-check";
    check.id = `done-${id}`;
    check.dataset.testid = "todo-toggle";
    check.addEventListener("change", () => actions.toggle(id, check.checked));

    const title = document.createElement("span");
    title.className = "todo-title";
    title.dataset.testid = "todo-title";
    title.addEventListener("dblclick", (event) => {
      event.preventDefault();
      startEdit(li);
    });

    const attach = iconButton("attach", "todo-attach", ICONS.attach);
    attach.addEventListener("click", () => actions.attach(id));
    const edit = iconButton("edit", "todo-edit", ICONS.edit);
    edit.addEventListener("click", () => startEdit(li));
    const del = iconButton("delete", "todo-delete", ICONS.delete);
    del.classList.add("danger");
    del.addEventListener("click", () => actions.remove(id));

    const tools = document.createElement("div");
    tools.className = "todo-tools";
    tools.append(attach, edit, del);

    const files = document.createElement("ul");
    files.className = "attachments";
    files.dataset.testid = "attachments";
    files.hidden = true;
    li.append(check, title, tools, files);
    rows.set(id, li);
    return li;
  }

  function fill(li, todo) {
    li.classList.toggle("done", todo.done);
    li.dataset.done = String(todo.done);
    const [check, title, tools] = [li.querySelector(".todo-check"), li.querySelector(".todo-title"), li.querySelector(".todo-tools")];
    check.checked = todo.done;
    check.setAttribute("aria-label", `Done: ${todo.title}`);
    title.textContent = todo.title;
    li.dataset.title = todo.title;
    const [attach, edit, del] = tools.children;
    attach.setAttribute("aria-label", `Attach a file to “${todo.title}”`);
    attach.title = "Attach a file";
    edit.setAttribute("aria-label", `Edit “${todo.title}”`);
    del.setAttribute("aria-label", `Delete “${todo.title}”`);
    fillAttachments(li, todo);
  }

  /** The attachments of a to-do, keyed by file id so an open share panel stays open. */
  function fillAttachments(li, todo) {
    const files = li.querySelector(".attachments");
    const items = (li.attachmentItems ??= new Map());
    const keep = new Set(todo.attachments.map((a) => a.fileId));
    for (const [fileId, item] of items) {
      if (!keep.has(fileId)) {
        item.remove();
        items.delete(fileId);
      }
    }
    todo.attachments.forEach((attachment, i) => {
      let item = items.get(attachment.fileId);
      if (!item) {
        item = attachmentItem(li.dataset.id, attachment);
        items.set(attachment.fileId, item);
      }
      // Attachments first, in order; uploads in progress after them.
      if (files.children[i] !== item) files.insertBefore(item, files.children[i] ?? null);
    });
    files.hidden = files.children.length === 0;
  }

  function attachmentItem(todoId, attachment) {
    const { name, size } = attachment;
    const item = document.createElement("li");
    item.className = "attachment";
    item.dataset.testid = "attachment";
    item.dataset.name = name;

    const open = document.createElement("button");
    open.type = "button";
    open.className = "attachment-open";
    open.dataset.testid = "attachment-open";
    open.title = `Download ${name}`;
    open.innerHTML = svg(ICONS.file, 16);
    const label = document.createElement("span");
    label.className = "attachment-name";
    label.dataset.testid = "attachment-name";
    label.textContent = name;
    open.append(label);

    const meta = document.createElement("span");
    meta.className = "attachment-size";
    meta.dataset.testid = "attachment-size";
    meta.textContent = formatBytes(size);
    meta.setAttribute("aria-live", "polite");
    open.addEventListener("click", async () => {
      if (open.disabled) return;
      open.disabled = true;
      item.classList.add("busy");
      try {
        await actions.open(todoId, attachment, (text) => (meta.textContent = text ?? formatBytes(size)));
      } finally {
        meta.textContent = formatBytes(size);
        item.classList.remove("busy");
        open.disabled = false;
      }
    });

    const share = iconButton("share", "attachment-share", ICONS.share);
    share.setAttribute("aria-label", `Share “${name}”: copy a link`);
    share.title = "Copy share link";
    share.setAttribute("aria-expanded", "false");
    const remove = iconButton("detach", "attachment-remove", ICONS.close);
    remove.classList.add("danger");
    remove.setAttribute("aria-label", `Remove “${name}”`);
    remove.title = "Remove (its share link stops working)";
    remove.addEventListener("click", () => actions.detach(todoId, attachment));

    const panel = document.createElement("div");
    panel.className = "share-panel";
    panel.dataset.testid = "share-panel";
    panel.hidden = true;
    const link = document.createElement("input");
    link.type = "text";
    link.readOnly = true;
    link.className = "share-link";
    link.dataset.testid = "share-link";
    link.value = shareLink(attachment.manifest);
    link.setAttribute("aria-label", `Share link for “${name}”`);
    // Selected backwards and scrolled home, so the field shows the start of the link.
    const selectLink = () => {
      link.setSelectionRange(0, link.value.length, "backward");
      link.scrollLeft = 0;
    };
    link.addEventListener("focus", selectLink);
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "secondary small";
    copy.dataset.testid = "share-copy";
    copy.textContent = "Copy";
    const status = document.createElement("p");
    status.className = "hint share-status";
    status.dataset.testid = "share-status";
    status.setAttribute("aria-live", "polite");
    panel.append(link, copy, status);

    const copyLink = async () => {
      link.focus();
      selectLink();
      let copied = false;
      try {
        await navigator.clipboard.writeText(link.value);
        copied = true;
      } catch {
        // No clipboard access here: the selected link is ready for Ctrl+C.
      }
      status.textContent =
        (copied ? "Link copied. " : "Copy the link above. ") +
        "Anyone with it can open this file without an account; removing the attachment turns it off.";
    };
    share.addEventListener("click", () => {
      const opening = panel.hidden;
      panel.hidden = !opening;
      share.setAttribute("aria-expanded", String(opening));
      item.classList.toggle("sharing", opening);
      if (opening) copyLink();
    });
    copy.addEventListener("click", copyLink);

    item.append(open, meta, share, remove, panel);
    return item;
  }

  /**
   * Shows an upload in progress under a to-do; returns its handle
   * `{ progress(done, total), end() }` (a no-op if the to-do is not shown).
   */
  function upload(todoId, name, cancel) {
    const shown = uploadItem(todoId, "upload", "upload", name);
    if (!shown) return { progress() {}, end() {} };
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.dataset.testid = "upload-progress";
    bar.setAttribute("aria-label", `Uploading ${name}`);
    const percent = document.createElement("span");
    percent.className = "upload-percent";
    percent.textContent = "0%";
    const stop = iconButton("cancel", "upload-cancel", ICONS.close);
    stop.setAttribute("aria-label", `Cancel uploading “${name}”`);
    stop.title = "Cancel";
    stop.addEventListener("click", cancel);
    shown.show(shown.label, bar, percent, stop);
    return {
      progress(done, total) {
        const fraction = total > 0 ? done / total : 1;
        bar.value = fraction;
        percent.textContent = `${Math.floor(fraction * 100)}%`;
      },
      end: shown.end,
    };
  }

  /**
   * A row for an upload under a to-do's attachments: `{ label, show(...parts), end() }`
   * (`show` puts the parts in it, after the name), or null if the to-do is not shown.
   */
  function uploadItem(todoId, className, testid, name) {
    const li = rows.get(todoId);
    if (!li) return null;
    const files = li.querySelector(".attachments");
    const item = document.createElement("li");
    item.className = className;
    item.dataset.testid = testid;
    const label = document.createElement("span");
    label.className = "upload-name";
    label.textContent = name;
    return {
      label,
      show(...parts) {
        item.append(...parts);
        files.append(item);
        files.hidden = false;
      },
      end() {
        item.remove();
        files.hidden = files.children.length === 0;
      },
    };
  }

  /**
   * Shows an upload that a reload or a lost network cut off, under its to-do:
   * how far it got, "Resume" (`resume()`) and "Discard" (`discard()`); returns
   * its handle `{ end() }` (a no-op if the to-do is not shown).
   */
  function interrupted(todoId, { name, doneBytes, size }, { resume, discard }) {
    const shown = uploadItem(todoId, "upload interrupted", "interrupted-upload", name ?? "file");
    if (!shown) return { end() {} };
    const note = document.createElement("span");
    note.className = "upload-percent muted";
    note.textContent = `${Math.floor((100 * doneBytes) / Math.max(size, 1))}% · interrupted`;
    const again = document.createElement("button");
    again.type = "button";
    again.className = "link-button";
    again.dataset.testid = "upload-resume";
    again.textContent = "Resume";
    again.title = `Choose “${name}” again to finish uploading it`;
    again.addEventListener("click", resume);
    const drop = iconButton("cancel", "upload-discard", ICONS.close);
    drop.setAttribute("aria-label", `Discard the interrupted upload of “${name}”`);
    drop.title = "Discard";
    drop.addEventListener("click", discard);
    shown.show(shown.label, note, again, drop);
    return { end: shown.end };
  }

  function startEdit(li) {
    if (li.classList.contains("editing")) return;
    const id = li.dataset.id;
    const original = li.dataset.title;
    li.classList.add("editing");
    const input = document.createElement("input");
    input.type = "text";
    input.className = "todo-edit-input";
    input.value = original;
    input.maxLength = 500;
    input.setAttribute("aria-label", `Edit “${original}”, Enter to save, Escape to cancel`);
    input.dataset.testid = "todo-edit-input";
    let finished = false;
    const finish = (save, refocus) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      input.remove();
      li.classList.remove("editing");
      if (refocus) li.querySelector(".todo-edit").focus({ preventScroll: true });
      if (save && title && title !== original) actions.rename(id, title);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true, true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        finish(false, true);
      }
    });
    input.addEventListener("blur", () => finish(true, false));
    li.querySelector(".todo-title").after(input);
    input.focus();
    input.select();
  }

  /**
   * Shows `todos` (sorted) and briefly highlights the ids another device changed.
   * @param {{ id: string, title: string, done: boolean }[]} todos
   * @param {Set<string>} remote
   */
  function render(todos, remote) {
    const keep = new Set(todos.map((t) => t.id));
    for (const [id, li] of rows) {
      if (!keep.has(id)) {
        li.remove();
        rows.delete(id);
      }
    }
    todos.forEach((todo, i) => {
      const li = row(todo.id);
      fill(li, todo);
      // Move only rows out of place: moving a row would blur an edit in progress.
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
      if (remote.has(todo.id)) {
        li.classList.remove("flash");
        void li.offsetWidth; // restart the animation
        li.classList.add("flash");
      }
    });
  }

  function clear() {
    rows.clear();
    list.replaceChildren();
  }

  return { render, clear, upload, interrupted };
}

function svg(path, size = 18) {
  return (
    `<svg viewBox="0 0 24 24" width="${size}" height="${size}" aria-hidden="true" focusable="false">` +
    `<path d="${path}" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>`
  );
}

function iconButton(name, testid, path) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-button todo-${name}`;
  button.dataset.testid = testid;
  button.innerHTML = svg(path);
  return button;
}
