// The Tables screen: every table, the import of a file, the trash.

import { CursorList, del, enc, importFile, patch, post } from "../api.js";
import { field, h, listEnd, promptDialog, replace, toast } from "../dom.js";
import { count, when } from "../format.js";
import { errorBox, page, showIn } from "./page.js";

export function tablesView() {
  const list = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const trash = h("div", { class: "list trash" });
  const file = h("input", { type: "file", accept: ".csv,.tsv,.txt,.xlsx,.xlsm,.xls,.ods", required: true });
  const error = errorBox();
  const status = h("p", { class: "muted import-progress", role: "status", "aria-live": "polite", hidden: true });
  const button = h("button", { type: "submit" }, "Import");
  let importing = false;
  const form = h("form", {
    class: "inline-form",
    onsubmit: async (e) => {
      e.preventDefault();
      // One import at a time: a double click or a second Enter does not start another.
      if (!file.files.length || importing) return;
      importing = true;
      error.hidden = true;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = "Importing…";
      status.hidden = false;
      status.textContent = `Importing ${file.files[0].name}…`;
      try {
        const id = await importFile(file.files[0], (text) => { status.textContent = text; });
        location.hash = `#/t/${id}`;
      } catch (err) {
        showIn(error, err);
      } finally {
        importing = false;
        status.hidden = true;
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.textContent = "Import";
      }
    },
  }, field("Import a file (CSV, TSV, XLSX, XLS, ODS)", file), button, status, error);

  // The API has no search of tables: the search filters the tables read so far (the list
  // reads on, page by page, with "Load more").
  const search = h("input", { type: "search", class: "search", autocomplete: "off", placeholder: "Table name", oninput: () => show() });
  const tables = new CursorList("/tables");
  const deleted = new CursorList("/tables?deleted=true");

  function show() {
    const q = search.value.trim().toLowerCase();
    const items = tables.items.filter((t) => !q || t.name.toLowerCase().includes(q));
    replace(list, items.length
      ? h("table", { class: "data tables-list" },
        h("thead", {}, h("tr", {}, ["Name", "Rows", "Version", "Changed", ""].map((t, i) => h("th", { scope: "col", class: i === 1 || i === 2 ? "num" : null }, t)))),
        h("tbody", {}, items.map((t) => h("tr", { dataset: { tableId: t.id } },
          h("td", {}, h("a", { href: `#/t/${t.id}` }, t.name)),
          h("td", { class: "num" }, count(t.row_count)),
          h("td", { class: "num" }, String(t.version)),
          h("td", {}, when(t.updated_at)),
          h("td", {}, h("div", { class: "row-actions-inline" },
            h("button", { type: "button", "aria-label": `Rename ${t.name}`, onclick: () => rename(t) }, "Rename"),
            h("button", { type: "button", class: "danger", "aria-label": `Delete ${t.name}`, onclick: () => remove(t) }, "Delete")))))))
      : h("p", { class: "muted" }, q ? `No table read so far is named like “${search.value.trim()}”.` : "No tables yet: paste one in a conversation, or import a file."),
    listEnd(tables, "tables", () => load(true)));
  }

  async function load(more = false) {
    try {
      await (more ? tables.load() : tables.reload());
      show();
    } catch (err) {
      replace(list, h("p", { class: "error" }, err.message));
    }
    loadTrash();
  }

  async function loadTrash(more = false) {
    try {
      const items = await (more ? deleted.load() : deleted.reload());
      replace(trash, items.length
        ? h("ul", { class: "trash-list" }, items.map((t) => h("li", {},
          h("span", {}, `${t.name} · ${count(t.row_count)} rows · deleted ${when(t.deleted_at)} `),
          h("button", { type: "button", "aria-label": `Restore ${t.name}`, onclick: () => restore(t) }, "Restore"))))
        : h("p", { class: "muted" }, "The trash is empty."),
      listEnd(deleted, "deleted tables", () => loadTrash(true)));
    } catch (err) {
      replace(trash, h("p", { class: "error" }, err.message));
    }
  }

  async function rename(t) {
    const name = await promptDialog("Rename table", "Name", t.name, "Rename");
    if (!name || name === t.name) return;
    try {
      await patch(`/tables/${enc(t.id)}`, { name });
      toast(`Renamed to “${name}”.`);
      load();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function remove(t) {
    try {
      await del(`/tables/${enc(t.id)}`);
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    toast(`“${t.name}” is in the trash.`, "info", 8000, { label: "Undo", run: () => restore(t) });
    load();
  }

  async function restore(t) {
    try {
      await post(`/tables/${enc(t.id)}/restore`, undefined);
      toast(`“${t.name}” is back.`);
    } catch (err) {
      toast(err.message, "error");
    }
    load();
  }

  load();
  return {
    el: page("Tables", "Every table from your conversations and imports.", form,
      field("Search tables", search), list,
      h("section", { class: "trash-section" }, h("h2", {}, "Trash"), h("p", { class: "hint" }, "Deleted tables stay here until they are purged; Restore brings one back."), trash)),
  };
}
