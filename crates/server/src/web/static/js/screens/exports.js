// The Exports screen: files exported in the background, their progress, downloads.

import { CursorList, enc, post, request } from "../api.js";
import { h, listEnd, replace, saveBlob, toast, uid } from "../dom.js";
import { bytes, count, when } from "../format.js";
import { page } from "./page.js";

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
