// The Usage screen: tokens and cost per day and model.

import { get } from "../api.js";
import { field, h, replace } from "../dom.js";
import { count, dollars } from "../format.js";
import { page } from "./page.js";

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
