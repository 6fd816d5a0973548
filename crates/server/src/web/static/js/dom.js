// Building the page without innerHTML: text always goes in as text, so nothing a model or a
// user writes can become markup.

/**
 * h("button", {class: "primary", onclick: fn, "aria-label": "Send"}, "Send")
 * Attributes: `class`, `text`, `on<event>` handlers, `dataset` (object), booleans (set when
 * true), everything else with setAttribute. Children: nodes, strings, arrays, null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value") el.value = value;
    else if (key === "checked" || key === "selected" || key === "disabled") el[key] = Boolean(value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let nextId = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix = "id") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled form field: a <label> and the control it names. */
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const hintEl = hint ? h("small", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

/**
 * A short message at the top right, clear of the composer and the primary buttons. `info`
 * fades out after `ms` (0: stays until removed, a job's progress); `error` and `notice`
 * (something the user must not miss, such as cells that were emptied) stay until dismissed
 * or until the user goes to another screen (`clearToasts`).
 */
export function toast(message, kind = "info", ms = 4000, action = null) {
  const box = document.getElementById("toasts");
  if (!box) return null;
  const close = h("button", { class: "icon", "aria-label": "Dismiss", onclick: () => item.remove() }, "×");
  // An action (`{label, run}`, e.g. Undo) is one click, then the toast goes.
  const act = action && h("button", { type: "button", class: "toast-action", onclick: () => {
    item.remove();
    action.run();
  } }, action.label);
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : kind === "notice" ? "status" : null },
    h("span", {}, message), act, close);
  box.appendChild(item);
  if (kind === "info" && ms > 0) {
    setTimeout(() => {
      item.classList.add("leaving"); // fades (app.css), then goes
      setTimeout(() => item.remove(), 300);
    }, ms);
  }
  return item;
}

/** Errors and notices of the screen being left: they were about it. */
export function clearToasts() {
  for (const t of document.querySelectorAll("#toasts .toast.error, #toasts .toast.notice")) t.remove();
}

/** A modal <dialog>; resolves with the value given to `done`, or null when dismissed. */
export function modal(title, build) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const dialog = h("dialog", { class: "modal", "aria-labelledby": titleId });
    let result = null;
    const done = (value) => {
      result = value;
      dialog.close();
    };
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    dialog.append(
      h("div", { class: "modal-head" },
        h("h2", { id: titleId }, title),
        h("button", { class: "icon", type: "button", "aria-label": "Close", onclick: () => done(null) }, "×")),
      build(done),
    );
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** Asks a yes/no question; resolves true or false. */
export async function confirmDialog(title, message, confirmLabel = "Confirm", danger = false) {
  const answer = await modal(title, (done) => h("div", {},
    h("p", {}, message),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => done(false) }, "Cancel"),
      h("button", { type: "button", class: danger ? "danger" : "primary", onclick: () => done(true) }, confirmLabel))));
  return answer === true;
}

/** Asks for one line of text (a new name); resolves with it trimmed, or null when cancelled. */
export async function promptDialog(title, label, value = "", submitLabel = "Save") {
  const answer = await modal(title, (done) => {
    const input = h("input", { type: "text", required: true, maxlength: "200", autocomplete: "off", value });
    queueMicrotask(() => input.select());
    return h("form", { onsubmit: (e) => {
      e.preventDefault();
      done(input.value.trim());
    } }, field(label, input),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => done(null) }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, submitLabel)));
  });
  return answer || null;
}

/** Saves a Blob as a file through a temporary link. */
export function saveBlob(blob, fileName) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: fileName, class: "hidden" });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * The end of a list read by a `CursorList` (api.js). While the list goes on: how many are
 * shown and a button for the next ones (`onMore` reads and shows them); once it has ended
 * past one page: how many there are, so a long list says it is whole.
 */
export function listEnd(list, noun, onMore) {
  const n = list.items.length.toLocaleString();
  if (list.done) return list.items.length > 200 ? h("p", { class: "muted list-end" }, `All ${n} ${noun} shown.`) : null;
  const button = h("button", {
    type: "button",
    onclick: async () => {
      button.disabled = true;
      button.textContent = "Loading…";
      try {
        await onMore();
      } catch (err) {
        toast(err.message, "error");
        button.disabled = false;
        button.textContent = "Load more";
      }
    },
  }, "Load more");
  return h("p", { class: "list-more" }, h("span", { class: "muted" }, `Showing ${n} ${noun}; there are more. `), button);
}
