// The Tables screen: every table and the import of a file.

import { CursorList, followJob, post, progressText } from "../api.js";
import { field, h, listEnd, replace } from "../dom.js";
import { count, when } from "../format.js";
import { errorBox, page, showIn } from "./page.js";

export function tablesView() {
  const list = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const file = h("input", { type: "file", accept: ".csv,.tsv,.txt,.xlsx,.xlsm,.xls,.ods", required: true });
  const error = errorBox();
  const status = h("p", { class: "muted import-progress", role: "status", "aria-live": "polite", hidden: true });
  const button = h("button", { type: "submit" }, "Import");
  const form = h("form", {
    class: "inline-form",
    onsubmit: async (e) => {
      e.preventDefault();
      if (!file.files.length) return;
      const data = new FormData();
      data.append("file", file.files[0]);
      error.hidden = true;
      button.disabled = true;
      try {
        let table = await post("/tables/import", data);
        // A large file is imported by a job: follow it, then open the table it made.
        if (table.kind === "import") {
          status.hidden = false;
          const job = await followJob(table, (j) => { status.textContent = `Importing: ${progressText(j)}`; });
          table = { id: job.result.table_id };
        }
        location.hash = `#/t/${table.id}`;
      } catch (err) {
        showIn(error, err);
      } finally {
        status.hidden = true;
        button.disabled = false;
      }
    },
  }, field("Import a file (CSV, TSV, XLSX, XLS, ODS)", file), button, status, error);

  const tables = new CursorList("/tables");
  async function load(more = false) {
    try {
      const items = await (more ? tables.load() : tables.reload());
      replace(list, items.length
        ? h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["Name", "Rows", "Version", "Changed"].map((t, i) => h("th", { scope: "col", class: i === 1 || i === 2 ? "num" : null }, t)))),
          h("tbody", {}, items.map((t) => h("tr", {},
            h("td", {}, h("a", { href: `#/t/${t.id}` }, t.name)),
            h("td", { class: "num" }, count(t.row_count)),
            h("td", { class: "num" }, String(t.version)),
            h("td", {}, when(t.updated_at))))))
        : h("p", { class: "muted" }, "No tables yet: paste one in a conversation, or import a file."),
      listEnd(tables, "tables", () => load(true)));
    } catch (err) {
      replace(list, h("p", { class: "error" }, err.message));
    }
  }
  load();
  return { el: page("Tables", "Every table from your conversations and imports.", form, list) };
}
