// The page: sign-in, then the shell (navigation, conversations) and one screen at a time,
// chosen by the address's hash (#/c/<id>, #/t/<id>, #/new, #/tables, #/templates, #/exports,
// #/keys, #/usage, #/account), so reloads and the back button keep their place. The welcome
// screen (#/) and #/new are a conversation not yet made: it is made by its first message.

import { CursorList, enc, get, logout, refresh, setSignedOutHandler } from "./api.js";
import { authView } from "./auth.js";
import { ChatView } from "./chat.js";
import { clearToasts, h, listEnd, replace, toast } from "./dom.js";
import { when } from "./format.js";
import { TablePanel } from "./table.js";

const root = document.getElementById("app");
let me = null;
let current = null; // the screen shown: {el, destroy?}
let modelsCache = null;

const ctx = {
  async models() {
    if (!modelsCache) modelsCache = get("/models").then((r) => r.items).catch(() => [{ name: "offline" }]);
    return modelsCache;
  },
  conversationsChanged: () => loadConversations(),
};

// --- shell -------------------------------------------------------------------------------

const convList = h("ul", { class: "conv-list", "aria-label": "Conversations" });
const main = h("main", { id: "main", class: "main", tabindex: "-1" });
const nav = h("nav", { class: "sidebar", id: "sidebar", "aria-label": "SheetGPT" });
const menuButton = h("button", {
  type: "button",
  class: "menu-button",
  "aria-controls": "sidebar",
  "aria-expanded": "false",
  onclick: () => setMenu(!document.body.classList.contains("menu-open")),
}, "Menu");
const userLabel = h("span", { class: "user" });

function setMenu(open) {
  document.body.classList.toggle("menu-open", open);
  menuButton.setAttribute("aria-expanded", String(open));
}

function buildShell() {
  const link = (href, label) => h("a", { href, class: "nav-link", dataset: { route: href } }, label);
  replace(nav,
    h("div", { class: "brand" }, h("img", { src: "/assets/icon.svg", alt: "", width: "24", height: "24" }), h("span", {}, "SheetGPT")),
    h("button", { type: "button", class: "primary wide", onclick: newConversation }, "New conversation"),
    h("h2", { class: "nav-heading" }, "Conversations"),
    h("label", { for: "conv-search", class: "sr-only" }, "Search conversations"),
    convSearch,
    convList,
    h("h2", { class: "nav-heading" }, "Workspace"),
    h("ul", { class: "nav-links" },
      h("li", {}, link("#/tables", "Tables")),
      h("li", {}, link("#/templates", "Templates")),
      h("li", {}, link("#/exports", "Exports")),
      h("li", {}, link("#/keys", "API keys")),
      h("li", {}, link("#/usage", "Usage")),
      h("li", {}, link("#/account", "Account"))),
    h("div", { class: "account" }, userLabel,
      h("button", { type: "button", onclick: signOut }, "Sign out")));
  replace(root,
    h("header", { class: "topbar" }, menuButton, h("span", { class: "brand" }, "SheetGPT")),
    h("div", { class: "layout" }, nav, main));
  userLabel.textContent = me?.email || "";
}

// The newest hundred first; the rest on request, at the end of the list.
let conversations = new CursorList("/conversations", { step: 100 });
// The API has no search of conversations: this filters the titles read so far.
const convSearch = h("input", {
  id: "conv-search",
  type: "search",
  class: "search",
  placeholder: "Search conversations",
  autocomplete: "off",
  oninput: () => showConversations(),
});

async function loadConversations(more = false) {
  try {
    await (more ? conversations.load() : conversations.reload());
    showConversations();
  } catch (err) {
    replace(convList, h("li", { class: "error" }, err.message));
  }
}

function showConversations() {
  const q = convSearch.value.trim().toLowerCase();
  const items = conversations.items.filter((c) => !q || (c.title || "New conversation").toLowerCase().includes(q));
  {
    const active = location.hash.startsWith("#/c/") ? location.hash.slice(4) : null;
    replace(convList, items.length
      ? items.map((c) => h("li", {},
        h("a", {
          href: `#/c/${c.id}`,
          class: "conv-link",
          "aria-current": c.id === active ? "page" : null,
        }, h("span", { class: "conv-name" }, c.title || "New conversation"), h("span", { class: "conv-when" }, when(c.updated_at)))))
      : h("li", { class: "muted" }, q ? "No conversation read so far matches." : "None yet"),
    conversations.done ? null : h("li", { class: "conv-more" }, listEnd(conversations, "conversations", () => loadConversations(true))));
  }
}

/** A new conversation is only a screen until its first message: nothing is made here. */
function newConversation() {
  if (location.hash === "#/new") route();
  else location.hash = "#/new";
}

async function signOut() {
  try {
    await logout();
  } catch (err) {
    toast(`You are still signed in: ${err.message} Try signing out again.`, "error");
    return;
  }
  me = null;
  showAuth();
}

// --- screens -------------------------------------------------------------------------------

/** The welcome screen: a composer, examples and sample data; the conversation is made by
 *  the first message. */
function home() {
  return chatScreen(null, { welcome: true });
}

function tableScreen(id) {
  const panel = new TablePanel(id, { tall: true });
  panel.load();
  const back = h("p", { class: "table-links" }, h("a", { href: "#/tables" }, "← All tables"));
  conversationOf(id).then((conv) => {
    if (conv) back.append(" · ", h("a", { href: `#/c/${enc(conv.id)}`, class: "table-conversation" }, `Open its conversation “${conv.title || "New conversation"}”`));
  });
  return {
    el: h("div", { class: "page table-page" }, back, panel.el),
    destroy: () => panel.destroy(),
  };
}

/**
 * The conversation working on a table (its `current_table_id`), or null. The API does not
 * say which conversation made a table, so this reads the conversations (up to a thousand).
 */
async function conversationOf(tableId) {
  try {
    const list = new CursorList("/conversations", { step: 1000 });
    const items = await list.load();
    return items.find((c) => c.current_table_id === tableId) || null;
  } catch {
    return null;
  }
}

function chatScreen(id, opts) {
  const view = new ChatView(id, ctx, opts);
  view.load();
  return view;
}

// The screens other than conversations and tables (screens/<name>.js) are fetched the first
// time each is opened: the first load carries only what signing in and chatting need, and a
// screen brings only its own code.
const screenModules = new Map();
function lazyScreen(file, name, ...args) {
  let module = screenModules.get(file);
  if (!module) {
    module = import(`./screens/${file}.js`).catch((err) => {
      screenModules.delete(file); // try again on the next visit
      throw err;
    });
    screenModules.set(file, module);
  }
  return module.then((m) => m[name](...args));
}

const ROUTES = [
  [/^#\/c\/([\w-]+)$/, (m) => chatScreen(m[1])],
  [/^#\/t\/([\w-]+)$/, (m) => tableScreen(m[1])],
  [/^#\/new$/, () => chatScreen(null)],
  [/^#\/tables$/, () => lazyScreen("tables", "tablesView")],
  [/^#\/templates$/, () => lazyScreen("templates", "templatesView")],
  [/^#\/exports$/, () => lazyScreen("exports", "exportsView")],
  [/^#\/keys$/, () => lazyScreen("keys", "keysView")],
  [/^#\/usage$/, () => lazyScreen("usage", "usageView")],
  [/^#\/account$/, () => lazyScreen("account", "accountView", { email: me?.email })],
];

let routed = 0; // which route() is the latest, so a screen that loads late is not shown

function route() {
  if (!me) return;
  const hash = location.hash || "#/";
  if (!hash.startsWith("#/")) return; // an in-page anchor such as #main
  current?.destroy?.();
  current = null;
  clearToasts();
  const found = ROUTES.map(([re, make]) => [re.exec(hash), make]).find(([m]) => m);
  const made = found ? found[1](found[0]) : home();
  const turn = ++routed;
  for (const a of nav.querySelectorAll(".nav-link, .conv-link")) {
    if (a.getAttribute("href") === hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  setMenu(false);
  if (made instanceof Promise) {
    replace(main, h("p", { class: "boot" }, "Loading…"));
    made.then((screen) => {
      if (turn === routed) show(hash, screen);
      else screen.destroy?.();
    }, (err) => {
      if (turn === routed) replace(main, h("p", { class: "boot error", role: "alert" }, `This screen could not be loaded: ${err.message}`));
    });
  } else {
    show(hash, made);
  }
}

function show(hash, screen) {
  current = screen;
  replace(main, current.el);
  document.title = "SheetGPT";
  const heading = main.querySelector("h1");
  if (heading && !hash.startsWith("#/c/") && !screen.keepFocus) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

// --- start -------------------------------------------------------------------------------

function showAuth() {
  current?.destroy?.();
  current = null;
  modelsCache = null;
  conversations = new CursorList("/conversations", { step: 100 });
  const view = authView(async () => {
    await start();
  });
  replace(root, view.el);
  view.focus();
}

async function start() {
  try {
    me = await get("/auth/me");
  } catch {
    showAuth();
    return;
  }
  buildShell();
  await loadConversations();
  route();
  googleOutcome();
}

/** Back from Google's consent screen (`/?google=…`): say how it went, then drop the query. */
function googleOutcome() {
  const params = new URLSearchParams(location.search);
  const outcome = params.get("google");
  if (!outcome) return;
  history.replaceState(null, "", location.pathname + location.hash);
  if (outcome === "connected") {
    toast("Google account connected. Exports can now go to Google Sheets.");
  } else if (outcome === "denied") {
    toast("Google access was not granted, so nothing was connected.", "error");
  } else {
    toast("Connecting Google did not work. Please try again from the export dialog.", "error");
  }
}

setSignedOutHandler(() => {
  if (me) {
    me = null;
    toast("Your session has ended. Please sign in again.", "error");
    showAuth();
  }
});
window.addEventListener("hashchange", route);
document.addEventListener("click", (e) => {
  const skip = e.target.closest?.(".skip-link");
  if (skip) {
    e.preventDefault();
    document.getElementById("main")?.focus();
  }
});

(async () => {
  let ok = false;
  try {
    ok = await refresh();
  } catch (err) {
    replace(root, h("p", { class: "boot error" }, err.message));
    return;
  }
  if (ok) await start();
  else showAuth();
})();

