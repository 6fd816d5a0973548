// The API keys screen: keys for scripts, shown once when made, and revoked.

import { CursorList, del, enc, post } from "../api.js";
import { confirmDialog, field, h, listEnd, replace, toast, uid } from "../dom.js";
import { when } from "../format.js";
import { errorBox, page, showIn } from "./page.js";

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
