// A virtualised data grid over the rows API: only the rows in view (and a few around them)
// are in the DOM, rows are fetched a page at a time at the offset being looked at (the API's
// `o<n>` cursor), so a table of any length scrolls at the same speed. Sorting and filtering
// happen on the server; the grid only shows what it is given.
//
// Keyboard: arrows, Page Up/Down, Home/End (Ctrl for rows) move the active cell, with Shift
// they extend the selected range from its anchor; Ctrl+A selects the loaded rows; Ctrl+C
// copies the range (TSV and an HTML table, as spreadsheets put them on the clipboard).
// Enter, F2 or a double click edit the cell in place, keeping its value; typing a character
// starts with that character instead. Enter saves and moves down, Tab saves and moves right,
// Escape cancels; Delete empties the cell. The mouse selects a range by dragging or with
// Shift+click. The grid is one tab stop (role=grid with aria-activedescendant and
// aria-selected on the cells of the range), as the ARIA grid pattern describes.

import { h, uid } from "./dom.js";
import { NUMERIC, display, editText, readingText } from "./format.js";

const ROW_H = 32;
const PAGE = 200;
const OVERSCAN = 6;
// Browsers cap an element's height (Chrome near 33M px, Firefox near 17M px); past this the
// scroll position is scaled to the rows instead of 1 px per px.
const MAX_PX = 8_000_000;
const MAX_PAGES = 40;
const ROWNUM_W = 64;

const MIN_COL_W = 48;
const MAX_COL_W = 800;
// The first column stays in view while scrolling right, unless it (with the row numbers)
// would take more than this share of the grid's width (a phone): then nothing would be left
// to scroll through.
const FREEZE_MAX_SHARE = 0.5;
// A copy of rows not yet fetched fetches them, up to this many.
const COPY_MAX_ROWS = 10_000;

/** A header's name: it gives way to the badge (ellipsis), down to about three characters. */
function nameSpan(name) {
  const span = h("span", { class: "col-name", title: name }, name);
  span.style.setProperty("--name-ch", `${[...name].length}ch`);
  return span;
}

function widthFor(column) {
  const base = NUMERIC.has(column.type) ? 120 : column.type === "boolean" ? 90 : column.type === "date" ? 130 : 180;
  // Room for the name, the type badge and the sort mark.
  const header = column.name.length * 8.5 + column.type.length * 6.5 + 52;
  return Math.round(Math.min(360, Math.max(base, header)));
}

export class Grid {
  /**
   * @param {object} opts
   *   label: accessible name; columns: [{id, name, type}];
   *   rowCount: number of rows, or null when unknown (filtered: it grows as pages arrive);
   *   fetchPage(offset, limit) → Promise<{rows: [{id, cells}], more: boolean}>;
   *   onEdit(rowId, column, value) → Promise (none: read-only);
   *   onPaste({row, col}, cells: string[][]) → a block pasted at the active cell;
   *   onSort(column) (none: headers are not buttons); sort: {column, desc} | null;
   *   highlight: Map<rowId, Set<columnId>>, added: Set<rowId> (diffs);
   *   onCount(count, exact); onError(err); startedAt: performance.now() of the request.
   */
  constructor(opts) {
    this.opts = opts;
    this.id = uid("grid");
    this.startedAt = opts.startedAt ?? performance.now();
    this.active = { row: 0, col: 0 };
    // The selected range is the rectangle between `anchor` (where Shift+arrows started) and
    // `extent` (the corner that moves); the active cell is inside it.
    this.anchor = { row: 0, col: 0 };
    this.extent = { row: 0, col: 0 };
    this.dragging = false;
    this.editing = null;
    this.rowEls = new Map();
    /** Widths a person set, by column id: kept across versions, sorts and filters. */
    this.customWidths = new Map();
    this.frame = 0;
    this.head = h("div", { class: "grid-head", role: "rowgroup" });
    this.body = h("div", { class: "grid-body", role: "rowgroup" });
    this.el = h("div", {
      class: "grid",
      role: "grid",
      tabindex: "0",
      id: this.id,
      "aria-label": opts.label || "Table",
      "aria-readonly": opts.onEdit ? null : "true",
      "aria-multiselectable": "true",
      onscroll: () => this.schedule(),
      onkeydown: (e) => this.onKey(e),
      onpaste: (e) => this.onPaste(e),
      oncopy: (e) => this.onCopyEvent(e),
      onmousedown: (e) => this.onMouseDown(e),
      onmouseover: (e) => this.onMouseOver(e),
      ondblclick: (e) => {
        if (this.cellFrom(e.target)) this.startEdit();
      },
      onfocus: () => this.updateActive(false),
    }, this.head, this.body);
    this.stopDrag = () => {
      this.dragging = false;
      window.removeEventListener("mouseup", this.stopDrag);
    };
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.el);
    this.reset(opts.columns, opts.rowCount, opts);
  }

  /** New data (another version, sort or filter): forget every page, keep the place. */
  reset(columns, rowCount, changes = {}) {
    Object.assign(this.opts, changes);
    this.generation = (this.generation || 0) + 1;
    this.columns = columns;
    this.pages = new Map();
    this.loading = new Set();
    this.exact = rowCount !== null && rowCount !== undefined;
    this.rowCount = this.exact ? rowCount : 0;
    this.firstPainted = false;
    this.startedAt = changes.startedAt ?? performance.now();
    this.cancelEdit();
    for (const row of this.rowEls.values()) row.remove();
    this.rowEls.clear();
    this.widths = columns.map((c) => this.customWidths.get(c.id) ?? widthFor(c));
    this.layoutColumns();
    this.el.setAttribute("aria-colcount", String(columns.length + 1));
    this.active.col = Math.min(this.active.col, Math.max(0, columns.length - 1));
    // New rows under the same place: the range does not follow them.
    this.anchor = { ...this.active };
    this.extent = { ...this.active };
    this.opts.onSelect?.(null);
    this.buildHead();
    this.updateCount();
    this.load(0);
    this.schedule();
  }

  /** Column offsets and the CSS grid template from `this.widths`. */
  layoutColumns() {
    this.lefts = [];
    let x = ROWNUM_W;
    for (const w of this.widths) {
      this.lefts.push(x);
      x += w;
    }
    this.totalWidth = x;
    this.el.style.setProperty("--cols", [`${ROWNUM_W}px`, ...this.widths.map((w) => `${w}px`)].join(" "));
    this.el.style.setProperty("--grid-w", `${x}px`);
    this.el.style.setProperty("--frozen-left", `${ROWNUM_W}px`);
    this.updateFreeze();
  }

  /** Whether the first column stays in view while scrolling right (see FREEZE_MAX_SHARE). */
  updateFreeze() {
    const width = this.el.clientWidth;
    const frozen = this.widths.length > 1 && width > 0 && ROWNUM_W + this.widths[0] <= width * FREEZE_MAX_SHARE;
    if (this.el.classList.contains("freeze") !== frozen) this.el.classList.toggle("freeze", frozen);
  }

  /** The width the frozen first column covers at the left (0 when it scrolls). */
  frozenWidth() {
    return this.el.classList.contains("freeze") ? this.widths[0] : 0;
  }

  /** Sets column `j`'s width (pixels, kept within bounds) and lays the grid out again. */
  resizeColumn(j, width, handle) {
    const w = Math.round(Math.min(MAX_COL_W, Math.max(MIN_COL_W, width)));
    this.widths[j] = w;
    this.customWidths.set(this.columns[j].id, w);
    this.layoutColumns();
    handle?.setAttribute("aria-valuenow", String(w));
  }

  /** The drag handle on a header's right edge; with the keyboard, arrows resize by 16 px. */
  resizeHandle(j, column) {
    const handle = h("div", {
      class: "col-resize",
      role: "separator",
      tabindex: "0",
      "aria-orientation": "vertical",
      "aria-label": `Width of ${column.name}`,
      "aria-valuemin": String(MIN_COL_W),
      "aria-valuemax": String(MAX_COL_W),
      "aria-valuenow": String(this.widths[j]),
      onpointerdown: (e) => {
        e.preventDefault();
        e.stopPropagation();
        const startX = e.clientX;
        const startW = this.widths[j];
        handle.setPointerCapture(e.pointerId);
        const move = (ev) => this.resizeColumn(j, startW + ev.clientX - startX, handle);
        const up = () => {
          handle.removeEventListener("pointermove", move);
          handle.removeEventListener("pointerup", up);
          handle.removeEventListener("pointercancel", up);
        };
        handle.addEventListener("pointermove", move);
        handle.addEventListener("pointerup", up);
        handle.addEventListener("pointercancel", up);
      },
      onkeydown: (e) => {
        const step = { ArrowRight: 16, ArrowLeft: -16 }[e.key];
        if (!step) return;
        e.preventDefault();
        e.stopPropagation();
        this.resizeColumn(j, this.widths[j] + step, handle);
      },
      onclick: (e) => e.stopPropagation(),
    });
    return handle;
  }

  buildHead() {
    const { sort, onSort } = this.opts;
    const cells = this.columns.map((c, j) => {
      const sorted = sort && sort.column === c.name ? (sort.desc ? "descending" : "ascending") : null;
      const label = [
        nameSpan(c.name),
        h("span", { class: "col-type" }, c.type),
        sorted ? h("span", { class: "sort-mark", "aria-hidden": "true" }, sorted === "ascending" ? "▲" : "▼") : null,
      ];
      const classes = ["cell"];
      if (NUMERIC.has(c.type)) classes.push("num");
      if (j === 0) classes.push("first");
      return h("div", {
        role: "columnheader",
        class: classes.join(" "),
        "aria-colindex": String(j + 2),
        "aria-sort": sorted || (onSort ? "none" : null),
        dataset: { column: c.name },
        title: c.reading ? `${c.name} (${c.type}). ${readingText(c.reading)}.` : null,
      }, onSort
        ? h("button", { type: "button", class: "col-sort", title: `Sort by ${c.name}`, onclick: () => onSort(c.name) }, label)
        : label, this.resizeHandle(j, c));
    });
    this.head.replaceChildren(h("div", { class: "grid-row head", role: "row", "aria-rowindex": "1" },
      h("div", { class: "cell rownum", role: "columnheader", "aria-colindex": "1" }, h("span", { class: "sr-only" }, "Row"), "#"),
      cells));
  }

  updateCount() {
    this.el.setAttribute("aria-rowcount", this.exact ? String(this.rowCount + 1) : "-1");
    this.opts.onCount?.(this.rowCount, this.exact);
  }

  rowAt(i) {
    const page = this.pages.get(Math.floor(i / PAGE));
    if (!page) return undefined;
    return page.rows[i % PAGE] ?? null;
  }

  load(p) {
    if (this.pages.has(p) || this.loading.has(p)) return;
    if (this.exact && p * PAGE >= this.rowCount && p > 0) return;
    const generation = this.generation;
    this.loading.add(p);
    this.opts.fetchPage(p * PAGE, PAGE).then(({ rows, more }) => {
      if (generation !== this.generation) return;
      this.loading.delete(p);
      this.pages.set(p, { rows, used: performance.now() });
      const end = p * PAGE + rows.length;
      if (!more && (!this.exact || end !== this.rowCount)) {
        // The last page says how many rows there are (filtered, or changed meanwhile).
        this.rowCount = end;
        this.exact = true;
        this.updateCount();
      } else if (more && !this.exact && end + PAGE > this.rowCount) {
        this.rowCount = end + PAGE;
        this.updateCount();
      }
      this.evict();
      this.schedule();
    }).catch((err) => {
      if (generation !== this.generation) return;
      this.loading.delete(p);
      this.opts.onError?.(err);
    });
  }

  evict() {
    if (this.pages.size <= MAX_PAGES) return;
    const byAge = [...this.pages.entries()].sort((a, b) => a[1].used - b[1].used);
    for (const [p] of byAge.slice(0, this.pages.size - MAX_PAGES)) this.pages.delete(p);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** The scroll geometry: real pixels (ROW_H a row) against the scaled body. */
  geometry() {
    const headH = this.head.offsetHeight || ROW_H;
    const viewH = Math.max(ROW_H, this.el.clientHeight - headH);
    const realH = this.rowCount * ROW_H;
    const bodyH = Math.min(realH, MAX_PX);
    const scrollable = Math.max(0, bodyH - viewH);
    const realScrollable = Math.max(0, realH - viewH);
    const ratio = scrollable > 0 ? realScrollable / scrollable : 1;
    return { headH, viewH, realH, bodyH, ratio };
  }

  render() {
    this.updateFreeze();
    // The frozen column casts a shadow only when something is scrolled under it.
    const under = this.el.scrollLeft > 0;
    if (this.el.classList.contains("scrolled-x") !== under) this.el.classList.toggle("scrolled-x", under);
    const g = this.geometry();
    this.body.style.height = `${g.bodyH}px`;
    const top = this.el.scrollTop * g.ratio;
    const shift = this.el.scrollTop - top;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.rowCount, Math.ceil((top + g.viewH) / ROW_H) + OVERSCAN);
    for (let p = Math.floor(first / PAGE); p <= Math.floor(Math.max(first, last - 1) / PAGE); p += 1) {
      const page = this.pages.get(p);
      if (page) page.used = performance.now();
      else this.load(p);
    }
    const keep = new Map();
    const fresh = [];
    for (let i = first; i < last; i += 1) {
      const data = this.rowAt(i);
      if (data === null) continue; // past the end of a filtered table
      let row = this.rowEls.get(i);
      if (!row || row.data !== data) {
        row?.remove();
        row = this.buildRow(i, data);
        fresh.push(row);
      }
      row.style.transform = `translateY(${i * ROW_H + shift}px)`;
      keep.set(i, row);
    }
    for (const [i, row] of this.rowEls) if (!keep.has(i)) row.remove();
    this.rowEls = keep;
    if (fresh.length) this.body.append(...fresh);
    this.updateActive(false);
    if (!this.firstPainted && this.pages.has(0)) {
      this.firstPainted = true;
      // After the next paint: the time a person waits for the first rows.
      requestAnimationFrame(() => setTimeout(() => {
        const ms = performance.now() - this.startedAt;
        this.el.dataset.firstRenderMs = ms.toFixed(1);
        this.opts.onFirstPaint?.(ms);
      }, 0));
    }
  }

  buildRow(i, data) {
    const { highlight, added } = this.opts;
    const changed = data && highlight ? highlight.get(data.id) : null;
    const cls = ["grid-row"];
    if (!data) cls.push("loading");
    if (data && added && added.has(data.id)) cls.push("added");
    if (i % 2) cls.push("odd");
    const cells = this.columns.map((c, j) => {
      const value = data ? data.cells[j] : undefined;
      const classes = ["cell"];
      if (j === 0) classes.push("first");
      if (NUMERIC.has(c.type)) classes.push("num");
      if (value === null) classes.push("null");
      if (changed && changed.has(c.id)) classes.push("changed");
      const selected = this.inRange(i, j);
      if (selected) classes.push("selected");
      const text = data ? display(value, c.type) : "";
      return h("div", {
        role: "gridcell",
        class: classes.join(" "),
        id: `${this.id}-r${i}-c${j}`,
        "aria-colindex": String(j + 2),
        "aria-selected": selected ? "true" : "false",
        title: text.length > 24 ? text : null,
        dataset: { row: String(i), col: String(j), type: c.type },
      }, text);
    });
    const row = h("div", { class: cls.join(" "), role: "row", "aria-rowindex": String(i + 2), dataset: { index: String(i) } },
      h("div", { class: i >= this.range().top && i <= this.range().bottom ? "cell rownum in-range" : "cell rownum", role: "rowheader", "aria-colindex": "1" }, data ? String(i + 1) : "…"),
      cells);
    row.data = data;
    return row;
  }

  cellFrom(target) {
    const cell = target.closest?.('[role="gridcell"]');
    return cell && this.el.contains(cell) ? cell : null;
  }

  onMouseDown(e) {
    const cell = this.cellFrom(e.target);
    if (!cell || (this.editing && this.editing.cell === cell) || e.button !== 0) return;
    const at = { row: Number(cell.dataset.row), col: Number(cell.dataset.col) };
    if (e.shiftKey) this.extendTo(at.row, at.col, false);
    else {
      this.setActive(at.row, at.col, false);
      // Dragging over other cells selects the rectangle, until the button goes up anywhere.
      this.dragging = true;
      window.addEventListener("mouseup", this.stopDrag);
    }
    if (!this.editing) {
      e.preventDefault();
      this.el.focus({ preventScroll: true });
    }
  }

  onMouseOver(e) {
    if (!this.dragging) return;
    if (!(e.buttons & 1)) return this.stopDrag();
    const cell = this.cellFrom(e.target);
    if (!cell) return;
    const row = Number(cell.dataset.row);
    const col = Number(cell.dataset.col);
    if (row !== this.extent.row || col !== this.extent.col) this.extendTo(row, col, false);
  }

  clampRow(row) {
    return Math.min(Math.max(0, row), Math.max(0, this.rowCount - 1));
  }

  clampCol(col) {
    return Math.min(Math.max(0, col), Math.max(0, this.columns.length - 1));
  }

  /** Moves the active cell; the range becomes that one cell. */
  setActive(row, col, scroll = true) {
    this.active = { row: this.clampRow(row), col: this.clampCol(col) };
    this.anchor = { ...this.active };
    this.extent = { ...this.active };
    if (scroll) this.scrollToCell(this.active);
    this.updateActive(true);
    this.paintSelection();
  }

  /** Extends the range from its anchor to (row, col); the active cell stays. */
  extendTo(row, col, scroll = true) {
    this.extent = { row: this.clampRow(row), col: this.clampCol(col) };
    if (scroll) this.scrollToCell(this.extent);
    this.paintSelection();
  }

  /** The selected rectangle: first and last row and column, inclusive. */
  range() {
    const { anchor: a, extent: b } = this;
    return {
      top: Math.min(a.row, b.row), bottom: Math.max(a.row, b.row),
      left: Math.min(a.col, b.col), right: Math.max(a.col, b.col),
    };
  }

  inRange(row, col) {
    const r = this.range();
    return row >= r.top && row <= r.bottom && col >= r.left && col <= r.right;
  }

  /** Ctrl+A: every column of the rows loaded around the active row (pages in a row). */
  selectLoaded() {
    let first = Math.floor(this.active.row / PAGE);
    if (!this.pages.has(first)) return;
    let last = first;
    while (this.pages.has(first - 1)) first -= 1;
    while (this.pages.has(last + 1)) last += 1;
    const end = Math.min(this.rowCount, last * PAGE + this.pages.get(last).rows.length);
    this.anchor = { row: first * PAGE, col: 0 };
    this.extent = { row: Math.max(first * PAGE, end - 1), col: Math.max(0, this.columns.length - 1) };
    this.paintSelection();
  }

  /** The range's cells, rows and columns headers shown as selected (class and aria-selected). */
  paintSelection() {
    const r = this.range();
    for (const [i, row] of this.rowEls) {
      const rowIn = i >= r.top && i <= r.bottom;
      row.firstChild.classList.toggle("in-range", rowIn);
      for (const cell of row.querySelectorAll('[role="gridcell"]')) {
        const j = Number(cell.dataset.col);
        const on = rowIn && j >= r.left && j <= r.right;
        if (cell.classList.contains("selected") !== on) {
          cell.classList.toggle("selected", on);
          cell.setAttribute("aria-selected", on ? "true" : "false");
        }
      }
    }
    for (const head of this.head.querySelectorAll("[role=columnheader][data-column]")) {
      const j = Number(head.getAttribute("aria-colindex")) - 2;
      head.classList.toggle("in-range", j >= r.left && j <= r.right);
    }
    const rows = r.bottom - r.top + 1;
    const cols = r.right - r.left + 1;
    this.opts.onSelect?.(rows * cols > 1 ? { rows, cols } : null);
  }

  updateActive() {
    const id = `${this.id}-r${this.active.row}-c${this.active.col}`;
    for (const el of this.body.querySelectorAll(".cell.active")) if (el.id !== id) el.classList.remove("active");
    const cell = document.getElementById(id);
    if (cell) {
      cell.classList.add("active");
      this.el.setAttribute("aria-activedescendant", id);
    } else {
      this.el.removeAttribute("aria-activedescendant");
    }
  }

  /** Scrolls so that `at` is in view, beside the frozen first column. */
  scrollToCell(at) {
    const g = this.geometry();
    const realTop = this.el.scrollTop * g.ratio;
    const y = at.row * ROW_H;
    let target = null;
    if (y < realTop) target = y;
    else if (y + ROW_H > realTop + g.viewH) target = y + ROW_H - g.viewH;
    if (target !== null) this.el.scrollTop = target / g.ratio;
    const frozen = this.frozenWidth();
    if (!(frozen && at.col === 0)) {
      const left = this.lefts[at.col] ?? 0;
      const right = left + (this.widths[at.col] ?? 0);
      const hidden = ROWNUM_W + frozen; // what covers the left edge
      if (left - hidden < this.el.scrollLeft) this.el.scrollLeft = left - hidden;
      else if (right > this.el.scrollLeft + this.el.clientWidth) this.el.scrollLeft = right - this.el.clientWidth;
    }
    this.render();
  }

  onKey(e) {
    if (this.editing || e.target !== this.el) return;
    const shift = e.shiftKey;
    const from = shift ? this.extent : this.active;
    const { row, col } = from;
    const pageRows = Math.max(1, Math.floor(this.geometry().viewH / ROW_H) - 1);
    const ctrl = e.ctrlKey || e.metaKey;
    let next = null;
    switch (e.key) {
      case "ArrowDown": next = [row + 1, col]; break;
      case "ArrowUp": next = [row - 1, col]; break;
      case "ArrowRight": next = [row, col + 1]; break;
      case "ArrowLeft": next = [row, col - 1]; break;
      case "PageDown": next = [row + pageRows, col]; break;
      case "PageUp": next = [row - pageRows, col]; break;
      case "Home": next = ctrl ? [0, col] : [row, 0]; break;
      case "End": next = ctrl ? [this.rowCount - 1, col] : [row, this.columns.length - 1]; break;
      case "Enter":
      case "F2":
        e.preventDefault();
        this.startEdit();
        return;
      case "Escape": {
        const r = this.range();
        if (r.top !== r.bottom || r.left !== r.right) {
          e.preventDefault();
          this.setActive(this.active.row, this.active.col);
        }
        return;
      }
      case "Delete":
        if (this.opts.onEdit) {
          e.preventDefault();
          this.save(this.active, null);
        }
        return;
      default:
        if (ctrl && !e.altKey && (e.key === "a" || e.key === "A")) {
          e.preventDefault();
          this.selectLoaded();
        } else if (ctrl && !e.altKey && (e.key === "c" || e.key === "C")) {
          e.preventDefault();
          this.copy();
        } else if (e.key.length === 1 && !ctrl && !e.altKey && this.opts.onEdit) {
          e.preventDefault();
          this.startEdit(e.key);
        }
        return;
    }
    e.preventDefault();
    if (shift) this.extendTo(next[0], next[1]);
    else this.setActive(next[0], next[1]);
  }

  /** A block copied from a spreadsheet (tab-separated lines) goes in from the range's
   *  top-left cell (the active cell when one cell is selected). */
  onPaste(e) {
    if (this.editing || !this.opts.onPaste || e.target !== this.el) return;
    const text = e.clipboardData?.getData("text/plain");
    if (!text) return;
    e.preventDefault();
    const block = parseBlock(text);
    const r = this.range();
    if (block.length) this.opts.onPaste({ row: r.top, col: r.left }, block);
  }

  /**
   * The range's rows, fetching those not loaded (a range made with Shift+Ctrl+End); null
   * when it is too large to copy.
   */
  async rangeRows(r) {
    if (r.bottom - r.top + 1 > COPY_MAX_ROWS) return null;
    const rows = [];
    for (let i = r.top; i <= r.bottom; i += 1) rows.push(this.rowAt(i));
    for (let i = 0; i < rows.length; i += 1) {
      if (rows[i] !== undefined) continue;
      const { rows: fetched } = await this.opts.fetchPage(r.top + i, Math.min(PAGE, rows.length - i));
      fetched.forEach((row, k) => { if (rows[i + k] === undefined) rows[i + k] = row; });
      if (!fetched.length) break;
    }
    return rows.filter((row) => row);
  }

  /** The range's cells as shown in the grid, `rows` given (null: those loaded). */
  rangeTexts(r, rows) {
    const list = rows ?? Array.from({ length: r.bottom - r.top + 1 }, (_, k) => this.rowAt(r.top + k));
    const columns = this.columns.slice(r.left, r.right + 1);
    return list.filter((row) => row).map((row) =>
      columns.map((c, k) => display(row.cells[r.left + k], c.type)));
  }

  /** Ctrl+C: the async Clipboard API, or the `copy` event where it is missing or refused. */
  copy() {
    const r = this.range();
    const loaded = this.rangeLoaded(r);
    if (!loaded && r.bottom - r.top + 1 > COPY_MAX_ROWS) {
      this.opts.onMessage?.(`Copy at most ${COPY_MAX_ROWS.toLocaleString()} rows at a time.`);
      return;
    }
    const cells = loaded ? Promise.resolve(this.rangeTexts(r)) : this.rangeRows(r).then((rows) => this.rangeTexts(r, rows));
    const done = (texts) => this.opts.onCopied?.(texts.length, texts[0]?.length ?? 0);
    if (navigator.clipboard?.write && typeof ClipboardItem === "function") {
      // Promises in the item keep the user's gesture while rows are fetched.
      const blob = (type, make) => cells.then((t) => new Blob([make(t)], { type }));
      const item = new ClipboardItem({ "text/plain": blob("text/plain", toTsv), "text/html": blob("text/html", toHtml) });
      navigator.clipboard.write([item]).then(() => cells.then(done)).catch(() => cells.then((t) => {
        if (this.copyByEvent(t)) done(t);
      }));
    } else {
      cells.then((t) => {
        if (this.copyByEvent(t)) done(t);
      }).catch((err) => this.opts.onError?.(err));
    }
  }

  rangeLoaded(r) {
    for (let i = r.top; i <= r.bottom; i += 1) if (this.rowAt(i) === undefined) return false;
    return true;
  }

  /** The older way: a `copy` event, whose clipboardData takes both types. */
  copyByEvent(texts) {
    let written = false;
    const onCopy = (e) => {
      e.clipboardData.setData("text/plain", toTsv(texts));
      e.clipboardData.setData("text/html", toHtml(texts));
      e.preventDefault();
      written = true;
    };
    document.addEventListener("copy", onCopy, { capture: true, once: true });
    try {
      document.execCommand("copy");
    } finally {
      document.removeEventListener("copy", onCopy, { capture: true });
    }
    if (!written) this.opts.onMessage?.("The browser did not let the page copy. Try again with Ctrl+C.");
    return written;
  }

  /** Copy from the browser's menu while the grid has focus: the loaded cells of the range. */
  onCopyEvent(e) {
    // Already written by `copyByEvent` (with rows fetched for it): leave that.
    if (this.editing || e.defaultPrevented || e.target !== this.el || !e.clipboardData) return;
    const texts = this.rangeTexts(this.range());
    e.clipboardData.setData("text/plain", toTsv(texts));
    e.clipboardData.setData("text/html", toHtml(texts));
    e.preventDefault();
  }

  /**
   * Edits the active cell in its own box: the input takes the cell's place (its text is
   * hidden, not beside it). With `initial` (a typed character) the value starts as that
   * character; otherwise it is the current value with the caret at the end.
   */
  startEdit(initial) {
    if (!this.opts.onEdit || this.editing) return;
    const { row, col } = this.active;
    const data = this.rowAt(row);
    const cell = document.getElementById(`${this.id}-r${row}-c${col}`);
    if (!data || !cell) return;
    // A range collapses to the cell being edited.
    const r = this.range();
    if (r.top !== r.bottom || r.left !== r.right) this.setActive(row, col, false);
    const column = this.columns[col];
    const original = editText(data.cells[col], column.type);
    const input = h("input", {
      class: "cell-editor",
      "aria-label": `Edit ${column.name}, row ${row + 1}`,
      autocomplete: "off",
      spellcheck: "false",
      value: initial ?? original,
      onkeydown: (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          this.finishEdit(true, [row + 1, col]);
        } else if (e.key === "Tab") {
          e.preventDefault();
          this.finishEdit(true, [row, col + (e.shiftKey ? -1 : 1)]);
        } else if (e.key === "Escape") {
          e.preventDefault();
          this.finishEdit(false);
        }
      },
      onblur: () => this.finishEdit(true),
    });
    this.editing = { cell, input, original, shown: cell.textContent, row, col };
    cell.classList.add("editing");
    cell.replaceChildren(input);
    input.focus();
    const end = input.value.length;
    input.setSelectionRange(end, end);
  }

  /** Puts the cell's text back in place of the editor. */
  closeEditor(ed) {
    ed.cell.classList.remove("editing");
    ed.cell.replaceChildren(ed.shown);
  }

  finishEdit(save, moveTo) {
    const ed = this.editing;
    if (!ed) return;
    this.editing = null;
    const value = ed.input.value;
    this.closeEditor(ed);
    if (moveTo) this.setActive(moveTo[0], moveTo[1]);
    this.el.focus({ preventScroll: true });
    if (save && value !== ed.original) this.save({ row: ed.row, col: ed.col }, value.trim() === "" ? null : value, ed.cell);
  }

  cancelEdit() {
    if (!this.editing) return;
    const ed = this.editing;
    this.editing = null;
    this.closeEditor(ed);
  }

  save(at, value, cellEl) {
    const data = this.rowAt(at.row);
    const column = this.columns[at.col];
    if (!data || !column) return;
    const cell = cellEl || document.getElementById(`${this.id}-r${at.row}-c${at.col}`);
    if (cell) {
      cell.textContent = value === null ? "" : value;
      cell.classList.add("saving");
    }
    this.opts.onEdit(data.id, column, value).catch(() => {
      // The owner reports the error; show the old value again.
      if (cell) {
        cell.classList.remove("saving");
        cell.textContent = display(data.cells[at.col], column.type);
      }
    });
  }

  destroy() {
    this.generation += 1;
    this.stopDrag();
    this.resizeObserver.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}

/**
 * Cells as tab-separated lines, the way Excel copies them: a value with a tab, a line break
 * or a leading quote is wrapped in quotes, its quotes doubled (`parseBlock` reads it back).
 */
export function toTsv(rows) {
  const quote = (text) => (/[\t\n\r]|^"/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  return rows.map((row) => row.map(quote).join("\t")).join("\n");
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };

/** Cells as an HTML table: what Excel and Google Sheets paste as a block of cells. */
export function toHtml(rows) {
  const esc = (text) => text.replace(/[&<>"]/g, (ch) => ESCAPES[ch]);
  const body = rows.map((row) => `<tr>${row.map((t) => `<td>${esc(t).replace(/\r?\n/g, "<br style=\"mso-data-placement:same-cell\">")}</td>`).join("")}</tr>`).join("");
  return `<table><tbody>${body}</tbody></table>`;
}

/**
 * Tab-separated text as spreadsheets put it on the clipboard: lines of cells, a cell with a tab,
 * a line break or a quote inside is quoted ("a ""b"""); the last line break ends the block.
 */
export function parseBlock(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell === "" && quotedField(text, i)) quoted = true;
    else if (ch === "\t") { row.push(cell); cell = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += ch;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

/** Whether the `"` at `start` opens a quoted field: its closing quote (not a doubled one) is
 *  followed by a tab, a line break or the end. Otherwise the quote is just text (`"5" screws`). */
function quotedField(text, start) {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] !== '"') continue;
    if (text[i + 1] === '"') { i++; continue; }
    const next = text[i + 1];
    return next === undefined || next === "\t" || next === "\n" || next === "\r";
  }
  return false;
}
