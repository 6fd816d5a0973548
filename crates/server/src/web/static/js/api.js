// The API client of the page. The access token lives only in this module's memory; the
// refresh token is an HttpOnly cookie this script never sees. Errors become ApiError, whose
// message is a sentence for a person, never the raw problem document.

const BASE = "/api/v1";
let access = null;
let refreshing = null;
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, problem) {
    super(humanize(status, problem));
    this.status = status;
    this.code = problem?.code || null;
    this.fields = Array.isArray(problem?.errors) ? problem.errors : [];
  }
}

const FIELD_NAMES = {
  email: "Email",
  password: "Password",
  new_password: "New password",
  current_password: "Current password",
  name: "Name",
  content: "The message",
  template: "Template:",
  ops: "",
  body: "The request",
};

function fieldLabel(field) {
  if (field in FIELD_NAMES) return FIELD_NAMES[field];
  const cell = /^rows\[(\d+)\]\.(.+)$/.exec(field);
  if (cell) return `Row ${cell[1]}, column “${cell[2]}”:`;
  return field.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function sentence(text) {
  // `name` in the API's messages reads better as “name” on a page.
  const t = String(text).trim().replace(/`([^`]*)`/g, "“$1”");
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(first) ? first : `${first}.`;
}

/** A problem+json document (or nothing) as sentences. */
export function humanize(status, problem) {
  if (problem && Array.isArray(problem.errors) && problem.errors.length) {
    return problem.errors.map((e) => sentence(`${fieldLabel(e.field || "")} ${e.message}`)).join(" ");
  }
  if (problem && problem.detail) return sentence(problem.detail);
  if (status === 0) return "SheetGPT cannot be reached. Check your connection and try again.";
  if (status === 401) return "Your session has ended. Please sign in again.";
  if (status === 403) return "You are not allowed to do this.";
  if (status === 404) return "This no longer exists.";
  if (status === 413) return "This is larger than the server accepts.";
  if (status === 429) return "Too many requests. Wait a moment and try again.";
  if (status >= 500) return "Something went wrong on the server. Try again in a moment.";
  return "The request could not be completed.";
}

async function errorFrom(res) {
  let problem = null;
  const type = res.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      problem = await res.json();
    } catch {
      problem = null;
    }
  }
  return new ApiError(res.status, problem);
}

function csrfToken() {
  const match = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith("sheetgpt_csrf="));
  return match ? decodeURIComponent(match.slice("sheetgpt_csrf=".length)) : "";
}

export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

export function signedIn() {
  return access !== null;
}

/**
 * Any API call. `body` is sent as JSON (or as is for FormData); `raw` returns the Response
 * (downloads, streams). A 401 with an expired access token is retried once after a refresh.
 */
export async function request(method, path, { body, headers = {}, raw = false, signal, retry = true } = {}) {
  const h = { ...headers };
  if (access) h.authorization = `Bearer ${access}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    h["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, { method, headers: h, body: payload, signal, credentials: "same-origin" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, null);
  }
  if (res.status === 401 && retry && access) {
    if (await refresh()) return request(method, path, { body, headers, raw, signal, retry: false });
    access = null;
    onSignedOut();
  }
  if (!res.ok) throw await errorFrom(res);
  if (raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

export const get = (path, opts) => request("GET", path, opts);

/**
 * Follows a job (a large import, the account archive, a change of a large table) until it
 * ends, calling `onProgress(job)` each time it moves: live from its event stream
 * (`/jobs/{id}/events`), and by polling every `every` ms when the stream cannot be had (too
 * many open) or ends before the job (its server stopped). Resolves with the succeeded job;
 * rejects with an ApiError carrying the job's reason when it failed or was cancelled.
 */
export async function followJob(job, onProgress = () => {}, every = 1000) {
  if (job.status === "queued" || job.status === "running") {
    onProgress(job);
    try {
      const res = await request("GET", `/jobs/${encodeURIComponent(job.id)}/events`, {
        raw: true,
        headers: { accept: "text/event-stream" },
      });
      await readEvents(res, (name, data) => {
        if (name !== "job") return;
        job = data;
        onProgress(job);
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      // No stream: polling below follows the job all the same.
    }
  }
  for (;;) {
    onProgress(job);
    if (job.status === "succeeded") return job;
    if (job.status === "failed" || job.status === "cancelled") {
      throw new ApiError(409, { detail: job.error || `The job was ${job.status}.` });
    }
    await new Promise((resolve) => setTimeout(resolve, every));
    job = await request("GET", `/jobs/${encodeURIComponent(job.id)}`);
  }
}

/**
 * Imports a file (CSV, TSV, XLSX, XLS, ODS) as a table; a large one is imported by a job,
 * followed to its end (`onProgress(text)`). Resolves with the new table's id.
 */
export async function importFile(file, onProgress = () => {}) {
  const data = new FormData();
  data.append("file", file);
  const made = await post("/tables/import", data);
  if (made.kind !== "import") return made.id;
  const job = await followJob(made, (j) => onProgress(`Importing: ${progressText(j)}`));
  return job.result.table_id;
}

/** "12,000 of 3,000,000 rows" for a job's progress, or "" before anything is known. */
export function progressText(job) {
  const { done, total } = job.progress || {};
  if (!done && !total) return job.status === "queued" ? "Waiting to start…" : "Starting…";
  const n = (x) => Number(x).toLocaleString();
  return total ? `${n(done)} of ${n(total)} rows` : `${n(done)} rows`;
}
export const post = (path, body, opts) => request("POST", path, { ...opts, body });
export const patch = (path, body, opts) => request("PATCH", path, { ...opts, body });
export const del = (path, opts) => request("DELETE", path, opts);

async function cookieCall(path, body) {
  const headers = { "x-csrf-token": csrfToken() };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(BASE + path, {
      method: "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (!res.ok) throw await errorFrom(res);
  return res.status === 204 ? null : res.json();
}

/**
 * New access token from the refresh cookie. One refresh at a time, also across tabs (Web
 * Locks): the cookie rotates on each use and a token used twice ends the session.
 */
export function refresh() {
  // No CSRF cookie: this browser has not signed in (or signed out); nothing to refresh.
  if (!csrfToken()) return Promise.resolve(false);
  if (!refreshing) {
    const run = async () => {
      try {
        const tokens = await cookieCall("/auth/web/refresh");
        access = tokens.access_token;
        return true;
      } catch (err) {
        if (err.status === 0) throw err;
        access = null;
        return false;
      }
    };
    const locked = navigator.locks ? navigator.locks.request("sheetgpt-refresh", run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

export async function login(email, password) {
  const tokens = await cookieCall("/auth/web/login", { email, password });
  access = tokens.access_token;
}

export async function register(email, password) {
  await request("POST", "/auth/register", { body: { email, password }, retry: false });
  await login(email, password);
}

/** Ends the session. If the server could not be told, the page stays signed in (a session
 *  left open behind a sign-in form would sign the next person in on reload). */
export async function logout() {
  await cookieCall("/auth/web/logout");
  access = null;
}

/** Percent-encodes each path segment given. */
export function enc(value) {
  return encodeURIComponent(String(value));
}

/** Reads a Server-Sent Events response, calling onEvent(name, data) for each event. */
export async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(buffer[cut] === "\r" ? cut + 4 : cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const key = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (key === "event") name = val;
        else if (key === "data") data.push(val);
      }
      if (!data.length) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch {
        parsed = data.join("\n");
      }
      onEvent(name, parsed);
    }
  }
}

/**
 * A list of the API (`{items, next_cursor}`), read page by page: no list on the page stops
 * silently at one page. `load()` reads on, following `next_cursor`, until `step` more items
 * are in or the list ends; `reload()` reads it again from the start as far as it had been
 * read (after a change, or to poll). `items` holds every item read, `done` says the list
 * has ended; while it has not, the screen offers the rest (`moreButton` in dom.js).
 */
export class CursorList {
  constructor(path, { step = 1000, pageSize = 200 } = {}) {
    this.path = path;
    this.step = step;
    this.pageSize = Math.min(pageSize, step);
    this.items = [];
    this.cursor = null;
    this.done = false;
    this.reading = null;
  }

  /** Reads `step` more items (fewer at the end); resolves with every item read so far. */
  load() {
    return this.readUpTo(this.items.length + this.step);
  }

  /** Reads the list again from its start, at least as far as it had been read. */
  reload() {
    const want = Math.max(this.items.length, this.step);
    // A read under way belongs to the old list: let it end, then start over.
    const after = this.reading || Promise.resolve();
    return after.catch(() => {}).then(() => {
      this.items = [];
      this.cursor = null;
      this.done = false;
      return this.readUpTo(want);
    });
  }

  readUpTo(want) {
    if (this.reading) return this.reading.then(() => this.readUpTo(want));
    this.reading = (async () => {
      try {
        while (!this.done && this.items.length < want) {
          const q = new URLSearchParams({ limit: String(Math.min(this.pageSize, 200)) });
          if (this.cursor) q.set("cursor", this.cursor);
          const sep = this.path.includes("?") ? "&" : "?";
          const page = await get(`${this.path}${sep}${q}`);
          this.items.push(...page.items);
          this.cursor = page.next_cursor || null;
          this.done = !this.cursor;
        }
        return this.items;
      } finally {
        this.reading = null;
      }
    })();
    return this.reading;
  }
}

/** Every item of a list, up to `max`: `{items, more}`, `more` when the list goes on past it. */
export async function listAll(path, max = 1000) {
  const list = new CursorList(path, { step: max });
  const items = await list.load();
  return { items, more: !list.done };
}
