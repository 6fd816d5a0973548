// A conversation: messages, the composer, replies streamed as they are written (fetch with
// `Accept: text/event-stream`: EventSource cannot send the Authorization header), and the
// tables of replies as grids under them.

import { ApiError, enc, get, patch, post, readEvents, request } from "./api.js";
import { h, replace, toast, uid } from "./dom.js";
import { count } from "./format.js";
import { TablePanel } from "./table.js";

export class ChatView {
  constructor(conversationId, ctx) {
    this.id = conversationId;
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
    this.stopButton = h("button", { type: "button", hidden: true, onclick: () => this.stop() }, "Stop");
    const inputId = uid("msg");
    this.input.id = inputId;
    const hintId = uid("hint");
    this.input.setAttribute("aria-describedby", hintId);
    this.form = h("form", { class: "composer", onsubmit: (e) => this.onSubmit(e) },
      h("label", { for: inputId, class: "sr-only" }, "Message"),
      this.input,
      h("div", { class: "composer-bar" },
        h("small", { id: hintId, class: "hint" }, "Enter sends · Shift+Enter starts a new line"),
        h("div", { class: "composer-actions" }, this.stopButton, this.sendButton)));
    const modelId = uid("model");
    this.model.id = modelId;
    this.modelNote = h("p", { class: "model-note", hidden: true },
      "Only the offline model is set up: it makes and changes tables by rule (“sort by population desc”), without AI and without cost. ",
      "To add OpenAI, Anthropic, Azure or a local server (Ollama, llama.cpp, vLLM), name it under [models.NAME] in sheetgpt.toml: see “Other models” in the README, and ",
      h("a", { href: "/docs" }, "/docs"), " for GET /models.");
    this.el = h("div", { class: "chat" },
      h("header", { class: "chat-head" }, this.titleEl,
        h("div", { class: "model-pick" }, h("label", { for: modelId }, "Model"), this.model)),
      this.modelNote,
      this.log,
      this.form);
  }

  async load() {
    let conv;
    try {
      conv = await get(`/conversations/${enc(this.id)}`);
    } catch (err) {
      replace(this.log, h("p", { class: "error" }, err.message));
      return;
    }
    this.conv = conv;
    this.titleEl.textContent = conv.title || "New conversation";
    document.title = `${conv.title || "New conversation"} · SheetGPT`;
    const models = await this.ctx.models();
    this.models = models;
    replace(this.model, models.map((m) => h("option", { value: m.name, selected: m.name === conv.model }, m.name)));
    // Only the offline model: say what it is and where others are set up.
    this.modelNote.hidden = !models.every(isOffline);
    const messages = [];
    let cursor = "";
    for (let i = 0; i < 20; i += 1) {
      const page = await get(`/conversations/${enc(this.id)}/messages?limit=200${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      messages.push(...page.items);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    replace(this.log);
    if (!messages.length) {
      this.log.append(h("div", { class: "empty" },
        h("p", {}, "Paste a table (CSV, TSV, Markdown or JSON) or ask for one. With the offline model you can then say “sort by population desc”, “keep rows where country = France”, or “add column total = price * qty”.")));
    }
    // Each table is shown once, under the newest reply that made or changed it.
    const latest = new Map();
    for (const m of messages) if (m.table_id) latest.set(m.table_id, m.id);
    for (const m of messages) {
      const bubble = this.bubble(m.role, m.content, m.model);
      if (m.thinking) bubble.think(m.thinking, m.thinking_ms);
      if (m.status === "error") bubble.note(m.error || "This reply stopped with an error.", "error");
      else if (m.status === "incomplete") bubble.note(m.error || "This reply stopped before it was finished.");
      for (const t of contextNotes(m.meta?.context)) bubble.note(t);
      if (m.table_id) {
        if (latest.get(m.table_id) === m.id) this.mountTable(bubble, m.table_id);
        else bubble.note(`The table made here${m.table_version ? ` (version ${m.table_version})` : ""} is shown under a later reply.`);
      }
    }
    this.scrollDown();
    this.input.focus();
  }

  bubble(role, text, model) {
    const content = h("div", { class: "content" }, role === "assistant" ? formatReply(text) : folded(text));
    const notes = h("div", { class: "notes" });
    const tables = h("div", { class: "tables" });
    // A reasoning model's thinking, folded above its reply.
    const thoughtText = h("pre", {});
    const thoughtLabel = h("summary", {}, "Thinking…");
    const thought = h("details", { class: "thinking", hidden: true }, thoughtLabel, thoughtText);
    const el = h("article", { class: `message ${role}` },
      h("div", { class: "who" }, role === "user" ? "You" : `SheetGPT${model ? ` · ${model}` : ""}`),
      thought, content, notes, tables);
    this.log.querySelector(".empty")?.remove();
    this.log.append(el);
    return {
      el,
      content,
      tables,
      append(t) {
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

  async onSubmit(e) {
    e.preventDefault();
    const content = this.input.value;
    if (!content.trim() || this.running) return;
    this.input.value = "";
    this.bubble("user", content);
    const reply = this.bubble("assistant", "", this.model.value);
    reply.el.classList.add("streaming");
    // Screen readers read the reply once it is complete, not every piece of it.
    this.log.setAttribute("aria-busy", "true");
    const controller = new AbortController();
    this.running = { controller, messageId: null };
    this.sendButton.disabled = true;
    this.stopButton.hidden = false;
    const tables = [];
    let errorShown = false;
    let thinkStart = null;
    let thinkEnd = null;
    try {
      const res = await request("POST", `/conversations/${enc(this.id)}/messages`, {
        body: { content },
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
