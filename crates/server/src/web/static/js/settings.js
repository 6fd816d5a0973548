// The other screens: tables (and imports), templates, export jobs, API keys, usage, account.

import { CursorList, del, enc, followJob, get, patch, post, progressText, request } from "./api.js";
import { confirmDialog, field, h, listEnd, replace, saveBlob, toast, uid } from "./dom.js";
import { bytes, count, dollars, when } from "./format.js";

function page(title, intro, ...body) {
  return h("div", { class: "page" }, h("h1", {}, title), intro ? h("p", { class: "intro" }, intro) : null, ...body);
}

function errorBox() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

function showIn(box, err) {
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------
// Tables

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

// ---------------------------------------------------------------------------------------
// Export jobs

export function exportsView() {
  const list = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  let timer = 0;
  let alive = true;

  const exports = new CursorList("/exports", { step: 200 });
  async function load(more = false) {
    clearTimeout(timer);
    let items;
    try {
      items = await (more ? exports.load() : exports.reload());
    } catch (err) {
      replace(list, h("p", { class: "error" }, err.message));
      return;
    }
    replace(list, items.length
      ? h("ul", { class: "jobs" }, items.map(job))
      : h("p", { class: "muted" }, "No exports yet. Use Export on a table and choose “Export in the background”."),
    listEnd(exports, "exports", () => load(true)));
    if (alive && items.some((j) => j.status === "queued" || j.status === "running")) {
      timer = setTimeout(load, 1500);
    }
  }

  function job(j) {
    const total = j.progress.total ?? 0;
    const progressId = uid("p");
    const dest = j.destination?.type === "download" || !j.destination ? "file" : j.destination.type.replace(/_/g, " ");
    return h("li", { class: `job ${j.status}` },
      h("div", { class: "job-main" },
        h("strong", {}, j.file?.name || `${j.format.toUpperCase()} export`),
        h("span", { class: `status ${j.status}` }, j.status),
        h("span", { class: "muted" }, ` version ${j.version} · ${dest} · ${when(j.created_at)}`)),
      j.status === "running" || j.status === "queued"
        ? h("div", { class: "job-progress" },
          h("label", { for: progressId, class: "sr-only" }, "Progress"),
          h("progress", { id: progressId, max: String(Math.max(total, 1)), value: String(j.progress.done) }),
          h("span", { class: "muted" }, `${count(j.progress.done)} of ${count(total)} rows`))
        : null,
      j.error ? h("p", { class: "error" }, j.error) : null,
      h("div", { class: "job-actions" },
        j.file?.download_url ? h("button", { type: "button", onclick: () => downloadJob(j) }, `Download (${bytes(j.file.bytes)})`) : null,
        j.status === "running" || j.status === "queued"
          ? h("button", { type: "button", onclick: async () => {
            try {
              await post(`/exports/${enc(j.id)}/cancel`, undefined);
              load();
            } catch (err) {
              toast(err.message, "error");
            }
          } }, "Cancel")
          : null));
  }

  async function downloadJob(j) {
    try {
      const res = await request("GET", `/exports/${enc(j.id)}/download`, { raw: true });
      saveBlob(await res.blob(), j.file.name);
    } catch (err) {
      toast(err.message, "error");
    }
  }

  load();
  return {
    el: page("Exports", "Files exported in the background, with their progress. Files are kept for a week.", list),
    destroy() {
      alive = false;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------
// API keys

export function keysView() {
  const list = h("div", { class: "list" });
  const shown = h("div", { class: "key-shown", hidden: true, role: "status" });
  const name = h("input", { type: "text", required: true, maxlength: "100", autocomplete: "off" });
  const scope = h("select", {}, h("option", { value: "read" }, "Read only"), h("option", { value: "read_write" }, "Read and write"));
  const days = h("input", { type: "number", min: "1", max: "3650", inputmode: "numeric" });
  const error = errorBox();
  const form = h("form", {
    class: "inline-form",
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      const body = { name: name.value, scope: scope.value };
      if (days.value) body.expires_in_days = Number(days.value);
      try {
        const created = await post("/api-keys", body);
        name.value = "";
        days.value = "";
        const keyId = uid("key");
        const curlId = uid("curl");
        // A first call to try the key with: the tables it can read.
        const curl = `curl -H "Authorization: Bearer ${created.key}" ${location.origin}/api/v1/tables`;
        replace(shown,
          h("p", {}, h("strong", {}, "Copy your new key now. "), "It is shown only this once."),
          h("div", { class: "key-row" },
            h("label", { for: keyId, class: "sr-only" }, "New API key"),
            h("input", { id: keyId, class: "mono", type: "text", readonly: true, value: created.key }),
            copyButton(created.key, keyId, "Key copied.", "Copy the key")),
          h("p", {}, "Try it: this call lists your tables."),
          h("div", { class: "key-row" },
            h("label", { for: curlId, class: "sr-only" }, "Example call with curl"),
            h("input", { id: curlId, class: "mono curl", type: "text", readonly: true, value: curl }),
            copyButton(curl, curlId, "Example call copied.", "Copy the example call")));
        shown.hidden = false;
        load();
      } catch (err) {
        showIn(error, err);
      }
    },
  }, field("Name", name, "What the key is for, e.g. “nightly export script”."), field("Access", scope), field("Expires after (days, optional)", days), h("button", { type: "submit", class: "primary" }, "Create key"), error);

  const keys = new CursorList("/api-keys");
  async function load(more = false) {
    try {
      const items = await (more ? keys.load() : keys.reload());
      replace(list, items.length
        ? h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["Name", "Key", "Access", "Last used", "Expires", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, items.map((k) => h("tr", {},
            h("td", {}, k.name),
            h("td", { class: "mono" }, `${k.prefix}…`),
            h("td", {}, k.scope === "read" ? "read only" : "read and write"),
            h("td", {}, k.last_used_at ? when(k.last_used_at) : "never"),
            h("td", {}, k.expires_at ? when(k.expires_at) : "never"),
            h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name}`, onclick: async () => {
              if (!(await confirmDialog("Revoke key", `Revoke “${k.name}”? Scripts using it stop working at once.`, "Revoke", true))) return;
              try {
                await del(`/api-keys/${enc(k.id)}`);
                toast("Key revoked.");
                load();
              } catch (err) {
                toast(err.message, "error");
              }
            } }, "Revoke"))))))
        : h("p", { class: "muted" }, "No API keys yet."),
      listEnd(keys, "keys", () => load(true)));
    } catch (err) {
      replace(list, h("p", { class: "error" }, err.message));
    }
  }
  load();
  return {
    el: page("API keys", ["Keys let scripts use the API as you: send “Authorization: Bearer <key>”. Every endpoint, with its parameters and answers, is described at ",
      h("a", { href: "/docs" }, "/docs"), "."], form, shown, list),
  };
}

/** A Copy button for `text`; where the clipboard cannot be written, the text is selected in
 *  its field (`fieldId`) for the user to copy. */
function copyButton(text, fieldId, done, label) {
  return h("button", { type: "button", "aria-label": label, onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      toast(done);
    } catch {
      document.getElementById(fieldId)?.select();
    }
  } }, "Copy");
}

// ---------------------------------------------------------------------------------------
// Usage

export function usageView() {
  const body = h("div", { class: "list" });
  const days = h("select", { onchange: () => load() },
    [7, 30, 90, 365].map((d) => h("option", { value: String(d), selected: d === 30 }, `Last ${d} days`)));

  async function load() {
    let usage;
    try {
      usage = await get(`/usage?days=${days.value}`);
    } catch (err) {
      replace(body, h("p", { class: "error" }, err.message));
      return;
    }
    const max = Math.max(1, ...usage.items.map((r) => r.prompt_tokens + r.completion_tokens));
    replace(body,
      h("p", { class: "totals" },
        h("span", {}, h("strong", {}, count(usage.total_tokens)), " tokens"),
        h("span", {}, h("strong", {}, dollars(usage.total_cost_micros)), " cost"),
        usage.daily_token_quota ? h("span", {}, `Daily allowance: ${count(usage.daily_token_quota)} tokens`) : null),
      usage.items.length
        ? h("table", { class: "data usage" },
          h("thead", {}, h("tr", {}, ["Day", "Model", "Replies", "Tokens", "Cost"].map((t, i) => h("th", { scope: "col", class: i >= 2 ? "num" : null }, t)))),
          h("tbody", {}, usage.items.map((r) => {
            const tokens = r.prompt_tokens + r.completion_tokens;
            const bar = h("span", { class: "bar", "aria-hidden": "true" });
            bar.style.width = `${Math.max(2, (tokens / max) * 100)}%`;
            return h("tr", {},
              h("td", {}, r.day),
              h("td", {}, r.model),
              h("td", { class: "num" }, count(r.replies)),
              h("td", { class: "num" }, h("div", { class: "tokens" }, h("span", { class: "bar-track" }, bar), count(tokens))),
              h("td", { class: "num" }, dollars(r.cost_micros)));
          })))
        : h("p", { class: "muted" }, "No replies in this period."));
  }
  load();
  return { el: page("Usage", "Tokens and cost per day and model.", field("Period", days), body) };
}

// ---------------------------------------------------------------------------------------
// Templates

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


// ---------------------------------------------------------------------------------------
// Account: password, sessions, your data, deleting the account

/** A user agent as a person names it: “Chrome on Linux”, or the raw string's start. */
function device(agent) {
  if (!agent) return "Unknown device";
  const browser = [["Edg/", "Edge"], ["Firefox/", "Firefox"], ["Chrome/", "Chrome"], ["Safari/", "Safari"], ["curl/", "curl"]]
    .find(([mark]) => agent.includes(mark))?.[1];
  const os = [["Android", "Android"], ["iPhone", "iPhone"], ["Windows", "Windows"], ["Mac OS", "macOS"], ["Linux", "Linux"]]
    .find(([mark]) => agent.includes(mark))?.[1];
  if (browser && os) return `${browser} on ${os}`;
  return browser || (agent.length > 40 ? `${agent.slice(0, 40)}…` : agent);
}

/** Back to the sign-in screen: the session behind this page has ended. */
function signedOutHere() {
  location.hash = "";
  location.reload();
}

export function accountView(ctx = {}) {
  const sessions = h("div", { class: "list" });

  const current = h("input", { type: "password", required: true, autocomplete: "current-password" });
  const next = h("input", { type: "password", required: true, minlength: "10", maxlength: "256", autocomplete: "new-password" });
  const passwordError = errorBox();
  const passwordForm = h("form", {
    class: "inline-form",
    onsubmit: async (e) => {
      e.preventDefault();
      passwordError.hidden = true;
      try {
        const done = await post("/auth/password", { current_password: current.value, new_password: next.value });
        current.value = "";
        next.value = "";
        const n = done.revoked_sessions;
        toast(n ? `Password changed; ${n} other session${n > 1 ? "s were" : " was"} signed out.` : "Password changed.");
        loadSessions();
      } catch (err) {
        showIn(passwordError, err);
      }
    },
  }, field("Current password", current), field("New password", next, "10 to 256 characters."),
  h("button", { type: "submit", class: "primary" }, "Change password"), passwordError);

  async function revoke(s) {
    const here = s.current ? " This is the browser you are using: you will be signed out here." : "";
    if (!(await confirmDialog("Sign out a session", `Sign out ${device(s.user_agent)}?${here}`, "Sign out", true))) return;
    try {
      await del(`/auth/sessions/${enc(s.id)}`);
      if (s.current) return signedOutHere();
      toast("Session signed out.");
      loadSessions();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  const signedIn = new CursorList("/auth/sessions");
  async function loadSessions(more = false) {
    try {
      const items = await (more ? signedIn.load() : signedIn.reload());
      const others = items.filter((s) => !s.current);
      replace(sessions,
        h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["Device", "Address", "Signed in", "Last active", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, items.map((s) => h("tr", { class: s.current ? "current" : null },
            h("td", {}, device(s.user_agent), s.current ? h("span", { class: "badge" }, "this browser") : null),
            h("td", { class: "mono" }, s.ip || "—"),
            h("td", {}, when(s.created_at)),
            h("td", {}, when(s.last_used_at)),
            h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Sign out ${device(s.user_agent)}, signed in ${when(s.created_at)}`, onclick: () => revoke(s) }, "Sign out")))))),
        others.length ? h("button", { type: "button", onclick: async () => {
          if (!(await confirmDialog("Sign out everywhere else", `Sign out the ${others.length} other session${others.length > 1 ? "s" : ""}?`, "Sign out", true))) return;
          try {
            for (const s of others) await del(`/auth/sessions/${enc(s.id)}`);
            toast("Every other session is signed out.");
          } catch (err) {
            toast(err.message, "error");
          }
          loadSessions();
        } }, "Sign out everywhere else") : null,
        listEnd(signedIn, "sessions", () => loadSessions(true)));
    } catch (err) {
      replace(sessions, h("p", { class: "error" }, err.message));
    }
  }

  const archiveStatus = h("p", { class: "muted archive-progress", role: "status", "aria-live": "polite", hidden: true });
  const exportButton = h("button", { type: "button", onclick: async () => {
    exportButton.disabled = true;
    try {
      let res = await request("GET", "/account/export", { raw: true });
      // A large account's archive is written by a job: follow it, then fetch its file.
      if (res.status === 202) {
        archiveStatus.hidden = false;
        const job = await followJob(await res.json(), (j) => { archiveStatus.textContent = `Writing the archive: ${progressText(j)}`; });
        res = await request("GET", `/jobs/${enc(job.id)}/download`, { raw: true });
      }
      const match = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "");
      saveBlob(await res.blob(), match ? match[1] : "sheetgpt.zip");
      toast("Your data is downloaded.");
    } catch (err) {
      toast(err.message, "error");
    } finally {
      archiveStatus.hidden = true;
      exportButton.disabled = false;
    }
  } }, "Download all my data");

  const confirmPassword = h("input", { type: "password", required: true, autocomplete: "current-password" });
  const deleteError = errorBox();
  const deleteForm = h("form", {
    class: "inline-form",
    onsubmit: async (e) => {
      e.preventDefault();
      deleteError.hidden = true;
      const sure = await confirmDialog("Delete your account",
        "Delete your account and everything in it (conversations, tables, templates, exports, keys)? This cannot be undone.",
        "Delete my account", true);
      if (!sure) return;
      try {
        await request("DELETE", "/account", { body: { password: confirmPassword.value } });
        signedOutHere();
      } catch (err) {
        showIn(deleteError, err);
      }
    },
  }, field("Password", confirmPassword, "To confirm it is you."),
  h("button", { type: "submit", class: "danger" }, "Delete my account"), deleteError);

  // The locale: how dates that read both ways (03/04/2024) are read in new tables.
  const locale = h("input", { type: "text", autocomplete: "off", maxlength: "35", placeholder: navigator.language || "en-US" });
  const localeError = errorBox();
  get("/auth/me").then((me) => { locale.value = me.locale || ""; }).catch(() => {});
  const localeForm = h("form", {
    class: "inline-form",
    onsubmit: async (e) => {
      e.preventDefault();
      localeError.hidden = true;
      try {
        const me = await patch("/auth/me", { locale: locale.value.trim() || null });
        locale.value = me.locale || "";
        toast(me.locale ? `Locale set to ${me.locale}.` : "Locale cleared: dates that read both ways are read month first.");
      } catch (err) {
        showIn(localeError, err);
      }
    },
  }, field("Locale", locale, "A language tag such as en-US, en-GB or de-DE. When every date of a column reads both ways (03/04/2024), it is read as this locale writes dates: month first in the United States, day first elsewhere. Taken from your browser when you registered."),
  h("button", { type: "submit", class: "primary" }, "Save locale"), localeError);

  loadSessions();
  return {
    el: page("Account", ctx.email ? `Signed in as ${ctx.email}.` : null,
      h("section", {}, h("h2", {}, "Locale"), localeForm),
      h("section", {}, h("h2", {}, "Password"), passwordForm),
      h("section", {}, h("h2", {}, "Where you are signed in"), sessions),
      h("section", {}, h("h2", {}, "Your data"),
        h("p", {}, "One ZIP file: your conversations, tables and templates as JSON, and every table as an Excel workbook (as CSV when it is longer than a sheet). A large account's archive takes a while; its progress shows here."),
        exportButton, archiveStatus),
      h("section", { class: "danger-zone" }, h("h2", {}, "Delete your account"), deleteForm)),
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
