// How cells look: numbers grouped and right-aligned, dates in the reader's locale, money with
// its currency. Values arrive in the API's canonical JSON form (see README, Tables).

export const NUMERIC = new Set(["integer", "decimal", "float", "currency", "percent"]);

const intFmt = new Intl.NumberFormat(undefined);
const floatFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });
const point = new Intl.NumberFormat(undefined).formatToParts(1.5).find((p) => p.type === "decimal")?.value || ".";
const moneyFmts = new Map();

/** Groups the integer part of an exact decimal string without going through a float. */
function exact(text) {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
  if (!m) return String(text);
  let whole;
  try {
    whole = intFmt.format(BigInt(m[2]));
  } catch {
    whole = m[2];
  }
  return `${m[1]}${whole}${m[3] ? point + m[3] : ""}`;
}

function money(value) {
  const amount = value && typeof value === "object" ? value.amount : value;
  const code = value && typeof value === "object" ? value.currency : "";
  let fmt = moneyFmts.get(code);
  if (fmt === undefined) {
    try {
      fmt = new Intl.NumberFormat(undefined, { style: "currency", currency: code });
    } catch {
      fmt = null;
    }
    moneyFmts.set(code, fmt);
  }
  const n = Number(amount);
  return fmt && Number.isFinite(n) ? fmt.format(n) : `${exact(amount)} ${code}`.trim();
}

/** The text shown for a cell. */
const GROUPING = { ",": "commas", ".": "points", " ": "spaces", "\u00a0": "spaces", "\u202f": "thin spaces", "'": "apostrophes", _: "underscores" };

/** How a column's numbers were written where they came from (its `reading`), in words. */
export function readingText(reading) {
  if (!reading) return "";
  const mark = reading.decimal === "," ? "decimal comma" : "decimal point";
  const groups = reading.grouping ? `, thousands grouped with ${GROUPING[reading.grouping] || `“${reading.grouping}”`}` : "";
  return `Numbers read with a ${mark}${groups}`;
}

export function display(value, type) {
  if (value === null || value === undefined) return "";
  switch (type) {
    case "integer":
      return typeof value === "number" ? intFmt.format(value) : exact(value);
    case "decimal":
      return exact(value);
    case "float":
      return typeof value === "number" ? floatFmt.format(value) : String(value);
    case "percent":
      return `${exact(value)}%`;
    case "currency":
      return money(value);
    case "boolean":
      return value ? "Yes" : "No";
    case "date": {
      const d = new Date(`${value}T00:00:00Z`);
      return Number.isNaN(d.getTime()) ? String(value) : dateFmt.format(d);
    }
    case "datetime": {
      const d = new Date(`${value}Z`);
      return Number.isNaN(d.getTime()) ? String(value) : dateTimeFmt.format(d);
    }
    default:
      return typeof value === "object" ? JSON.stringify(value) : String(value);
  }
}

/** The text put in the editor: what a person would type to get this value back. */
export function editText(value, type) {
  if (value === null || value === undefined) return "";
  if (type === "currency" && typeof value === "object") return `${value.amount} ${value.currency}`;
  if (type === "percent") return `${value}%`;
  if (type === "boolean") return value ? "true" : "false";
  return String(value);
}

/** A short, friendly time: "14:05" today, "3 Mar" this year, "3 Mar 2024" otherwise. */
export function when(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }
  const opts = { day: "numeric", month: "short" };
  if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
  return d.toLocaleDateString(undefined, opts);
}

export function count(n) {
  return intFmt.format(n);
}

/** `1 cell`, `2 cells`. */
export function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** The texts of listed cells (`[row id, text]`), the first few quoted, and how many more. */
export function cellTexts(cells, total = cells.length, shown = 5) {
  const quoted = cells.slice(0, shown).map(([, text]) => `“${text}”`).join(", ");
  const more = total - Math.min(shown, cells.length);
  return more > 0 ? `${quoted} and ${count(more)} more` : quoted;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Millionths of a dollar as dollars. */
export function dollars(micros) {
  const n = micros / 1e6;
  return new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: n < 1 ? 4 : 2 }).format(n);
}
