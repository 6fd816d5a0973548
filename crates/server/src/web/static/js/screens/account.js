// The Account screen: locale, password, sessions, your data, deleting the account.

import { CursorList, del, enc, followJob, get, patch, post, progressText, request } from "../api.js";
import { confirmDialog, field, h, listEnd, replace, saveBlob, toast } from "../dom.js";
import { when } from "../format.js";
import { errorBox, page, showIn } from "./page.js";

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
