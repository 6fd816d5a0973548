// The Templates screen: how a table becomes a sheet, edited as a form.

import { CursorList, del, enc, patch, post } from "../api.js";
import { confirmDialog, field, h, listEnd, replace, toast, uid } from "../dom.js";
import { errorBox, page, showIn } from "./page.js";

const FORMATS = [
  ["", "Default"],
  ["#,##0", "1,234"],
  ["#,##0.00", "1,234.56"],
  ["0.0%", "12.3%"],
  ["yyyy-mm-dd", "2024-01-31"],
  ["dd/mm/yyyy", "31/01/2024"],
  ["mmm d, yyyy", "Jan 31, 2024"],
  ["@", "Text"],
];
const TOTALS = [["", "None"], ["sum", "Sum"], ["average", "Average"], ["count", "Count"], ["min", "Min"], ["max", "Max"]];

export function templatesView() {
  const list = h("div", { class: "list" });
  const editor = h("div", { class: "template-editor" });

  const templates = new CursorList("/templates");
  async function load(more = false) {
    try {
      const items = await (more ? templates.load() : templates.reload());
      replace(list,
        h("div", { class: "row-actions" }, h("button", { type: "button", class: "primary", onclick: () => edit(null) }, "New template")),
        items.length
          ? h("ul", { class: "templates" }, items.map((t) => h("li", {},
            h("strong", {}, t.name),
            t.shared ? h("span", { class: "badge" }, "shared") : null,
            h("span", { class: "muted" }, ` ${t.description || ""}`),
            h("div", { class: "row-actions" },
              h("button", { type: "button", onclick: () => edit(t) }, t.owned ? "Edit" : "View"),
              t.owned ? h("button", { type: "button", class: "danger", onclick: async () => {
                if (!(await confirmDialog("Delete template", `Delete “${t.name}”?`, "Delete", true))) return;
                try {
                  await del(`/templates/${enc(t.id)}`);
                  replace(editor);
                  load();
                } catch (err) {
                  toast(err.message, "error");
                }
              } }, "Delete") : null))))
          : h("p", { class: "muted" }, "No templates yet."),
        listEnd(templates, "templates", () => load(true)));
    } catch (err) {
      replace(list, h("p", { class: "error" }, err.message));
    }
  }

  function edit(existing) {
    // Fields the editor does not show (validation rules, a column's second and later
    // highlight rules…) are kept as they are.
    const tpl = structuredClone(existing?.template || {});
    tpl.layout = tpl.layout || {};
    tpl.columns = tpl.columns || [];
    const name = h("input", { type: "text", required: true, value: existing?.name || "", maxlength: "200" });
    const description = h("input", { type: "text", value: existing?.description || "", maxlength: "2000" });
    const rows = h("tbody", {});
    const preview = h("pre", { class: "json-preview", "aria-label": "Template as JSON" });
    const error = errorBox();

    const L = tpl.layout;
    const sheet = h("input", { type: "text", value: L.sheet_name || "", placeholder: "Data" });
    const titles = h("textarea", { rows: "2" });
    titles.value = (L.title_rows || []).join("\n");
    const start = h("input", { type: "text", value: L.start_cell || "", placeholder: "A1", size: "6" });
    const freezeCols = h("input", { type: "number", min: "0", max: "100", value: String(L.freeze_columns || 0) });
    const check = (value) => h("input", { type: "checkbox", checked: value });
    const freezeHeader = check(L.freeze_header !== false);
    const autofilter = check(L.autofilter !== false);
    const about = check(L.about_sheet !== false);
    const unmapped = check(Boolean(tpl.include_unmapped));
    const headerBg = h("input", { type: "color", value: L.header?.background || "#ffffff" });
    const headerFg = h("input", { type: "color", value: L.header?.font_color || "#000000" });
    const exclude = h("input", { type: "text", value: (tpl.exclude || []).join(", "), placeholder: "internal id, notes" });

    function addRow(col = {}) {
      const source = h("input", { type: "text", value: col.source || "", "aria-label": "Source column" });
      const header = h("input", { type: "text", value: col.header || "", "aria-label": "Header in the file" });
      const format = h("select", { "aria-label": "Number format" }, FORMATS.map(([v, l]) => h("option", { value: v, selected: (col.format?.number_format || "") === v }, l)));
      if (col.format?.number_format && !FORMATS.some(([v]) => v === col.format.number_format)) {
        format.append(h("option", { value: col.format.number_format, selected: true }, col.format.number_format));
      }
      const width = h("input", { type: "number", min: "0", max: "255", value: col.format?.width ?? "", "aria-label": "Width in characters" });
      const align = h("select", { "aria-label": "Alignment" }, [["", "Auto"], ["left", "Left"], ["center", "Center"], ["right", "Right"]].map(([v, l]) => h("option", { value: v, selected: (col.format?.align || "") === v }, l)));
      const total = h("select", { "aria-label": "Total" }, TOTALS.map(([v, l]) => h("option", { value: v, selected: (col.total || "") === v }, l)));
      const constant = h("input", {
        type: "text",
        value: col.constant === undefined || col.constant === null ? "" : String(col.constant),
        "aria-label": "Fixed value (instead of a source column)",
        placeholder: "—",
      });
      // The first highlight rule of the column (further ones, set through the API, are kept).
      const rule = col.conditional?.[0];
      const when = h("select", { "aria-label": "Highlight when" },
        CONDITIONS.map(([v, l]) => h("option", { value: v, selected: (rule?.when?.op || "") === v }, l)));
      const ruleValue = h("input", {
        type: "text",
        "aria-label": "Highlight value",
        value: rule ? String(rule.when.value ?? rule.when.text ?? (rule.when.min !== undefined ? `${rule.when.min}..${rule.when.max}` : "")) : "",
        placeholder: "100, or 1..9",
        size: "8",
      });
      const ruleColor = h("input", { type: "color", "aria-label": "Highlight colour", value: rule?.style?.background || "#FFEB9C" });
      const tr = h("tr", {},
        h("td", {}, source), h("td", {}, constant), h("td", {}, header), h("td", {}, format), h("td", {}, width), h("td", {}, align), h("td", {}, total),
        h("td", { class: "highlight" }, when, ruleValue, ruleColor),
        h("td", {}, h("button", { type: "button", class: "icon", "aria-label": "Remove this column", onclick: () => {
          tr.remove();
          update();
        } }, "×")));
      tr.base = col;
      tr.read = () => {
        const out = structuredClone(tr.base);
        const set = (k, v) => {
          if (v === "" || v === null || v === undefined) delete out[k];
          else out[k] = v;
        };
        set("source", source.value.trim());
        set("header", header.value.trim());
        set("constant", constantValue(constant.value));
        const rest = (tr.base.conditional || []).slice(1);
        const first = condition(when.value, ruleValue.value);
        const conditional = first ? [{ when: first, style: { background: ruleColor.value.toUpperCase() } }, ...rest] : rest;
        if (conditional.length) out.conditional = conditional;
        else delete out.conditional;
        out.format = { ...(out.format || {}) };
        const fmt = out.format;
        const setF = (k, v) => {
          if (v === "" || v === null || v === undefined) delete fmt[k];
          else fmt[k] = v;
        };
        setF("number_format", format.value);
        setF("width", width.value === "" ? "" : Number(width.value));
        setF("align", align.value);
        if (!Object.keys(fmt).length) delete out.format;
        set("total", total.value);
        return out;
      };
      rows.append(tr);
    }

    function build() {
      const out = structuredClone(tpl);
      out.columns = [...rows.children].map((tr) => tr.read());
      if (!out.columns.length) delete out.columns;
      const lay = { ...(tpl.layout || {}) };
      const setL = (k, v, dflt) => {
        if (v === "" || v === dflt) delete lay[k];
        else lay[k] = v;
      };
      setL("sheet_name", sheet.value.trim(), "");
      const t = titles.value.split("\n").map((s) => s.trim()).filter(Boolean);
      if (t.length) lay.title_rows = t;
      else delete lay.title_rows;
      setL("start_cell", start.value.trim().toUpperCase(), "");
      setL("freeze_columns", Number(freezeCols.value) || 0, 0);
      setL("freeze_header", freezeHeader.checked, true);
      setL("autofilter", autofilter.checked, true);
      setL("about_sheet", about.checked, true);
      const hdr = { ...(lay.header || {}) };
      if (headerBg.value.toLowerCase() !== "#ffffff") hdr.background = headerBg.value.toUpperCase();
      else delete hdr.background;
      if (headerFg.value.toLowerCase() !== "#000000") hdr.font_color = headerFg.value.toUpperCase();
      else delete hdr.font_color;
      if (Object.keys(hdr).length) lay.header = hdr;
      else delete lay.header;
      if (Object.keys(lay).length) out.layout = lay;
      else delete out.layout;
      if (unmapped.checked) out.include_unmapped = true;
      else delete out.include_unmapped;
      const ex = exclude.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (ex.length) out.exclude = ex;
      else delete out.exclude;
      return out;
    }

    function update() {
      preview.textContent = JSON.stringify(build(), null, 2);
    }

    for (const col of tpl.columns) addRow(col);
    const form = h("form", {
      class: "template-form",
      oninput: update,
      onchange: update,
      onsubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        const body = { name: name.value.trim(), description: description.value, template: build() };
        try {
          const saved = existing ? await patch(`/templates/${enc(existing.id)}`, body) : await post("/templates", body);
          toast(`Template “${saved.name}” saved.`);
          existing = saved;
          load();
        } catch (err) {
          showIn(error, err);
        }
      },
    },
    h("h2", {}, existing ? `Template “${existing.name}”` : "New template"),
    field("Name", name),
    field("Description", description),
    h("fieldset", {},
      h("legend", {}, "Columns, in the order they go out"),
      h("p", { class: "hint" }, "Leave empty to export every column as it is. Source: the table's column name; or a fixed value for every row (then give a header). Header: its name in the file. Highlight: cells that meet the condition get the colour."),
      h("div", { class: "scroll-x" },
        h("table", { class: "data columns-edit" },
          h("thead", {}, h("tr", {}, ["Source", "Or a fixed value", "Header", "Format", "Width", "Align", "Total", "Highlight cells", ""].map((t) => h("th", { scope: "col" }, t)))),
          rows)),
      h("button", { type: "button", onclick: () => {
        addRow();
        update();
      } }, "Add column"),
      h("div", { class: "check" }, unmapped, h("label", {}, "Also export the columns not listed, after these")),
      field("Leave out (comma-separated column names)", exclude)),
    h("fieldset", {},
      h("legend", {}, "Layout"),
      h("div", { class: "grid-2" },
        field("Sheet name", sheet),
        field("Start cell", start),
        field("Title rows (one a line)", titles),
        field("Freeze first columns", freezeCols),
        field("Header background", headerBg),
        field("Header text colour", headerFg)),
      h("div", { class: "check" }, freezeHeader, h("label", {}, "Keep the header in view")),
      h("div", { class: "check" }, autofilter, h("label", {}, "Filter buttons on the header")),
      h("div", { class: "check" }, about, h("label", {}, "An About sheet with the table's details"))),
    h("details", {}, h("summary", {}, "Template as JSON"), preview),
    error,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => replace(editor) }, "Close"),
      h("button", { type: "submit", class: "primary" }, "Save template")));
    // Checkbox labels: wire `for` now that the inputs have ids.
    for (const c of form.querySelectorAll(".check")) {
      const input = c.querySelector("input");
      input.id = uid("chk");
      c.querySelector("label").htmlFor = input.id;
    }
    if (existing && !existing.owned) for (const el of form.elements) if (el.type !== "button") el.disabled = true;
    replace(editor, form);
    update();
    name.focus();
  }

  load();
  return {
    el: page("Templates", "How a table becomes a sheet: which columns, their headers and formats, and the sheet's layout.", list, editor),
  };
}


/** Conditions a column's highlight can use, as the template names them. */
const CONDITIONS = [
  ["", "Never"],
  ["greater_than", ">"],
  ["greater_than_or_equal", "≥"],
  ["less_than", "<"],
  ["less_than_or_equal", "≤"],
  ["equal_to", "="],
  ["not_equal_to", "≠"],
  ["between", "between"],
  ["contains", "contains"],
  ["blank", "is empty"],
  ["not_blank", "is not empty"],
];

/** A compare value as typed: a number when it reads as one, else the text. */
function compareValue(text) {
  const t = text.trim();
  return t !== "" && Number.isFinite(Number(t)) ? Number(t) : t;
}

/** The template's condition for an operator and the typed value, or null for none. */
function condition(op, text) {
  if (!op) return null;
  if (op === "blank" || op === "not_blank") return { op };
  if (op === "contains") return { op, text: text.trim() };
  if (op === "between") {
    const [min, max] = text.split("..");
    return { op, min: compareValue(min ?? ""), max: compareValue(max ?? "") };
  }
  return { op, value: compareValue(text) };
}

/** A fixed column's value as typed: empty is none, `true`/`false` booleans, numbers numbers. */
function constantValue(text) {
  const t = text.trim();
  if (t === "") return "";
  if (t === "true" || t === "false") return t === "true";
  return Number.isFinite(Number(t)) ? Number(t) : t;
}
