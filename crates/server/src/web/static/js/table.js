// One table: the grid with its toolbar (filter, rows, columns), versions (list, diff, revert)
// and export. Every edit is a change on the server, and so a new version.

import { ApiError, CursorList, enc, followJob, get, listAll, post, progressText, request } from "./api.js";
import { confirmDialog, field, h, listEnd, modal, replace, saveBlob, toast, uid } from "./dom.js";
import { cellTexts, count, display, plural, readingText, when } from "./format.js";
import { Grid } from "./grid.js";

const PASTE_MAX_ROWS = 1000; // the most rows one page of `/rows` holds
const TYPES = ["text", "integer", "decimal", "float", "boolean", "date", "datetime", "currency", "percent", "url", "email"];
const OPS = [
  ["eq", "equals"], ["ne", "is not"], ["lt", "<"], ["lte", "≤"], ["gt", ">"], ["gte", "≥"],
  ["contains", "contains"], ["is_null", "is empty"], ["not_null", "is not empty"],
];
const NO_VALUE = new Set(["is_null", "not_null"]);
/** What a column of each type holds, what one value of it is, and what to type instead. */
const HOLDS = {
  integer: ["whole numbers", "a whole number", "a whole number such as 1200"],
  decimal: ["numbers", "a number", "a number such as 12.5"],
  float: ["numbers", "a number", "a number such as 12.5"],
  currency: ["amounts of money", "an amount", "an amount such as 12.50"],
  percent: ["percentages", "a percentage", "a percentage such as 15%"],
  date: ["dates", "a date", "a date such as 2024-03-01"],
  datetime: ["dates and times", "a date and time", "a date and time such as 2024-03-01 14:30"],
  boolean: ["yes or no", "yes or no", "yes or no"],
  url: ["links", "a link", "a link such as https://example.com"],
  email: ["email addresses", "an email address", "an address such as ada@example.com"],
};
const DIGITS = new Set(["integer", "decimal", "float", "currency", "percent", "date", "datetime"]);

/** Why a filter's value cannot be compared with its column, in a sentence. */
function unreadable(column, value, opLabel) {
  const [holds, one, instead] = HOLDS[column.type] || ["text", "text", "some text"];
  return `“${column.name}” holds ${holds}, and “${value}” does not read as ${one}. ` +
    `To filter by “${opLabel}”, type ${instead}.`;
}

function showError(err) {
  toast(err instanceof ApiError || err instanceof Error ? err.message : String(err), "error");
}

export class TablePanel {
  constructor(tableId, { tall = false } = {}) {
    this.id = tableId;
    this.tall = tall;
    this.table = null;
    this.viewVersion = null; // null: the current version (editable)
    this.sort = null;
    this.filters = [];
    this.diff = null;
    this.title = h("h3", { class: "table-title" }, "Table");
    this.status = h("p", { class: "table-status", "aria-live": "polite" });
    this.banner = h("div", { class: "table-banner", hidden: true });
    this.filterBar = this.buildFilterBar();
    this.gridHost = h("div", { class: tall ? "grid-host tall" : "grid-host" });
    this.noMatch = h("div", { class: "grid-empty", role: "status", hidden: true },
      h("span", {}, h("strong", {}, "No rows match"), " the filters."),
      h("button", { type: "button", onclick: () => this.clearFilters() }, "Clear filters"));
    this.selection = null;
    // This session's own changes, newest last: {before, after, what} (versions). An undo is
    // a revert to `before` (a new version: nothing is lost); a redo reverts to `after`.
    this.undoStack = [];
    this.redoStack = [];
    this.undoNote = null; // what the last undo or redo did, for the status line
    this.versions = h("section", { class: "versions", hidden: true, "aria-label": "Versions" });
    this.diffBox = h("section", { class: "diff", hidden: true, "aria-label": "Changes between versions" });
    this.toolbar = this.buildToolbar();
    this.el = h("section", { class: "table-panel", dataset: { tableId } },
      h("header", { class: "table-head" }, this.title, this.status,
        // Under a reply: the table on its own screen (which links back to its conversation).
        tall ? null : h("a", { href: `#/t/${tableId}`, class: "open-table" }, "Open table")),
      this.toolbar, this.filterBar, this.banner, this.gridHost, this.diffBox, this.versions);
    this.grid = null;
    this.el.addEventListener("keydown", (e) => this.onUndoKey(e));
  }

  buildToolbar() {
    const b = (label, onclick, extra = {}) => h("button", { type: "button", onclick, ...extra }, label);
    this.editButtons = [
      b("Add row", () => this.addRow()),
      b("Delete row", () => this.deleteRow()),
      b("Add column", () => this.addColumn()),
      b("Edit column", () => this.editColumn()),
      b("Delete column", () => this.deleteColumn()),
    ];
    this.undoButton = b("Undo", () => this.undo(), { disabled: true, "aria-keyshortcuts": "Control+Z" });
    this.redoButton = b("Redo", () => this.redo(), { disabled: true, "aria-keyshortcuts": "Control+Y Control+Shift+Z" });
    this.versionsButton = b("Versions", () => this.toggleVersions(), { "aria-expanded": "false" });
    this.filterButton = b("Filter", () => this.toggleFilter(), { "aria-expanded": "false" });
    return h("div", { class: "toolbar", role: "toolbar", "aria-label": "Table actions" },
      this.filterButton, ...this.editButtons, this.undoButton, this.redoButton, this.versionsButton,
      b("Export", () => this.exportDialog(), { class: "primary" }));
  }

  buildFilterBar() {
    this.filterColumn = h("select", {});
    this.filterOp = h("select", {}, OPS.map(([v, label]) => h("option", { value: v }, label)));
    this.filterValue = h("input", { type: "text", autocomplete: "off" });
    this.filterError = h("p", { class: "error filter-error", id: uid("ferr"), role: "alert", hidden: true });
    const clearError = () => this.filterRefused(null);
    this.filterOp.addEventListener("change", () => {
      this.filterValue.disabled = NO_VALUE.has(this.filterOp.value);
      clearError();
    });
    this.filterColumn.addEventListener("change", clearError);
    this.filterValue.addEventListener("input", clearError);
    this.chips = h("ul", { class: "chips", "aria-label": "Active filters" });
    const form = h("form", {
      class: "filter-form",
      onsubmit: (e) => {
        e.preventDefault();
        this.addFilter();
      },
    },
    field("Column", this.filterColumn),
    field("Condition", this.filterOp),
    field("Value", this.filterValue),
    h("button", { type: "submit" }, "Add filter"),
    this.filterError);
    return h("div", { class: "filter-bar", hidden: true }, form, this.chips);
  }

  /**
   * A filter becomes a chip only once its value can be read for its column: a number column
   * compared with a word is refused at once, and anything else the server would refuse is
   * found by asking it for one row with the filter.
   */
  async addFilter() {
    const op = this.filterOp.value;
    const value = NO_VALUE.has(op) ? "" : this.filterValue.value;
    const name = this.filterColumn.value;
    const column = this.view?.columns.find((c) => c.name === name);
    if (!column) return this.filterRefused(`Version ${this.view?.version} has no column “${name}”.`);
    if (!NO_VALUE.has(op) && value.trim() === "") {
      this.filterValue.focus();
      return;
    }
    const filter = { column: column.name, op, value };
    const opLabel = OPS.find(([v]) => v === op)?.[1] || op;
    if (!NO_VALUE.has(op) && op !== "contains") {
      if (DIGITS.has(column.type) && !/\d/.test(value)) return this.filterRefused(unreadable(column, value, opLabel));
      try {
        await this.fetchRows(this.view.version, 0, 1, [...this.filters, filter]);
      } catch (err) {
        if (err instanceof ApiError && err.fields.some((f) => f.field === "filter")) {
          return this.filterRefused(unreadable(column, value, opLabel));
        }
        return this.filterRefused(err.message);
      }
    }
    this.filterRefused(null);
    this.filters.push(filter);
    this.filterValue.value = "";
    this.refreshGrid();
  }

  /** Shows why a filter was refused under the form (null: clears it). */
  filterRefused(sentence) {
    this.filterError.hidden = !sentence;
    this.filterError.textContent = sentence || "";
    if (sentence) {
      this.filterValue.setAttribute("aria-invalid", "true");
      this.filterValue.setAttribute("aria-describedby", this.filterError.id);
      this.filterValue.focus();
    } else {
      this.filterValue.removeAttribute("aria-invalid");
      this.filterValue.removeAttribute("aria-describedby");
    }
  }

  clearFilters() {
    this.filters = [];
    this.refreshGrid();
  }

  toggleFilter() {
    const open = this.filterBar.hidden;
    this.filterBar.hidden = !open;
    this.filterButton.setAttribute("aria-expanded", String(open));
    if (open) this.filterColumn.focus();
  }

  renderChips() {
    replace(this.chips, this.filters.map((f, i) => {
      const label = OPS.find(([v]) => v === f.op)?.[1] || f.op;
      const text = `${f.column} ${label}${NO_VALUE.has(f.op) ? "" : ` ${f.value}`}`;
      return h("li", { class: "chip" }, text, h("button", {
        type: "button",
        class: "icon",
        "aria-label": `Remove filter ${text}`,
        onclick: () => {
          this.filters.splice(i, 1);
          this.refreshGrid();
        },
      }, "×"));
    }));
  }

  /** Loads the table's metadata and (re)builds the grid. */
  async load() {
    const startedAt = performance.now();
    try {
      this.table = await get(`/tables/${enc(this.id)}`);
    } catch (err) {
      replace(this.gridHost, h("p", { class: "error" }, err.message));
      return;
    }
    replace(this.filterColumn, this.table.columns.map((c) => h("option", { value: c.name }, c.name)));
    await this.refreshGrid(startedAt);
    if (!this.versions.hidden) this.loadVersions();
  }

  /** What the grid shows: version, columns and rows count. */
  async viewed() {
    if (this.viewVersion === null) return { version: this.table.version, columns: this.table.columns, rowCount: this.table.row_count };
    const v = await get(`/tables/${enc(this.id)}/versions/${this.viewVersion}`);
    return { version: v.version, columns: v.columns, rowCount: v.row_count };
  }

  async refreshGrid(startedAt = performance.now()) {
    let view;
    try {
      view = await this.viewed();
    } catch (err) {
      showError(err);
      return;
    }
    this.view = view;
    // A sort or filter on a column this version lacks (deleted, renamed elsewhere, an old
    // version) would make every page request fail: drop it.
    const names = new Set(view.columns.map((c) => c.name));
    if (this.sort && !names.has(this.sort.column)) this.sort = null;
    this.filters = this.filters.filter((f) => names.has(f.column));
    const editable = this.viewVersion === null;
    for (const btn of this.editButtons) btn.disabled = !editable;
    this.updateUndoButtons();
    this.title.textContent = this.table.name;
    this.renderChips();
    this.renderBanner();
    const rowCount = this.filters.length ? null : view.rowCount;
    const opts = {
      label: `${this.table.name}, version ${view.version}`,
      sort: this.sort,
      highlight: this.diff && this.diff.to === view.version ? this.diff.cells : null,
      added: this.diff && this.diff.to === view.version ? this.diff.added : null,
      onEdit: editable ? (row, column, value) => this.editCell(row, column, value) : null,
      onPaste: editable ? (at, block) => this.pasteBlock(at, block) : null,
      onSort: (name) => this.toggleSort(name),
      onCount: (n, exact) => this.updateStatus(n, exact),
      onSelect: (size) => {
        this.selection = size;
        this.updateStatus(this.grid?.rowCount ?? 0, this.grid?.exact ?? false);
      },
      onCopied: (rows, cols) => toast(`Copied ${plural(rows, "row")} × ${plural(cols, "column")}.`),
      onMessage: (text) => toast(text),
      onError: showError,
      fetchPage: (offset, limit) => this.fetchRows(view.version, offset, limit),
      startedAt,
    };
    if (!this.grid) {
      this.grid = new Grid({ ...opts, columns: view.columns, rowCount });
      replace(this.gridHost, this.grid.el, this.noMatch);
    } else {
      this.grid.reset(view.columns, rowCount, opts);
    }
  }

  async fetchRows(version, offset, limit, filters = this.filters) {
    const q = new URLSearchParams({ limit: String(limit), cursor: `o${offset}`, version: String(version) });
    if (this.sort) q.append("sort", `${this.sort.column}:${this.sort.desc ? "desc" : "asc"}`);
    for (const f of filters) q.append("filter", `${f.column}:${f.op}:${f.value}`);
    const page = await get(`/tables/${enc(this.id)}/rows?${q}`);
    return { rows: page.rows, more: Boolean(page.next_cursor) };
  }

  updateStatus(n, exact) {
    const rows = exact ? `${count(n)} row${n === 1 ? "" : "s"}` : n > 0 ? `${count(n - 200)}+ rows` : "Loading rows…";
    const parts = [rows, `version ${this.view?.version ?? this.table.version}`];
    if (this.viewVersion !== null) parts.push("read-only");
    if (this.sort) parts.push(`sorted by ${this.sort.column}${this.sort.desc ? " (descending)" : ""}`);
    if (this.filters.length) parts.push(`${this.filters.length} filter${this.filters.length > 1 ? "s" : ""}`);
    if (this.selection) parts.push(`${plural(this.selection.rows, "row")} × ${plural(this.selection.cols, "column")} selected`);
    if (this.undoNote) parts.push(this.undoNote);
    this.status.textContent = parts.join(" · ");
    this.noMatch.hidden = !(exact && n === 0 && this.filters.length);
  }

  renderBanner() {
    const items = [];
    if (this.viewVersion !== null) {
      items.push(h("span", {}, `You are looking at version ${this.viewVersion}. Older versions are read-only.`),
        h("button", { type: "button", onclick: () => this.showVersion(null) }, "Back to the current version"));
    }
    if (this.diff && this.diff.to === this.view?.version) {
      items.push(h("span", {}, `Cells changed since version ${this.diff.from} are highlighted.`),
        h("button", { type: "button", onclick: () => this.clearDiff() }, "Clear highlights"));
    }
    this.banner.hidden = items.length === 0;
    replace(this.banner, items);
  }

  toggleSort(name) {
    if (!this.sort || this.sort.column !== name) this.sort = { column: name, desc: false };
    else if (!this.sort.desc) this.sort = { column: name, desc: true };
    else this.sort = null;
    this.refreshGrid();
  }

  /**
   * Sends operations; the answer is a new version. An error whose code is in `quiet` is
   * thrown without being shown (the caller handles it).
   */
  async change(ops, summary, quiet = []) {
    const before = this.table.version;
    const what = this.describe(ops);
    try {
      let result = await request("POST", `/tables/${enc(this.id)}/changes`, {
        body: summary ? { ops, summary } : { ops },
        headers: { "if-match": `"${this.table.version}"` },
      });
      if (result.kind === "change") result = await this.followChange(result, "Changing");
      this.undoStack.push({ before, after: result.version, what });
      this.ownVersion = result.version;
      this.redoStack = [];
      this.undoNote = null;
      this.table.version = result.version;
      this.table.row_count = result.row_count;
      this.table = await get(`/tables/${enc(this.id)}`);
      replace(this.filterColumn, this.table.columns.map((c) => h("option", { value: c.name }, c.name)));
      await this.refreshGrid();
      if (!this.versions.hidden) this.loadVersions();
      const notes = [];
      const nulled = result.nulled_cells || [];
      const nulledTotal = result.nulled_total ?? nulled.length;
      if (nulledTotal) notes.push(`${plural(nulledTotal, "cell")} that did not convert ${nulledTotal === 1 ? "was" : "were"} emptied: ${cellTexts(nulled, nulledTotal)}`);
      if (result.trimmed_cells) notes.push(`spaces trimmed in ${count(result.trimmed_cells)} cells`);
      // Emptied cells are data the user had: that note stays until dismissed.
      toast(`Saved as version ${result.version}${notes.length ? `: ${notes.join("; ")}` : ""}.`, nulledTotal ? "notice" : "info");
      return result;
    } catch (err) {
      if (quiet.includes(err.code)) {
        // The caller handles it.
      } else if (err.status === 409 && err.code !== "validation-failed") {
        // What this session could undo was before the other change: undoing it now would
        // undo that change too.
        this.undoStack = [];
        this.redoStack = [];
        toast("Someone else changed this table meanwhile; it has been reloaded.", "error");
        await this.load();
      } else {
        showError(err);
      }
      throw err;
    }
  }

  /**
   * Follows the job that applies a change of every row of a large table (202 from the
   * server), showing its progress; resolves with the change's answer when it is done.
   */
  async followChange(job, doing) {
    const note = toast(`${doing} all ${count(this.table.row_count)} rows as a job…`, "info", 0);
    const text = note?.querySelector("span");
    try {
      const done = await followJob(job, (j) => {
        if (text) text.textContent = `${doing} “${this.table.name}”: ${progressText(j)}`;
      });
      return done.result;
    } finally {
      note?.remove();
    }
  }

  /** A change as the status line names it: “the edit of “city” in row 2”. */
  describe(ops) {
    const name = (id) => this.view?.columns.find((c) => c.id === id)?.name ?? "a column";
    if (ops.length === 1) {
      const [op] = ops;
      if (op.op === "set_cells" && op.cells.length === 1) {
        const at = this.rowNumber(op.cells[0].row);
        return `the edit of “${name(op.cells[0].column)}”${at ? ` in row ${at}` : ""}`;
      }
      if (op.op === "set_cells") return `the change of ${plural(op.cells.length, "cell")}`;
      if (op.op === "insert_rows") return op.rows.length === 1 ? "the added row" : `the ${count(op.rows.length)} added rows`;
      if (op.op === "delete_rows") return op.rows.length === 1 ? "the deleted row" : `the ${count(op.rows.length)} deleted rows`;
      if (op.op === "add_column") return `the added column “${op.name}”`;
      if (op.op === "drop_column") return `the deleted column “${name(op.column)}”`;
      if (op.op === "rename_column") return `the renaming of “${name(op.column)}” to “${op.to}”`;
      if (op.op === "change_type") return `the type change of “${name(op.column)}”`;
    }
    if (ops.some((o) => o.op === "set_cells") && ops.some((o) => o.op === "insert_rows")) return "the paste";
    return "the change";
  }

  /** The row's number as shown (1 = first) among the rows loaded, or 0. */
  rowNumber(id) {
    for (const [p, page] of this.grid?.pages ?? []) {
      const i = page.rows.findIndex((r) => r.id === id);
      if (i >= 0) return p * 200 + i + 1; // 200 rows a page of the grid (grid.js PAGE)
    }
    return 0;
  }

  updateUndoButtons() {
    const editable = this.viewVersion === null;
    this.undoButton.disabled = !editable || !this.undoStack.length || this.undoing;
    this.redoButton.disabled = !editable || !this.redoStack.length || this.undoing;
    const top = this.undoStack.at(-1);
    const next = this.redoStack.at(-1);
    this.undoButton.title = top ? `Undo ${top.what}` : "Nothing of yours to undo";
    this.redoButton.title = next ? `Redo ${next.what}` : "Nothing to redo";
  }

  /** Ctrl+Z undoes; Ctrl+Y and Ctrl+Shift+Z redo — outside text fields, which keep their own. */
  onUndoKey(e) {
    const ctrl = e.ctrlKey || e.metaKey;
    if (!ctrl || e.altKey) return;
    const t = e.target;
    if (t.closest?.("input, textarea, select, [contenteditable]")) return;
    const key = e.key.toLowerCase();
    if (key === "z" && !e.shiftKey) {
      e.preventDefault();
      this.undo();
    } else if (key === "y" || (key === "z" && e.shiftKey)) {
      e.preventDefault();
      this.redo();
    }
  }

  /** Undoes this session's last change: a new version equal to the one before it. */
  undo() {
    const entry = this.undoStack.at(-1);
    if (!entry || this.undoing || this.viewVersion !== null) return null;
    return this.step(entry.before, () => {
      this.undoStack.pop();
      this.redoStack.push(entry);
      return `Undone: ${entry.what}`;
    });
  }

  /** Does again the change last undone: a new version equal to the one it had made. */
  redo() {
    const entry = this.redoStack.at(-1);
    if (!entry || this.undoing || this.viewVersion !== null) return null;
    return this.step(entry.after, () => {
      this.redoStack.pop();
      this.undoStack.push(entry);
      return `Redone: ${entry.what}`;
    });
  }

  /**
   * Reverts to `version` (the content before or after a change) when the table is still at
   * the version this session's last step made (If-Match): a change made meanwhile elsewhere
   * is never undone here. Each undo or redo is itself a new version.
   */
  async step(version, done) {
    this.undoing = true;
    this.updateUndoButtons();
    const at = this.ownVersion;
    try {
      let result = await request("POST", `/tables/${enc(this.id)}/revert`, {
        body: { version },
        headers: { "if-match": `"${at}"` },
      });
      if (result.kind === "change") result = await this.followChange(result, "Undoing");
      const note = done();
      this.ownVersion = result.version;
      this.undoNote = `${note} (version ${result.version} equals version ${version})`;
      toast(`${this.undoNote}.`);
      this.diff = null;
      this.diffBox.hidden = true;
      await this.load();
    } catch (err) {
      if (err.status === 409) {
        this.undoStack = [];
        this.redoStack = [];
        toast("The table was changed elsewhere meanwhile, so there is nothing of yours left to undo; it has been reloaded.", "error");
        await this.load();
      } else {
        showError(err);
      }
    } finally {
      this.undoing = false;
      this.updateUndoButtons();
    }
  }

  editCell(row, column, value) {
    return this.change([{ op: "set_cells", cells: [{ row, column: column.id, value }] }]);
  }

  /**
   * Pastes a block of cells at `at`: the rows there are changed, rows past the end are added,
   * columns past the last are left out; all of it is one new version.
   */
  async pasteBlock(at, block) {
    const columns = this.view.columns.slice(at.col);
    if (block.length > PASTE_MAX_ROWS) {
      toast(`Paste at most ${count(PASTE_MAX_ROWS)} rows at a time.`, "error");
      return;
    }
    const width = Math.max(...block.map((r) => r.length));
    const value = (text) => (text.trim() === "" ? null : text);
    let existing;
    try {
      ({ rows: existing } = await this.fetchRows(this.view.version, at.row, block.length));
    } catch (err) {
      showError(err);
      return;
    }
    if (existing.length < block.length && this.filters.length) {
      toast("The paste runs past the last filtered row. Clear the filters to add rows.", "error");
      return;
    }
    const cells = [];
    const added = [];
    block.forEach((line, i) => {
      const target = existing[i];
      const fields = {};
      line.slice(0, columns.length).forEach((text, j) => {
        if (target) cells.push({ row: target.id, column: columns[j].id, value: value(text) });
        else fields[columns[j].id] = value(text);
      });
      if (!target) added.push(fields);
    });
    const ops = [];
    if (cells.length) ops.push({ op: "set_cells", cells });
    if (added.length) {
      const last = existing[existing.length - 1];
      ops.push({ op: "insert_rows", rows: added, ...(last ? { after: last.id } : {}) });
    }
    if (!ops.length) return;
    const skipped = width > columns.length ? ` ${width - columns.length} column${width - columns.length > 1 ? "s" : ""} past the last were left out.` : "";
    await this.change(ops, `Pasted ${block.length} × ${Math.min(width, columns.length)} cells`).catch(() => {});
    if (skipped) toast(skipped.trim());
  }

  activeRow() {
    const { row } = this.grid.active;
    return this.grid.rowAt(row);
  }

  async addRow() {
    const row = this.activeRow();
    await this.change([{ op: "insert_rows", rows: [{}], ...(row ? { after: row.id } : {}) }]).catch(() => {});
  }

  async deleteRow() {
    const row = this.activeRow();
    if (!row) return toast("Pick a row in the table first.");
    const n = this.grid.active.row + 1;
    if (await confirmDialog("Delete row", `Delete row ${n}? A new version is made; revert brings it back.`, "Delete row", true)) {
      await this.change([{ op: "delete_rows", rows: [row.id] }]).catch(() => {});
    }
  }

  async addColumn() {
    const after = this.view.columns[this.grid.active.col];
    const spec = await modal("Add a column", (done) => {
      const name = h("input", { type: "text", required: true, autocomplete: "off" });
      const type = h("select", {}, TYPES.map((t) => h("option", { value: t }, t)));
      const formula = h("input", { type: "text", autocomplete: "off", placeholder: "price * quantity" });
      return h("form", {
        onsubmit: (e) => {
          e.preventDefault();
          done({ name: name.value.trim(), type: type.value, formula: formula.value.trim() });
        },
      },
      field("Name", name),
      field("Type", type),
      field("Formula (optional)", formula, "Arithmetic over other columns, e.g. price * quantity."),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => done(null) }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Add column")));
    });
    if (!spec || !spec.name) return;
    const op = { op: "add_column", name: spec.name, type: spec.type };
    if (after) op.after = after.id;
    if (spec.formula) op.formula = spec.formula;
    await this.change([op]).catch(() => {});
  }

  /** Rename the selected column and/or change its type, as one version. */
  async editColumn() {
    const column = this.view.columns[this.grid.active.col];
    if (!column) return;
    const spec = await modal(`Edit the column “${column.name}”`, (done) => {
      const name = h("input", { type: "text", required: true, autocomplete: "off", value: column.name });
      const type = h("select", {}, TYPES.map((t) => h("option", { value: t, selected: t === column.type }, t)));
      const decimal = h("select", {},
        h("option", { value: "" }, "As the column's numbers show"),
        h("option", { value: "." }, "Decimal point: 1,234.5"),
        h("option", { value: "," }, "Decimal comma: 1.234,5 or 1 234,5"));
      const invalid = h("input", { type: "checkbox" });
      // What the type change would do, asked of the server (it reads every row): the mark
      // numbers would be read with and the cells that would not convert.
      const preview = h("p", { class: "hint type-preview", "aria-live": "polite" });
      let asked = 0;
      const update = async () => {
        const n = ++asked;
        if (type.value === column.type) return replace(preview);
        replace(preview, "Checking every cell…");
        const q = new URLSearchParams({ column: column.id, to: type.value });
        if (decimal.value) q.set("decimal", decimal.value);
        let p;
        try {
          p = await get(`/tables/${enc(this.id)}/type-change?${q}`);
        } catch (err) {
          if (n === asked) replace(preview, err.message);
          return;
        }
        if (n !== asked) return;
        const bad = p.unconvertible_total
          ? `${plural(p.unconvertible_total, "cell")} will not convert: ${cellTexts(p.unconvertible, p.unconvertible_total)}.`
          : "Every cell converts.";
        replace(preview, p.reading ? `${readingText(p.reading)}. ` : "", bad);
      };
      type.addEventListener("change", update);
      decimal.addEventListener("change", update);
      return h("form", {
        onsubmit: (e) => {
          e.preventDefault();
          done({ name: name.value.trim(), type: type.value, decimal: decimal.value, invalid: invalid.checked });
        },
      },
      field("Name", name),
      column.reading ? h("p", { class: "hint" }, `${readingText(column.reading)}.`) : null,
      field("Type", type, "Cells that do not read as the new type are refused, with the rows named."),
      field("Numbers in text", decimal, "How numbers written as text are read when they become numbers."),
      preview,
      h("label", { class: "check" }, invalid, " Empty the cells that do not convert (they are listed) instead of refusing"),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => done(null) }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Save column")));
    });
    if (!spec || !spec.name) return;
    const ops = [];
    if (spec.name !== column.name) ops.push({ op: "rename_column", column: column.id, to: spec.name });
    if (spec.type !== column.type) {
      const op = { op: "change_type", column: column.id, to: spec.type };
      if (spec.decimal) op.reading = { decimal: spec.decimal };
      if (spec.invalid) op.invalid = "null";
      ops.push(op);
    }
    if (!ops.length) return;
    // Sorting and filters follow the column to its new name (the new version is shown with
    // them); they go back if the change is refused.
    const before = { sort: this.sort && { ...this.sort }, filters: this.filters.map((f) => ({ ...f })) };
    if (this.sort?.column === column.name) this.sort.column = spec.name;
    for (const f of this.filters) if (f.column === column.name) f.column = spec.name;
    const restore = () => {
      this.sort = before.sort;
      this.filters = before.filters;
      return this.refreshGrid();
    };
    await this.change(ops, undefined, ["change-too-large"]).catch(async (err) => {
      if (err.code !== "change-too-large") return restore();
      // A large table: the type change goes over every row as a change (a job) of its own,
      // then the rename is a second version.
      try {
        for (const op of [...ops].reverse()) await this.change([op]);
      } catch {
        await this.load();
      }
    });
  }

  async deleteColumn() {
    const column = this.view.columns[this.grid.active.col];
    if (!column) return;
    if (await confirmDialog("Delete column", `Delete the column “${column.name}”? A new version is made; revert brings it back.`, "Delete column", true)) {
      await this.change([{ op: "drop_column", column: column.id }]).catch(() => {});
    }
  }

  toggleVersions() {
    const open = this.versions.hidden;
    this.versions.hidden = !open;
    this.versionsButton.setAttribute("aria-expanded", String(open));
    if (open) this.loadVersions();
  }

  async loadVersions(more = false) {
    // Read from the newest; a long history shows its first 200 and the rest on request.
    this.versionList ||= new CursorList(`/tables/${enc(this.id)}/versions`, { step: 200 });
    let items;
    try {
      items = await (more ? this.versionList.load() : this.versionList.reload());
    } catch (err) {
      replace(this.versions, h("p", { class: "error" }, err.message));
      return;
    }
    const options = (selected) => items.map((v) => h("option", { value: String(v.version), selected: v.version === selected }, `Version ${v.version}`));
    const current = this.table.version;
    const from = h("select", {}, options(Math.max(1, current - 1)));
    const to = h("select", {}, options(current));
    const list = h("ol", { class: "version-list", reversed: true },
      items.map((v) => h("li", { class: v.version === current ? "current" : "", dataset: { version: String(v.version) } },
        h("div", { class: "version-main" },
          h("strong", {}, `Version ${v.version}`),
          v.version === current ? h("span", { class: "badge" }, "current") : null,
          h("span", { class: "muted" }, ` ${v.summary || ""}`)),
        h("div", { class: "version-meta muted" }, `${count(v.row_count)} rows · ${when(v.created_at)}`),
        h("div", { class: "version-actions" },
          h("button", { type: "button", onclick: () => this.showVersion(v.version === current ? null : v.version) }, "View"),
          v.version === current ? null : h("button", { type: "button", onclick: () => this.revert(v.version) }, "Revert to this")))));
    replace(this.versions,
      h("h4", {}, "Versions"),
      h("form", {
        class: "compare",
        onsubmit: (e) => {
          e.preventDefault();
          this.showDiff(Number(from.value), Number(to.value));
        },
      }, field("Compare", from), field("with", to), h("button", { type: "submit" }, "Show changes")),
      list,
      listEnd(this.versionList, "versions", () => this.loadVersions(true)));
  }

  async showVersion(version) {
    this.viewVersion = version;
    await this.refreshGrid();
  }

  async revert(version) {
    if (!(await confirmDialog("Revert", `Make a new version equal to version ${version}? Nothing is lost: the versions in between stay in the history.`, "Revert"))) return;
    try {
      let result = await request("POST", `/tables/${enc(this.id)}/revert`, {
        body: { version },
        headers: { "if-match": `"${this.table.version}"` },
      });
      if (result.kind === "change") result = await this.followChange(result, "Reverting");
      this.undoStack.push({ before: this.table.version, after: result.version, what: `the revert to version ${version}` });
      this.redoStack = [];
      this.ownVersion = result.version;
      this.undoNote = null;
      toast(`Reverted: version ${result.version} equals version ${version}.`);
      this.viewVersion = null;
      // The diff was of versions before this one: it closes.
      this.diff = null;
      this.diffBox.hidden = true;
      replace(this.diffBox);
      await this.load();
    } catch (err) {
      showError(err);
    }
  }

  async showDiff(from, to) {
    let d;
    try {
      d = await get(`/tables/${enc(this.id)}/diff?from=${from}&to=${to}`);
    } catch (err) {
      showError(err);
      return;
    }
    const cells = new Map();
    for (const c of d.cells_changed) {
      if (!cells.has(c.row)) cells.set(c.row, new Set());
      cells.get(c.row).add(c.column);
    }
    this.diff = { from, to, cells, added: new Set(d.rows_added) };
    const columnsTo = (await this.versionColumns(to)) || [];
    const typeOf = (id) => columnsTo.find((c) => c.id === id)?.type || "text";
    const schema = d.schema.map((s) => {
      switch (s.change) {
        case "added": return `Column “${s.name}” added.`;
        case "removed": return `Column “${s.name}” removed.`;
        case "renamed": return `Column “${s.from}” renamed to “${s.to}”.`;
        case "type_changed": return `Column “${s.name}” changed from ${s.from} to ${s.to}.`;
        default: return "Columns reordered.";
      }
    });
    const summary = [
      `${count(d.cells_changed.length)} cell${d.cells_changed.length === 1 ? "" : "s"} changed`,
      `${count(d.rows_added.length)} row${d.rows_added.length === 1 ? "" : "s"} added`,
      `${count(d.rows_removed.length)} removed`,
    ];
    if (d.rows_moved) summary.push(`${count(d.rows_moved)} moved`);
    const shown = d.cells_changed.slice(0, 500);
    const places = await this.rowPlaces(to, new Set(shown.map((c) => c.row)), columnsTo);
    // In the grid's order, top to bottom (rows not found last, as the server listed them).
    const place = (c) => places.get(c.row)?.index ?? Infinity;
    const colAt = (c) => columnsTo.findIndex((col) => col.id === c.column);
    shown.sort((a, b) => place(a) - place(b) || colAt(a) - colAt(b));
    const name = (c) => {
      const at = places.get(c.row);
      if (!at) return `row id ${c.row}`;
      return at.first ? `row ${count(at.index + 1)}, ${at.first}` : `row ${count(at.index + 1)}`;
    };
    // "Go to" puts the grid's active cell on the change (each in turn with "Next change").
    let next = 0;
    const goTo = (c) => this.goToChange(places.get(c.row), columnsTo.findIndex((col) => col.id === c.column));
    const captionId = uid("cap");
    replace(this.diffBox,
      h("h4", {}, `Changes from version ${from} to version ${to}`),
      h("p", {}, `${summary.join(", ")}.`,
        shown.length ? h("button", { type: "button", class: "next-change", onclick: () => {
          goTo(shown[next % shown.length]);
          next += 1;
        } }, "Go to next change") : null),
      schema.length ? h("ul", {}, schema.map((s) => h("li", {}, s))) : null,
      shown.length ? h("table", { class: "diff-table", "aria-describedby": captionId },
        h("caption", { id: captionId, class: "sr-only" }, "Changed cells"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Row"), h("th", { scope: "col" }, "Column"), h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Go to")))),
        h("tbody", {}, shown.map((c) => h("tr", {},
          h("td", { class: "diff-row" }, name(c)),
          h("td", {}, c.column_name),
          h("td", {}, h("del", {}, display(c.from, typeOf(c.column)) || "(empty)")),
          h("td", {}, h("ins", {}, display(c.to, typeOf(c.column)) || "(empty)")),
          h("td", {}, places.has(c.row)
            ? h("button", { type: "button", class: "go-to-change", "aria-label": `Go to ${name(c)}, ${c.column_name}`, onclick: () => goTo(c) }, "Go to")
            : null))))) : null,
      d.cells_changed.length > shown.length ? h("p", { class: "muted" }, `The first ${shown.length} changed cells are listed.`) : null);
    this.diffBox.hidden = false;
    this.viewVersion = to === this.table.version ? null : to;
    await this.refreshGrid();
    this.el.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  /**
   * Where rows are in a version (no sort, no filter): row id → {index, first}, `first` the
   * row's first column as shown. Rows are read 1,000 at a time until all are found, up to
   * 20,000 rows; the diff names rows beyond that by their id.
   */
  async rowPlaces(version, ids, columns) {
    const places = new Map();
    const firstType = columns[0]?.type || "text";
    let cursor = "o0";
    for (let offset = 0; ids.size > places.size && cursor && offset < 20000; offset += 1000) {
      let page;
      try {
        page = await get(`/tables/${enc(this.id)}/rows?${new URLSearchParams({ limit: "1000", cursor, version: String(version) })}`);
      } catch {
        break;
      }
      page.rows.forEach((r, i) => {
        if (ids.has(r.id)) places.set(r.id, { index: offset + i, first: display(r.cells[0], firstType) });
      });
      cursor = page.next_cursor;
    }
    return places;
  }

  /** Scrolls the grid to a changed cell and makes it the active cell. */
  goToChange(at, col) {
    if (!at || !this.grid) return;
    if (this.sort || this.filters.length) {
      toast("Rows are sorted or filtered: clear them to go to the changes by their place.", "notice");
      return;
    }
    this.grid.setActive(at.index, Math.max(0, col));
    this.grid.el.focus({ preventScroll: true });
  }

  async versionColumns(version) {
    if (version === this.table.version) return this.table.columns;
    try {
      return (await get(`/tables/${enc(this.id)}/versions/${version}`)).columns;
    } catch {
      return null;
    }
  }

  clearDiff() {
    this.diff = null;
    this.diffBox.hidden = true;
    this.refreshGrid();
  }

  async exportDialog() {
    const [templates, google] = await Promise.all([
      listAll("/templates").then((p) => p.items).catch(() => []),
      // The Google Sheets integration is offered only where the server has it.
      get("/integrations/google").catch(() => null),
    ]);
    const version = this.view?.version ?? this.table.version;
    await modal(`Export “${this.table.name}”`, (done) => {
      const formatName = uid("fmt");
      const destName = uid("dest");
      const radio = (name, value, label, checked, hint) => {
        const id = uid("r");
        return h("div", { class: "radio" },
          h("input", { type: "radio", name, value, id, checked }),
          h("label", { for: id }, label),
          hint ? h("small", { class: "hint" }, hint) : null);
      };
      const template = h("select", {},
        h("option", { value: "" }, "No template"),
        templates.map((t) => h("option", { value: t.id }, t.name)));
      const google_ok = google && typeof google.connected === "boolean";
      const destinations = h("fieldset", {},
        h("legend", {}, "Where to"),
        radio(destName, "download", "Download now", true),
        radio(destName, "job", "Export in the background", false, "For large tables: follow it under Exports, download when ready."),
        google_ok && google.connected ? radio(destName, "google", "Send to Google Sheets", false) : null,
        google_ok && !google.connected ? h("div", { class: "radio" },
          h("span", {}, "Google Sheets: connect your account first. "),
          h("button", { type: "button", onclick: () => connectGoogle() }, "Connect Google")) : null);
      const error = h("p", { class: "error", role: "alert", hidden: true });
      const submit = h("button", { type: "submit", class: "primary" }, "Export");
      const form = h("form", {
        onsubmit: async (e) => {
          e.preventDefault();
          const data = new FormData(form);
          const format = data.get(formatName);
          const dest = data.get(destName);
          submit.disabled = true;
          error.hidden = true;
          try {
            if (dest === "download") {
              await this.download(format, template.value, version);
              done(true);
            } else {
              const body = { table_id: this.id, version, format };
              if (template.value) body.template_id = template.value;
              if (dest === "google") body.destination = { type: "google_sheets" };
              await post("/exports", body);
              toast("Export started. Follow it under Exports.");
              done(true);
            }
          } catch (err) {
            error.textContent = err.message;
            error.hidden = false;
            submit.disabled = false;
          }
        },
      },
      h("fieldset", {},
        h("legend", {}, "Format"),
        radio(formatName, "xlsx", "Excel workbook (.xlsx)", true),
        radio(formatName, "csv", "CSV (.csv)", false),
        radio(formatName, "json", "JSON (.json)", false)),
      field("Template", template, "Column mapping, formats and layout; manage them under Templates."),
      destinations,
      error,
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => done(null) }, "Cancel"),
        submit));
      return form;
    });
  }

  async download(format, templateId, version) {
    const q = new URLSearchParams({ format, version: String(version) });
    if (templateId) q.set("template", templateId);
    const res = await request("GET", `/tables/${enc(this.id)}/download?${q}`, { raw: true });
    const disposition = res.headers.get("content-disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const blob = await res.blob();
    saveBlob(blob, match ? match[1] : `${this.table.name}.${format}`);
    toast(`Downloaded ${match ? match[1] : format.toUpperCase()}.`);
  }

  destroy() {
    this.grid?.destroy();
  }
}

async function connectGoogle() {
  try {
    const res = await post("/integrations/google/connect", {});
    const url = res && (res.authorization_url || res.authorize_url || res.url);
    if (url) window.location.assign(url);
  } catch (err) {
    showError(err);
  }
}
