//! The offline model: answers in-process, with no key and no network, in the same shape as a
//! remote model's reply, so that nothing downstream can tell the difference.
//!
//! What it understands (one command per line, or joined with `;` or "and then"):
//! - a pasted table (CSV, TSV, Markdown, JSON), or the summary SheetGPT sends in its place when
//!   the message is too long (`crate::paste`): answered with what the table holds. The server
//!   stores pasted tables itself, from the whole message, so the reply does not repeat them;
//! - `sort by <column> [asc|desc]` (several keys: `sort by country, population desc`);
//! - `keep rows where <column> <op> <value>` and `remove rows where …` with ops
//!   `=`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, `is empty`, `is not empty`;
//! - `rename column <a> to <b>`;
//! - `add column <name> = <formula>` (e.g. `add column total = price * qty`) and
//!   `add column <name> [as <type>]`;
//! - `remove column <name>` (also `delete`/`drop`);
//! - `change column <name> to <type>`;
//! - `trim spaces` (every text column) or `trim spaces in <column>[, <column>…]`;
//! - `use table <name>`: the commands that follow are for that table (of the user's), which
//!   becomes the conversation's current table.
//!
//! Changes are answered with a ```sheetgpt-ops block, as remote models are told to do.
//! Anything else gets a short description of what it can do.

use serde_json::{Value as Json, json};

use crate::extract::{Format, extract_tables};
use crate::paste;
use crate::table::ColumnType;

/// Replies to the last user message of a conversation.
pub fn reply(last_user_message: &str) -> String {
    let text = last_user_message.trim();
    let summaries = paste::find_summaries(text);
    let tables: Vec<_> = extract_tables(text)
        .into_iter()
        .filter(|t| {
            !summaries
                .iter()
                .any(|s| t.span.start < s.span.end && s.span.start < t.span.end)
        })
        .collect();
    if !tables.is_empty() || !summaries.is_empty() {
        return describe_tables(&tables, &summaries);
    }
    let mut ops = Vec::new();
    let mut done = Vec::new();
    let mut unknown = Vec::new();
    let mut table = None;
    for command in split_commands(text) {
        if let Some(name) = strip(
            &command,
            &[
                "use table ",
                "switch to table ",
                "work on table ",
                "use the table ",
            ],
        ) {
            let name = unquote(name);
            if !name.is_empty() {
                done.push(format!("work on the table “{name}”"));
                table = Some(name);
                continue;
            }
        }
        match parse_command(&command) {
            Some((op, what)) => {
                ops.push(op);
                done.push(what);
            }
            None => unknown.push(command),
        }
    }
    if ops.is_empty() && table.is_none() {
        return HELP.to_owned();
    }
    // Whether it worked is for the server to say once it has applied them.
    let mut out = format!("Changes asked for: {}.", done.join("; "));
    if !unknown.is_empty() {
        out.push_str(&format!(
            " I did not understand: \"{}\" (say \"help\" to see what I can do).",
            unknown.join("\", \"")
        ));
    }
    let block = match table {
        Some(table) => json!({"table": table, "ops": ops}),
        None => Json::Array(ops),
    };
    out.push_str("\n\n```sheetgpt-ops\n");
    out.push_str(&serde_json::to_string_pretty(&block).unwrap_or_else(|_| "[]".to_owned()));
    out.push_str("\n```\n");
    out
}

const HELP: &str = "I am SheetGPT's offline model: I work without a network or an API key, so I cannot \
look things up, but I can turn data into tables and change them.\n\n\
- Paste a table (CSV, TSV, Markdown or JSON) and I will make it a typed table.\n\
- Then tell me what to change, one command per line:\n  \
`sort by population desc`\n  \
`keep rows where country = France` (or `remove rows where price > 100`)\n  \
`rename column A to B`\n  \
`add column total = price * qty`\n  \
`remove column notes`\n  \
`change column year to integer`\n  \
`trim spaces in name` (or `trim spaces` for every text column)\n  \
`use table Sales` (to work on another of your tables)\n\n\
To ask questions about the world, configure a remote model (OpenAI, Anthropic or a local server).";

fn describe_tables(
    tables: &[crate::extract::Extracted],
    summaries: &[paste::Summarised],
) -> String {
    let mut parts = Vec::new();
    for t in tables {
        let cols: Vec<String> = t
            .table
            .columns
            .iter()
            .map(|c| format!("{} ({})", c.name, c.ty))
            .collect();
        let source = match t.format {
            Format::Json | Format::FencedJson => "JSON",
            Format::Markdown => "Markdown table",
            Format::Csv => "CSV",
            Format::Tsv => "TSV",
        };
        parts.push(format!(
            "I read your {source} as a table of {} rows and {} columns: {}.",
            t.table.rows.len(),
            t.table.columns.len(),
            cols.join(", "),
        ));
    }
    for s in summaries {
        parts.push(format!(
            "I read your table “{}” of {} rows and {} columns: {}.",
            s.name, s.rows, s.columns, s.described_columns
        ));
    }
    parts.push(
        "Tell me what to change: sort, keep or remove rows, add, rename or remove columns."
            .to_owned(),
    );
    parts.join("\n\n")
}

fn split_commands(text: &str) -> Vec<String> {
    text.split(['\n', ';'])
        .flat_map(|line| line.split(" and then "))
        .map(|c| c.trim().trim_end_matches(['.', '!']).trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Strips a leading word (case-insensitive) and returns the rest.
fn strip<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    let lower = text.to_lowercase();
    prefixes.iter().find_map(|p| {
        lower
            .starts_with(p)
            .then(|| text.get(p.len()..))
            .flatten()
            .map(str::trim)
    })
}

fn unquote(s: &str) -> String {
    s.trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '“' | '”' | '‘' | '’'))
        .to_owned()
}

/// Splits on the first occurrence of ` <word> ` (case-insensitive).
fn split_word<'a>(text: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let lower = text.to_lowercase();
    let needle = format!(" {word} ");
    let at = lower.find(&needle)?;
    Some((&text[..at], &text[at + needle.len()..]))
}

fn parse_command(command: &str) -> Option<(Json, String)> {
    let c = command.trim();
    if let Some(rest) = strip(
        c,
        &["trim spaces", "trim whitespace", "trim the spaces", "trim"],
    ) {
        let rest = rest.trim();
        if rest.is_empty() || rest.eq_ignore_ascii_case("everywhere") {
            return Some((
                json!({"op": "trim"}),
                "trimmed the spaces around text in every text column".to_owned(),
            ));
        }
        let names = strip(rest, &["in ", "of ", "from ", "in column ", "in columns "])?;
        let names = strip(names, &["column ", "columns "]).unwrap_or(names);
        let columns: Vec<String> = names
            .split([',', '&'])
            .flat_map(|part| part.split(" and "))
            .map(unquote)
            .filter(|n| !n.is_empty())
            .collect();
        if columns.is_empty() {
            return None;
        }
        let what = format!("trimmed the spaces around text in {}", columns.join(", "));
        return Some((json!({"op": "trim", "columns": columns}), what));
    }
    if let Some(rest) = strip(c, &["sort by ", "order by ", "sort on "]) {
        let mut by = Vec::new();
        for key in rest.split(',') {
            let key = key.trim();
            let lower = key.to_lowercase();
            let (name, desc) = if let Some(n) =
                ["descending", "desc", "high to low", "largest first"]
                    .iter()
                    .find_map(|s| lower.strip_suffix(s).map(|_| &key[..key.len() - s.len()]))
            {
                (n, true)
            } else if let Some(n) = ["ascending", "asc", "low to high"]
                .iter()
                .find_map(|s| lower.strip_suffix(s).map(|_| &key[..key.len() - s.len()]))
            {
                (n, false)
            } else {
                (key, false)
            };
            let name = unquote(name);
            if name.is_empty() {
                return None;
            }
            by.push(json!({"column": name, "desc": desc}));
        }
        let what = format!(
            "sorted by {}",
            by.iter()
                .map(|k| format!(
                    "{}{}",
                    k["column"].as_str().unwrap_or_default(),
                    if k["desc"] == true {
                        " (descending)"
                    } else {
                        ""
                    }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Some((json!({"op": "sort", "by": by}), what));
    }
    if let Some(rest) = strip(
        c,
        &[
            "keep rows where ",
            "keep only rows where ",
            "filter rows where ",
            "keep where ",
            "filter where ",
            "only keep rows where ",
        ],
    ) {
        let (column, cmp, value) = parse_condition(rest)?;
        let negated = negate(cmp)?;
        let what = format!(
            "kept rows where {column} {} {}",
            cmp_word(cmp),
            value_text(&value)
        );
        return Some((
            json!({"op": "filter_delete", "filter": {"column": column, "cmp": negated, "value": value}}),
            what,
        ));
    }
    if let Some(rest) = strip(
        c,
        &[
            "remove rows where ",
            "delete rows where ",
            "drop rows where ",
            "remove where ",
            "delete where ",
        ],
    ) {
        let (column, cmp, value) = parse_condition(rest)?;
        let what = format!(
            "removed rows where {column} {} {}",
            cmp_word(cmp),
            value_text(&value)
        );
        return Some((
            json!({"op": "filter_delete", "filter": {"column": column, "cmp": cmp, "value": value}}),
            what,
        ));
    }
    if let Some(rest) = strip(c, &["rename column ", "rename "]) {
        let (from, to) = split_word(rest, "to").or_else(|| split_word(rest, "as"))?;
        let (from, to) = (unquote(from), unquote(to));
        if from.is_empty() || to.is_empty() {
            return None;
        }
        let what = format!("renamed {from} to {to}");
        return Some((
            json!({"op": "rename_column", "column": from, "to": to}),
            what,
        ));
    }
    if let Some(rest) = strip(
        c,
        &["add column ", "add a column ", "create column ", "add "],
    ) {
        if let Some((name, formula)) = rest.split_once('=') {
            let name = unquote(name);
            let formula = formula.trim();
            if name.is_empty() || formula.is_empty() {
                return None;
            }
            // No type: the column takes the formula's (money stays money, 38 % counts as
            // 0.38). The formula is checked, within the server's limits, where it is applied.
            let what = format!("added column {name} = {}", clipped(formula, 80));
            return Some((
                json!({"op": "add_column", "name": name, "formula": formula}),
                what,
            ));
        }
        let (name, ty) = match split_word(rest, "as").or_else(|| split_word(rest, "of type")) {
            Some((n, t)) => (unquote(n), t.trim().parse::<ColumnType>().ok()?),
            None => (unquote(rest), ColumnType::Text),
        };
        if name.is_empty() {
            return None;
        }
        let what = format!("added column {name} ({ty})");
        return Some((json!({"op": "add_column", "name": name, "type": ty}), what));
    }
    if let Some(rest) = strip(
        c,
        &[
            "remove column ",
            "delete column ",
            "drop column ",
            "remove the column ",
            "delete the column ",
        ],
    ) {
        let name = unquote(rest);
        if name.is_empty() {
            return None;
        }
        let what = format!("removed column {name}");
        return Some((json!({"op": "drop_column", "column": name}), what));
    }
    if let Some(rest) = strip(
        c,
        &[
            "change column ",
            "convert column ",
            "change the type of ",
            "make column ",
        ],
    ) {
        let (name, ty) = split_word(rest, "to").or_else(|| split_word(rest, "into"))?;
        let ty = ty
            .trim()
            .trim_start_matches("a ")
            .trim_start_matches("an ")
            .parse::<ColumnType>()
            .ok()?;
        let name = unquote(name);
        let what = format!("changed {name} to {ty}");
        return Some((
            json!({"op": "change_type", "column": name, "to": ty, "invalid": "reject"}),
            what,
        ));
    }
    None
}

/// At most `max` characters of `text`, for the reply's summary of what was done.
fn clipped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn value_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn cmp_word(cmp: &str) -> &'static str {
    match cmp {
        "eq" => "=",
        "ne" => "≠",
        "lt" => "<",
        "lte" => "≤",
        "gt" => ">",
        "gte" => "≥",
        "contains" => "contains",
        "is_null" => "is empty",
        _ => "is not empty",
    }
}

fn negate(cmp: &str) -> Option<&'static str> {
    Some(match cmp {
        "eq" => "ne",
        "ne" => "eq",
        "lt" => "gte",
        "lte" => "gt",
        "gt" => "lte",
        "gte" => "lt",
        "is_null" => "not_null",
        "not_null" => "is_null",
        // "keep rows that contain x" has no single negation; say we cannot.
        _ => return None,
    })
}

/// `<column> <op> <value>` → (column, cmp, value).
fn parse_condition(text: &str) -> Option<(String, &'static str, Json)> {
    let lower = text.to_lowercase();
    for (word, cmp) in [(" is not empty", "not_null"), (" is empty", "is_null")] {
        if let Some(col) = lower.strip_suffix(word) {
            return Some((unquote(&text[..col.len()]), cmp, Json::Null));
        }
    }
    let ops: [(&str, &'static str); 10] = [
        ("!=", "ne"),
        ("<>", "ne"),
        ("<=", "lte"),
        (">=", "gte"),
        ("==", "eq"),
        ("=", "eq"),
        ("<", "lt"),
        (">", "gt"),
        (" contains ", "contains"),
        (" is ", "eq"),
    ];
    for (sym, cmp) in ops {
        if let Some(at) = lower.find(sym) {
            let column = unquote(&text[..at]);
            let raw = unquote(&text[at + sym.len()..]);
            if column.is_empty() || raw.is_empty() {
                return None;
            }
            // Numbers stay numbers; everything else is text the server parses per column.
            let value = raw
                .replace(',', "")
                .parse::<f64>()
                .ok()
                .filter(|_| raw.chars().any(|c| c.is_ascii_digit()))
                .map_or_else(|| Json::String(raw.clone()), |_| Json::String(raw.clone()));
            return Some((column, cmp, value));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops_of(reply: &str) -> Json {
        let start = reply.find("```sheetgpt-ops").map(|i| i + 15).unwrap_or(0);
        let end = reply[start..]
            .find("```")
            .map_or(reply.len(), |e| start + e);
        serde_json::from_str(reply[start..end].trim()).unwrap_or(Json::Null)
    }

    #[test]
    fn a_pasted_csv_is_described_without_being_repeated() {
        let r = reply("city,population\nParis,2102650\nLyon,522250\n");
        assert!(
            r.contains("2 rows and 2 columns: city (text), population (integer)"),
            "{r}"
        );
        assert!(extract_tables(&r).is_empty(), "{r}");
    }

    #[test]
    fn a_summary_of_a_long_paste_is_described_with_its_real_size() {
        let csv: String = std::iter::once("city,population\n".to_owned())
            .chain((0..3000).map(|i| format!("City {i},{i}\n")))
            .collect();
        let table = extract_tables(&csv).remove(0).table;
        let message = format!(
            "Here is my data\n{}",
            paste::summarize("Cities", &table, 20, 4000)
        );
        let r = reply(&message);
        assert!(r.contains("“Cities” of 3000 rows and 2 columns"), "{r}");
        assert!(
            !r.contains("20 rows"),
            "the sample is not taken for the table: {r}"
        );
    }

    #[test]
    fn trim_spaces_becomes_a_trim_of_the_named_columns_or_of_every_text_column() {
        let ops = ops_of(&reply("trim spaces in name, city"));
        assert_eq!(ops[0], json!({"op": "trim", "columns": ["name", "city"]}));
        let ops = ops_of(&reply("trim spaces"));
        assert_eq!(ops[0], json!({"op": "trim"}));
    }

    #[test]
    fn commands_become_operations() {
        let r = reply(
            "sort by population desc\nkeep rows where country = France\nrename column A to B\nadd column total = price * qty\nremove column notes\nchange column year to integer",
        );
        let ops = ops_of(&r);
        let kinds: Vec<&str> = ops
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["op"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            kinds,
            [
                "sort",
                "filter_delete",
                "rename_column",
                "add_column",
                "drop_column",
                "change_type"
            ]
        );
        assert_eq!(
            ops[0]["by"][0],
            json!({"column": "population", "desc": true})
        );
        assert_eq!(
            ops[1]["filter"],
            json!({"column": "country", "cmp": "ne", "value": "France"})
        );
        assert_eq!(ops[3]["formula"], "price * qty");
        // And they parse as real operations.
        let parsed: Result<Vec<crate::version::Op>, _> = serde_json::from_value(ops);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn use_table_names_the_table_the_commands_are_for() {
        let r = reply("use table Sales; sort by amount desc");
        let block = ops_of(&r);
        assert_eq!(block["table"], "Sales");
        assert_eq!(block["ops"][0]["op"], "sort");
        let only = ops_of(&reply("use table “Q3 figures”"));
        assert_eq!(only, json!({"table": "Q3 figures", "ops": []}));
    }

    #[test]
    fn anything_else_gets_help_without_operations() {
        let r = reply("what is the capital of France?");
        assert!(r.contains("offline model") && !r.contains("sheetgpt-ops"));
    }

    #[test]
    fn unknown_parts_are_named_next_to_the_done_ones() {
        let r = reply("sort by name; fly me to the moon");
        assert!(r.contains("sorted by name") && r.contains("fly me to the moon"));
        assert!(!r.contains("Done"), "the model does not claim success: {r}");
    }
}
