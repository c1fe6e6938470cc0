// Renders the to-do list into a <ul>, keyed by id so that a change from another
// device never disturbs a to-do being edited here, and handles inline editing.

/**
 * @param {HTMLUListElement} list
 * @param {{ toggle(id: string, done: boolean): void, rename(id: string, title: string): void,
 *           remove(id: string): void }} actions
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

    const edit = iconButton("edit", "todo-edit", "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4");
    edit.addEventListener("click", () => startEdit(li));
    const del = iconButton("delete", "todo-delete", "M5 7h14M10 7V5h4v2M7 7l1 13h8l1-13");
    del.classList.add("danger");
    del.addEventListener("click", () => actions.remove(id));

    const tools = document.createElement("div");
    tools.className = "todo-tools";
    tools.append(edit, del);
    li.append(check, title, tools);
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
    tools.children[0].setAttribute("aria-label", `Edit “${todo.title}”`);
    tools.children[1].setAttribute("aria-label", `Delete “${todo.title}”`);
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

  return { render, clear };
}

function iconButton(name, testid, path) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-button todo-${name}`;
  button.dataset.testid = testid;
  button.innerHTML =
    `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">` +
    `<path d="${path}" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
  return button;
}
