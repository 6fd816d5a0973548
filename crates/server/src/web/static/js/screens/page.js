// What the screens under screens/ share: a page with its heading, and an error box under a form.

import { h } from "../dom.js";

export function page(title, intro, ...body) {
  return h("div", { class: "page" }, h("h1", {}, title), intro ? h("p", { class: "intro" }, intro) : null, ...body);
}

export function errorBox() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

export function showIn(box, err) {
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}
