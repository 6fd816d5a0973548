// A conversation: messages, the composer, replies streamed as they are written (fetch with
// `Accept: text/event-stream`: EventSource cannot send the Authorization header), and the
// tables of replies as grids under them. A new conversation is made on the server only when
// its first message is sent (or a file is attached): a click on "New conversation" leaves
// nothing empty behind.

import { ApiError, del, enc, get, importFile, patch, post, readEvents, request } from "./api.js";
import { confirmDialog, h, promptDialog, replace, toast, uid } from "./dom.js";
import { count } from "./format.js";
import { TablePanel } from "./table.js";

/** A small table to try the page with (the welcome screen's "Try with sample data"). */
export const SAMPLE_CSV = `city,country,population,area_km2
Paris,France,2102650,105.4
Berlin,Germany,3850809,891.1
Madrid,Spain,3332035,604.3
Rome,Italy,2746984,1285.0
Vienna,Austria,2005760,414.6`;

/** What to ask first, as the welcome screen offers it (each fills the composer). */
const EXAMPLES = [
  "Make a table of the 10 largest cities in Europe with their country and population",
  "Sort by population desc",
  "Add column density = population / area_km2",
];

const FILE_TYPES = /\.(csv|tsv|txt|xlsx|xlsm|xls|ods)$/i;

export class ChatView {
  /** `conversationId` null: a new conversation, made when its first message is sent. */
  constructor(conversationId, ctx, { welcome = false } = {}) {
    this.id = conversationId;
    this.welcome = welcome;
    this.keepFocus = true; // the composer takes the focus, not the heading
    this.importing = false;
    this.lastUser = null; // {el, text, actions} of the last message sent
    this.lastReply = null; // the last reply's bubble
    this.ctx = ctx;
    this.panels = new Map(); // table id → {panel, host}
    this.running = null;
    this.log = h("div", { class: "messages", role: "log", "aria-label": "Messages", "aria-live": "polite" });
    this.titleEl = h("h1", { class: "conv-title" }, "Conversation");
    this.model = h("select", { onchange: () => this.changeModel() });
    this.input = h("textarea", {
      rows: "3",
      placeholder: "Ask for a table, or paste CSV, TSV, Markdown or JSON…",
      onkeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.form.requestSubmit();
        }
      },
    });
    this.sendButton = h("button", { type: "submit", class: "primary" }, "Send");
    // A file to import into the conversation: chosen here, or dropped on the composer.
    this.fileInput = h("input", { type: "file", class: "sr-only", accept: ".csv,.tsv,.txt,.xlsx,.xlsm,.xls,.ods", tabindex: "-1",
      onchange: () => {
        const file = this.fileInput.files[0];
        this.fileInput.value = "";
        if (file) this.attach(file);
      } });
    this.attachButton = h("button", { type: "button", class: "attach", onclick: () => this.fileInput.click() }, "Attach a file");
    this.attachStatus = h("span", { class: "hint attach-status", role: "status", "aria-live": "polite" });
    this.stopButton = h("button", { type: "button", hidden: true, onclick: () => this.stop() }, "Stop");
    const inputId = uid("msg");
    this.input.id = inputId;
    const hintId = uid("hint");
    this.input.setAttribute("aria-describedby", hintId);
    this.form = h("form", { class: "composer", onsubmit: (e) => this.onSubmit(e) },
      h("label", { for: inputId, class: "sr-only" }, "Message"),
      this.input,
      h("div", { class: "composer-bar" },
        h("small", { id: hintId, class: "hint" }, "Enter sends · Shift+Enter starts a new line · drop a CSV, XLSX or ODS file here to import it"),
        this.attachStatus,
        h("div", { class: "composer-actions" }, this.fileInput, this.attachButton, this.stopButton, this.sendButton)));
    this.form.addEventListener("dragover", (e) => {
      if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
      e.preventDefault();
      this.form.classList.add("dropping");
    });
    this.form.addEventListener("dragleave", () => this.form.classList.remove("dropping"));
    this.form.addEventListener("drop", (e) => {
      this.form.classList.remove("dropping");
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      e.preventDefault();
      this.attach(file);
    });
    const modelId = uid("model");
    this.model.id = modelId;
    this.modelNote = h("p", { class: "model-note", hidden: true },
      "Only the offline model is set up: it makes and changes tables by rule (“sort by population desc”), without AI and without cost. ",
      "To add OpenAI, Anthropic, Azure or a local server (Ollama, llama.cpp, vLLM), name it under [models.NAME] in sheetgpt.toml: see “Other models” in the README, and ",
      h("a", { href: "/docs" }, "/docs"), " for GET /models.");
    this.renameButton = h("button", { type: "button", hidden: !this.id, onclick: () => this.rename() }, "Rename");
    this.deleteButton = h("button", { type: "button", class: "danger", hidden: !this.id, onclick: () => this.remove() }, "Delete");
    this.el = h("div", { class: "chat" },
      h("header", { class: "chat-head" }, this.titleEl,
        h("div", { class: "chat-actions" }, this.renameButton, this.deleteButton),
        h("div", { class: "model-pick" }, h("label", { for: modelId }, "Model"), this.model)),
      this.modelNote,
      this.log,
      this.form);
  }

  async load() {
    let conv = null;
    if (this.id) {
      try {
        conv = await get(`/conversations/${enc(this.id)}`);
      } catch (err) {
        replace(this.log, h("p", { class: "error" }, err.message));
        return;
      }
    }
    this.conv = conv;
    this.titleEl.textContent = conv?.title || (this.welcome ? "Welcome to SheetGPT" : "New conversation");
    document.title = conv?.title ? `${conv.title} · SheetGPT` : "SheetGPT";
    const models = await this.ctx.models();
    this.models = models;
    replace(this.model, models.map((m) => h("option", { value: m.name, selected: conv ? m.name === conv.model : !!m.default }, m.name)));
    // Only the offline model: say what it is and where others are set up.
    this.modelNote.hidden = !models.every(isOffline);
    if (!conv) {
      replace(this.log, this.emptyHint());
      this.input.focus();
      return;
    }
    const messages = [];
    let cursor = "";
    for (let i = 0; i < 20; i += 1) {
      const page = await get(`/conversations/${enc(this.id)}/messages?limit=200${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      messages.push(...page.items);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    replace(this.log);
    if (!messages.length) this.log.append(this.emptyHint());
    // Each table is shown once, under the newest reply that made or changed it.
    const latest = new Map();
    for (const m of messages) if (m.table_id) latest.set(m.table_id, m.id);
    // A file attached to the conversation: its current table, made by no message. (While a
    // reply to the last message is still being written, its table is not yet under it: then
    // nothing is shown here.)
    const settled = !messages.length || messages.at(-1).role === "assistant";
    if (conv.current_table_id && !latest.has(conv.current_table_id) && settled) {
      const attached = this.bubble("attachment", "The table this conversation works on:");
      this.mountTable(attached, conv.current_table_id);
    }
    for (const m of messages) {
      const bubble = this.bubble(m.role, m.content, m.model);
      if (m.role === "user") this.lastUser = { ...bubble, text: m.content };
      else if (m.role === "assistant") {
        bubble.raw = m.content;
        this.lastReply = bubble;
        this.replyActions(bubble);
      }
      if (m.thinking) bubble.think(m.thinking, m.thinking_ms);
      if (m.status === "error") bubble.note(m.error || "This reply stopped with an error.", "error");
      else if (m.status === "incomplete") bubble.note(m.error || "This reply stopped before it was finished.");
      for (const t of contextNotes(m.meta?.context)) bubble.note(t);
      if (m.table_id) {
        if (latest.get(m.table_id) === m.id) this.mountTable(bubble, m.table_id);
        else bubble.note(`The table made here${m.table_version ? ` (version ${m.table_version})` : ""} is shown under a later reply.`);
      }
    }
    this.updateLastActions();
    this.scrollDown();
    this.input.focus();
  }

  /** A conversation with no message yet: what to try, examples, and sample data. */
  emptyHint() {
    const fill = (text) => {
      this.input.value = text;
      this.input.focus();
    };
    return h("div", { class: "empty welcome" },
      this.welcome ? h("p", { class: "intro" }, "Ask for a table, or paste one (CSV, TSV, Markdown or JSON), or drop a spreadsheet file on the box below. Tables in replies appear as grids you can sort, filter, edit and export; every edit is a version you can compare and revert.") : null,
      h("p", {}, "Paste a table (CSV, TSV, Markdown or JSON) or ask for one. With the offline model you can then say “sort by population desc”, “keep rows where country = France”, or “add column total = price * qty”."),
      h("div", { class: "examples", role: "group", "aria-label": "Examples" },
        h("button", { type: "button", class: "primary sample", onclick: () => fill(SAMPLE_CSV) }, "Try with sample data"),
        EXAMPLES.map((text) => h("button", { type: "button", class: "example", onclick: () => fill(text) }, text))));
  }

  /** Copy on a reply. */
  replyActions(bubble) {
    bubble.actions.append(h("button", { type: "button", class: "copy-reply", onclick: async () => {
      try {
        await navigator.clipboard.writeText(bubble.raw ?? bubble.content.textContent);
        toast("Reply copied.");
      } catch {
        toast("The clipboard cannot be written here: select the reply's text to copy it.", "error");
      }
    } }, "Copy"));
  }

  /** Regenerate on the last reply, Edit on the last message sent; none while a reply runs. */
  updateLastActions() {
    for (const b of this.log.querySelectorAll(".regenerate, .edit-last")) b.remove();
    if (this.running) return;
    if (this.lastReply) {
      this.lastReply.actions.append(h("button", { type: "button", class: "regenerate", onclick: () => this.regenerate() }, "Regenerate"));
    }
    if (this.lastUser) {
      this.lastUser.actions.append(h("button", { type: "button", class: "edit-last", onclick: () => {
        // No endpoint replaces a message: the text comes back to the composer, and sending
        // it posts it again (the first one stays in the history).
        this.input.value = this.lastUser.text;
        this.input.focus();
        toast("Your last message is back in the box: change it and send it again.");
      } }, "Edit and resend"));
    }
  }

  bubble(role, text, model) {
    const content = h("div", { class: "content" }, role === "assistant" ? formatReply(text) : folded(text));
    const notes = h("div", { class: "notes" });
    const tables = h("div", { class: "tables" });
    // A reasoning model's thinking, folded above its reply.
    const thoughtText = h("pre", {});
    const thoughtLabel = h("summary", {}, "Thinking…");
    const thought = h("details", { class: "thinking", hidden: true }, thoughtLabel, thoughtText);
    const actions = h("div", { class: "message-actions" });
    const el = h("article", { class: `message ${role}` },
      h("div", { class: "who" }, role === "user" ? "You" : role === "attachment" ? "A file you attached" : `SheetGPT${model ? ` · ${model}` : ""}`),
      thought, content, notes, tables, actions);
    this.log.querySelector(".empty")?.remove();
    this.log.append(el);
    return {
      el,
      content,
      tables,
      actions,
      raw: "",
      append(t) {
        this.raw += t;
        content.append(t);
      },
      /** Once complete: data blocks folded away under the text. */
      finish() {
        replace(content, formatReply(content.textContent));
      },
      note(t, kind = "muted") {
        notes.append(h("p", { class: kind }, t));
      },
      /** Thinking as it streams in (or all of it, with how long it took). */
      think(t, ms) {
        thought.hidden = false;
        thoughtText.append(t);
        if (ms !== undefined) this.thought(ms);
      },
      thought(ms) {
        if (!thought.hidden) thoughtLabel.textContent = ms == null ? "Thoughts" : `Thought for ${Math.max(1, Math.round(ms / 1000))} s`;
      },
    };
  }

  mountTable(bubble, tableId) {
    const existing = this.panels.get(tableId);
    if (existing) {
      // Move the table under this newer reply and show its new version.
      bubble.tables.append(existing.panel.el);
      existing.panel.load();
      return existing.panel;
    }
    const panel = new TablePanel(tableId);
    bubble.tables.append(panel.el);
    this.panels.set(tableId, { panel });
    const atEnd = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
    panel.load().then(() => {
      if (atEnd) requestAnimationFrame(() => this.scrollDown());
    });
    return panel;
  }

  scrollDown() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  async changeModel() {
    try {
      this.conv = await patch(`/conversations/${enc(this.id)}`, { model: this.model.value });
      toast(`Replies now come from ${this.model.value}.`);
    } catch (err) {
      toast(err.message, "error");
    }
  }

  /** Makes the conversation on the server the first time it is needed; false if it failed. */
  async ensureConversation() {
    if (this.id) return true;
    try {
      this.conv = await post("/conversations", { model: this.model.value || undefined });
    } catch (err) {
      toast(err.message, "error");
      return false;
    }
    this.id = this.conv.id;
    // The address names the conversation now, without routing again (this view stays).
    history.replaceState(null, "", `#/c/${this.id}`);
    this.renameButton.hidden = false;
    this.deleteButton.hidden = false;
    this.ctx.conversationsChanged();
    return true;
  }

  async onSubmit(e) {
    e.preventDefault();
    const content = this.input.value;
    if (!content.trim() || this.running || this.creating) return;
    this.creating = true;
    const ok = await this.ensureConversation().finally(() => { this.creating = false; });
    if (!ok) return;
    this.input.value = "";
    const sent = this.bubble("user", content);
    this.lastUser = { ...sent, text: content };
    await this.stream(`/conversations/${enc(this.id)}/messages`, { content });
  }

  /** Asks for a new answer to the last message (the old reply stays in the history). */
  async regenerate() {
    if (this.running || !this.id) return;
    await this.stream(`/conversations/${enc(this.id)}/regenerate`, undefined);
  }

  /** Posts to `path` and streams the reply into a new bubble. */
  async stream(path, body) {
    const reply = this.bubble("assistant", "", this.model.value);
    reply.el.classList.add("streaming");
    // Screen readers read the reply once it is complete, not every piece of it.
    this.log.setAttribute("aria-busy", "true");
    const controller = new AbortController();
    this.running = { controller, messageId: null };
    this.updateLastActions();
    this.sendButton.disabled = true;
    this.stopButton.hidden = false;
    const tables = [];
    let errorShown = false;
    let thinkStart = null;
    let thinkEnd = null;
    try {
      const res = await request("POST", path, {
        body,
        headers: { accept: "text/event-stream" },
        raw: true,
        signal: controller.signal,
      });
      await readEvents(res, (name, data) => {
        if (name === "start") this.running.messageId = data.message_id;
        else if (name === "thinking") {
          thinkStart ??= performance.now();
          reply.think(data.text);
        } else if (name === "delta") {
          if (thinkStart != null && thinkEnd == null) {
            thinkEnd = performance.now();
            reply.thought(thinkEnd - thinkStart);
          }
          reply.append(data.text);
          this.scrollDown();
        } else if (name === "table") tables.push(data);
        // The offline model uses no tokens: no count to show.
        else if (name === "usage" && !this.offline(this.model.value)) reply.note(`${count(data.prompt_tokens + data.completion_tokens)} tokens${data.estimated ? " (estimated)" : ""}`, "usage");
        else if (name === "error") {
          errorShown = true;
          reply.note(data.message || "The reply stopped with an error.", "error");
        }
        else if (name === "done") {
          if (data.status === "incomplete") reply.note("Stopped before the reply was finished.");
          else if (data.status === "error" && data.error && !errorShown) reply.note(data.error, "error");
          for (const t of contextNotes(data.context)) reply.note(t);
        }
      });
    } catch (err) {
      if (err.name !== "AbortError") reply.note(err instanceof ApiError ? err.message : "The reply could not be received.", "error");
    } finally {
      reply.finish();
      if (thinkStart != null && thinkEnd == null) reply.thought(performance.now() - thinkStart);
      reply.el.classList.remove("streaming");
      this.log.removeAttribute("aria-busy");
      this.running = null;
      this.sendButton.disabled = false;
      this.stopButton.hidden = true;
      this.lastReply = reply;
      this.replyActions(reply);
      this.updateLastActions();
    }
    for (const t of tables) {
      const what = t.kind !== "created" ? "Table changed" : t.source === "message" ? "Your pasted table, stored as given" : "New table";
      reply.note(`${what}: “${t.name}”, ${count(t.row_count)} rows, version ${t.version}${t.complete === false ? " (cut at the model's output limit)" : ""}.`);
      this.mountTable(reply, t.table_id);
    }
    this.scrollDown();
    if (this.conv && !this.conv.title) {
      const conv = await get(`/conversations/${enc(this.id)}`).catch(() => null);
      if (conv) {
        this.conv = conv;
        this.titleEl.textContent = conv.title || "Conversation";
      }
    }
    this.ctx.conversationsChanged();
    this.input.focus();
  }

  /** Imports a dropped or chosen file as a table and makes it the conversation's table. */
  async attach(file) {
    if (this.importing) {
      toast("A file is being imported: wait for it to finish.");
      return;
    }
    if (!FILE_TYPES.test(file.name)) {
      toast(`“${file.name}” is not a file SheetGPT imports: use CSV, TSV, XLSX, XLS or ODS.`, "error");
      return;
    }
    this.importing = true;
    this.attachButton.disabled = true;
    this.attachButton.setAttribute("aria-busy", "true");
    this.attachStatus.textContent = `Importing ${file.name}…`;
    try {
      if (!(await this.ensureConversation())) return;
      const tableId = await importFile(file, (text) => { this.attachStatus.textContent = text; });
      this.conv = await patch(`/conversations/${enc(this.id)}`, { current_table_id: tableId });
      const bubble = this.bubble("attachment", `Attached “${file.name}”.`);
      this.mountTable(bubble, tableId);
      this.scrollDown();
      this.ctx.conversationsChanged();
      toast(`“${file.name}” is imported: ask about it or change it by message.`);
    } catch (err) {
      toast(err.message, "error");
    } finally {
      this.importing = false;
      this.attachButton.disabled = false;
      this.attachButton.removeAttribute("aria-busy");
      this.attachStatus.textContent = "";
      this.input.focus();
    }
  }

  async rename() {
    const title = await promptDialog("Rename conversation", "Title", this.conv?.title || "", "Rename");
    if (!title) return;
    try {
      this.conv = await patch(`/conversations/${enc(this.id)}`, { title });
      this.titleEl.textContent = this.conv.title;
      document.title = `${this.conv.title} · SheetGPT`;
      toast(`Renamed to “${this.conv.title}”.`);
      this.ctx.conversationsChanged();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  /** Deletes the conversation (its tables stay). The API has no restore of a conversation,
   *  so this asks first instead of offering an Undo. */
  async remove() {
    const name = this.conv?.title || "this conversation";
    if (!(await confirmDialog("Delete conversation", `Delete “${name}”? Its tables stay under Tables. This cannot be undone.`, "Delete", true))) return;
    try {
      await del(`/conversations/${enc(this.id)}`);
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    toast(`“${name}” deleted.`);
    this.ctx.conversationsChanged();
    location.hash = "#/";
  }

  async stop() {
    const run = this.running;
    if (!run) return;
    if (run.messageId) {
      try {
        await post(`/conversations/${enc(this.id)}/messages/${enc(run.messageId)}/cancel`, undefined);
        return;
      } catch {
        // Not running any more on the server: stop reading anyway.
      }
    }
    run.controller.abort();
  }

  offline(name) {
    const m = (this.models || []).find((x) => x.name === name);
    return m ? isOffline(m) : name === "offline";
  }

  destroy() {
    this.running?.controller.abort();
    for (const { panel } of this.panels.values()) panel.destroy();
  }
}

/**
 * Sentences telling what the model did not see of the conversation (`meta.context`).
 */
export function contextNotes(context) {
  if (!context) return [];
  const notes = [];
  if (context.new_message === "tables_summarised") {
    notes.push("Your message was too long for this model: it saw a summary of the tables in it (their columns, size and first rows). The tables themselves were stored whole.");
  } else if (context.new_message === "cut") {
    notes.push(`Your message was too long for this model: it did not see its first ${count(context.cut_chars || 0)} characters. Tables in it were stored whole.`);
  }
  if (context.earlier_summarised) notes.push(`${count(context.earlier_summarised)} earlier message(s) were sent with their tables summarised.`);
  if (context.earlier_left_out) notes.push(`${count(context.earlier_left_out)} earlier message(s) did not fit in this model's window and were not sent.`);
  return notes;
}

/**
 * A reply as text, with fenced blocks (the table's data as JSON, the operations of a change)
 * folded into a <details> under a short summary: the grid shows the data better.
 */
export function formatReply(text) {
  const parts = [];
  const fence = /```([\w-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g;
  let last = 0;
  for (let m = fence.exec(text); m; m = fence.exec(text)) {
    if (m.index > last) parts.push(text.slice(last, m.index).replace(/\n+$/, "\n"));
    const kind = m[1] || "text";
    const label = kind === "sheetgpt-ops" ? "The changes, as operations" : `The data (${kind})`;
    parts.push(h("details", { class: "code" }, h("summary", {}, label), h("pre", {}, h("code", {}, m[2]))));
    last = fence.lastIndex;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

function isOffline(model) {
  return model.provider ? model.provider === "offline" : model.name === "offline";
}

const FOLD_LINES = 8;

/**
 * A message as the user wrote it; a long paste shows its first lines and a button for the
 * rest, so it does not make a bubble tens of thousands of pixels tall. The rest is put in
 * only when asked for.
 */
export function folded(text) {
  const lines = text.split("\n");
  if (lines.length <= FOLD_LINES + 2) return text;
  const head = lines.slice(0, FOLD_LINES).join("\n");
  const shown = h("span", { class: "folded-text" }, head);
  const label = `Show all (${count(lines.length)} lines)`;
  const toggle = h("button", {
    type: "button",
    class: "fold-toggle",
    "aria-expanded": "false",
    onclick: () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      shown.textContent = open ? text : head;
      toggle.textContent = open ? "Show less" : label;
      toggle.setAttribute("aria-expanded", String(open));
    },
  }, label);
  return [shown, h("div", { class: "fold-bar" }, toggle)];
}
