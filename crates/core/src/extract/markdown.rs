//! Markdown pipe tables (GitHub style): reading them out of replies and writing them.
//!
//! A table is a row of cells separated by `|`, then an alignment row (`|---|:--:|`), then
//! rows until a line without a pipe. Leading and trailing pipes are optional, `\|` is a pipe
//! inside a cell, rows with too many cells are cut and rows with too few padded. Inline
//! formatting is removed from cells (`**bold**` → `bold`, `[text](url)` → `text`) and `<br>`
//! becomes a line break, so cells hold what a reader sees.

use std::borrow::Cow;
use std::collections::HashMap;

use super::Line;
use super::build::build_table;
use crate::table::{Table, Value};

/// Whether a line could head a table (the alignment row below it decides).
pub(super) fn may_be_header(line: &str) -> bool {
    line.contains('|') && !line.trim().is_empty()
}

/// `|---|:--:|`, `--- | ---`, `| :- |`: at least one pipe, and every cell dashes with an
/// optional colon at either end.
pub(super) fn is_alignment_row(line: &str) -> bool {
    let t = line.trim();
    // Quick refusal for ordinary rows, which is what this is called on most.
    if !t.contains('|')
        || !t
            .bytes()
            .all(|b| matches!(b, b'|' | b'-' | b':' | b' ' | b'\t'))
    {
        return false;
    }
    let inner = t.strip_prefix('|').unwrap_or(t);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').all(|cell| {
        let c = cell.trim();
        let c = c.strip_prefix(':').unwrap_or(c);
        let c = c.strip_suffix(':').unwrap_or(c);
        !c.is_empty() && c.bytes().all(|b| b == b'-')
    })
}

/// Reads the table whose header is `lines[0]` (and alignment row `lines[1]`). Returns the
/// table, or `None` when it is wider than `MAX_COLUMNS`, and how many lines it took.
pub(super) fn read_table(text: &str, lines: &[Line]) -> (Option<Table>, usize) {
    let Some(header_line) = lines.first() else {
        return (None, 0);
    };
    let headers: Vec<String> = split_row(header_line.text(text))
        .map(|c| clean_cell(c).into_owned())
        .collect();
    let width = headers.len();
    let mut cells: Vec<Cow<'_, str>> = Vec::new();
    let mut used = 2;
    while let Some(line) = lines.get(used) {
        let s = line.text(text);
        // A line without a pipe ends the table: Markdown would go on, but models write prose
        // right after a table. A row like `| - | - |` is a row here, as in Markdown, even
        // though it would pass for an alignment row.
        if !s.contains('|') {
            break;
        }
        let before = cells.len();
        cells.extend(split_row(s).take(width).map(clean_cell));
        cells.resize(before + width, Cow::Borrowed(""));
        used += 1;
    }
    if width > super::MAX_COLUMNS {
        return (None, used);
    }
    (Some(build_table(&headers, &cells, width)), used)
}

/// The raw cells of a row: outer pipes removed, split at pipes that are not escaped (a
/// backslash escapes the byte after it, so `\\|` is a backslash and then a split).
fn split_row(line: &str) -> impl Iterator<Item = &str> {
    let t = line.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    // A final unescaped pipe closes the row rather than opening an empty cell.
    let body = match t.strip_suffix('|') {
        Some(rest) if rest.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0 => rest,
        _ => t,
    };
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let s = rest?;
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'|' => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => i += 1,
            }
        }
        rest = None;
        Some(s)
    })
}

/// A cell as a reader sees it: trimmed, formatting removed, `<br>` as a line break.
fn clean_cell(raw: &str) -> Cow<'_, str> {
    let t = raw.trim();
    if !t.bytes().any(is_inline_special) {
        return Cow::Borrowed(t);
    }
    Cow::Owned(strip_inline(t))
}

fn is_inline_special(b: u8) -> bool {
    matches!(b, b'\\' | b'`' | b'*' | b'_' | b'~' | b'[' | b'<')
}

/// A piece of a cell: text to keep, or a run of emphasis markers that is dropped when it
/// pairs with another and kept as written when it does not.
enum Piece<'a> {
    Text(Cow<'a, str>),
    Run {
        text: &'a str,
        marker: u8,
        open: bool,
        close: bool,
        paired: bool,
    },
}

/// Removes inline Markdown: backslash escapes, code spans, links and images, `<br>`, and
/// emphasis/strikethrough markers that pair up. Markers follow CommonMark's flanking rules in
/// a simplified form: `*`/`~` open before a non-space and close after one; `_` also must not
/// touch a letter or digit on the outside, so `snake_case_name` and `a_b@x.io` stay whole.
/// Code-span closers are looked up in an index of backtick runs and a failed link search is
/// remembered (a later one would fail too), so a cell is read in linear time.
fn strip_inline<'a>(s: &'a str) -> String {
    let bytes = s.as_bytes();
    let mut pieces: Vec<Piece<'a>> = Vec::new();
    let mut code_runs: Option<CodeRuns> = None;
    let mut no_link = false;
    let mut i = 0;
    let mut text_from = 0;
    let flush = |pieces: &mut Vec<Piece<'a>>, from: usize, to: usize| {
        if from < to {
            pieces.push(Piece::Text(Cow::Borrowed(&s[from..to])));
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        if !is_inline_special(b) && b != b'!' {
            i += 1;
            continue;
        }
        match b {
            b'\\' => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_punctuation) {
                    flush(&mut pieces, text_from, i);
                    text_from = i + 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            b'`' => {
                let n = run_len(bytes, i, b'`');
                let closer = code_runs
                    .get_or_insert_with(|| CodeRuns::new(bytes))
                    .next(n, i + n);
                match closer {
                    Some(k) => {
                        flush(&mut pieces, text_from, i);
                        let code = &s[i + n..k];
                        let code = match code.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
                            Some(inner) if !inner.trim().is_empty() => inner,
                            _ => code,
                        };
                        // Inside code only `\|` is an escape (the pipe it protects from
                        // splitting); other backslashes are code.
                        pieces.push(Piece::Text(if code.contains("\\|") {
                            Cow::Owned(code.replace("\\|", "|"))
                        } else {
                            Cow::Borrowed(code)
                        }));
                        i = k + n;
                        text_from = i;
                    }
                    None => i += n,
                }
            }
            b'<' => match br_len(&bytes[i..]) {
                Some(len) => {
                    flush(&mut pieces, text_from, i);
                    pieces.push(Piece::Text(Cow::Borrowed("\n")));
                    i += len;
                    text_from = i;
                }
                None => i += 1,
            },
            b'!' | b'[' => {
                let open = if b == b'!' { i + 1 } else { i };
                if bytes.get(open) != Some(&b'[') || no_link {
                    i += 1;
                    continue;
                }
                match find_link(s, open) {
                    Some((label, end)) => {
                        flush(&mut pieces, text_from, i);
                        pieces.push(Piece::Text(Cow::Owned(strip_inline(label))));
                        i = end;
                        text_from = i;
                    }
                    None => {
                        no_link = true;
                        i += 1;
                    }
                }
            }
            marker @ (b'*' | b'_' | b'~') => {
                flush(&mut pieces, text_from, i);
                let n = run_len(bytes, i, marker);
                let before = s[..i].chars().next_back();
                let after = s[i + n..].chars().next();
                let space_before = before.is_none_or(char::is_whitespace);
                let space_after = after.is_none_or(char::is_whitespace);
                let (mut open, mut close) = (!space_after, !space_before);
                if marker == b'_' {
                    open &= !before.is_some_and(char::is_alphanumeric);
                    close &= !after.is_some_and(char::is_alphanumeric);
                }
                let max = if marker == b'~' { 2 } else { 3 };
                if n > max {
                    (open, close) = (false, false);
                }
                pieces.push(Piece::Run {
                    text: &s[i..i + n],
                    marker,
                    open,
                    close,
                    paired: false,
                });
                i += n;
                text_from = i;
            }
            _ => i += 1,
        }
    }
    flush(&mut pieces, text_from, bytes.len());
    pair_runs(&mut pieces);
    let mut out = String::with_capacity(s.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Run { paired: true, .. } => {}
            Piece::Run { text, .. } => out.push_str(text),
        }
    }
    out
}

/// Pairs each closing run with the latest open run of the same marker and length.
fn pair_runs(pieces: &mut [Piece<'_>]) {
    // Open runs waiting for a closer, by marker and length (1 to 3).
    let mut waiting: [Vec<usize>; 9] = Default::default();
    for i in 0..pieces.len() {
        let Piece::Run {
            text,
            marker,
            open,
            close,
            ..
        } = pieces[i]
        else {
            continue;
        };
        let slot = match marker {
            b'*' => 0,
            b'_' => 3,
            _ => 6,
        } + text.len().clamp(1, 3)
            - 1;
        if close && let Some(opener) = waiting[slot].pop() {
            for j in [opener, i] {
                if let Piece::Run { paired, .. } = &mut pieces[j] {
                    *paired = true;
                }
            }
        } else if open {
            waiting[slot].push(i);
        }
    }
}

fn run_len(bytes: &[u8], at: usize, marker: u8) -> usize {
    bytes[at..].iter().take_while(|&&b| b == marker).count()
}

/// Where the runs of backticks in a cell start, by length, so that finding a code span's
/// closer is a lookup rather than a scan (a cell of many different runs stays linear).
struct CodeRuns(HashMap<usize, Vec<usize>>);

impl CodeRuns {
    fn new(bytes: &[u8]) -> Self {
        let mut runs: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'`' {
                let n = run_len(bytes, i, b'`');
                runs.entry(n).or_default().push(i);
                i += n;
            } else {
                i += 1;
            }
        }
        Self(runs)
    }

    /// The start of the first run of exactly `n` backticks at or after `from`.
    fn next(&self, n: usize, from: usize) -> Option<usize> {
        let starts = self.0.get(&n)?;
        starts.get(starts.partition_point(|&s| s < from)).copied()
    }
}

/// `<br>`, `<br/>`, `<br />` in any case: the length of the tag.
fn br_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 4 || !bytes[1..3].eq_ignore_ascii_case(b"br") {
        return None;
    }
    let mut i = 3;
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'/') {
        i += 1;
    }
    (bytes.get(i) == Some(&b'>')).then_some(i + 1)
}

/// `[label](target)` starting at `open`: the label and where the link ends. The first `](`
/// closes the label, so a label never holds another link.
fn find_link(s: &str, open: usize) -> Option<(&str, usize)> {
    let mid = open + 1 + s[open + 1..].find("](")?;
    let close = mid + 2 + s[mid + 2..].find(')')?;
    Some((&s[open + 1..mid], close + 1))
}

/// A GitHub-style pipe table: header, alignment row (numbers right-aligned), one line per row.
/// Cells are `Value`'s display text, escaped so that reading the table gives them back: `|`,
/// backslashes and formatting markers get a backslash, line breaks become `<br>`. Leading and
/// trailing whitespace of a cell cannot be kept (Markdown trims cells).
pub fn to_markdown(table: &Table) -> String {
    if table.columns.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    push_row(&mut out, table.columns.iter().map(|c| c.name.as_str()));
    out.push('|');
    for c in &table.columns {
        out.push_str(if c.ty.is_numeric() {
            " ---: |"
        } else {
            " --- |"
        });
    }
    out.push('\n');
    for row in &table.rows {
        push_row(&mut out, row.iter().map(Value::to_string));
    }
    out
}

fn push_row<S: AsRef<str>>(out: &mut String, cells: impl Iterator<Item = S>) {
    out.push('|');
    for cell in cells {
        out.push(' ');
        escape_cell(cell.as_ref(), out);
        out.push_str(" |");
    }
    out.push('\n');
}

fn escape_cell(cell: &str, out: &mut String) {
    // A cell of only dashes and colons would read as an alignment row.
    let all_dashes = !cell.is_empty() && cell.bytes().all(|b| b == b'-' || b == b':');
    let mut prev: Option<char> = None;
    let mut chars = cell.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\r' => {
                chars.next_if(|&(_, n)| n == '\n');
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            '\\' | '|' | '`' | '*' | '~' | '[' => {
                out.push('\\');
                out.push(c);
            }
            // `_` can only open emphasis after a character that is not alphanumeric.
            '_' if !prev.is_some_and(char::is_alphanumeric) => out.push_str("\\_"),
            '<' if br_len(&cell.as_bytes()[i..]).is_some() => out.push_str("\\<"),
            '-' | ':' if all_dashes && i == 0 => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        prev = Some(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_rows_need_a_pipe_and_dashes_in_every_cell() {
        assert!(is_alignment_row("|---|:--:|"));
        assert!(is_alignment_row("--- | ---"));
        assert!(is_alignment_row("| :- |"));
        assert!(!is_alignment_row("---"));
        assert!(!is_alignment_row("| --- | |"));
        assert!(!is_alignment_row("| a | b |"));
    }

    #[test]
    fn rows_split_at_unescaped_pipes_and_drop_outer_pipes() {
        let cells: Vec<&str> = split_row(r"| a \| b | c\\|  |").collect();
        assert_eq!(cells, [r" a \| b ", r" c\\", "  "]);
        let cells: Vec<&str> = split_row("a | b").collect();
        assert_eq!(cells, ["a ", " b"]);
        let cells: Vec<&str> = split_row(r"| a \|").collect();
        assert_eq!(cells, [r" a \|"]);
    }

    #[test]
    fn inline_formatting_is_removed_and_markers_that_do_not_pair_are_kept() {
        for (raw, seen) in [
            ("**bold** and *em*", "bold and em"),
            ("_em_ snake_case_name", "em snake_case_name"),
            ("`a | b` ~~old~~ new", "a | b old new"),
            ("[Paris](https://paris.fr) ![logo](l.png)", "Paris logo"),
            ("one<br>two<BR/>three", "one\ntwo\nthree"),
            (r"\*not em\* \| \\", r"*not em* | \"),
            ("2 * 3 * 4", "2 * 3 * 4"),
            ("a*b", "a*b"),
            ("[not a link", "[not a link"),
            ("`open code", "`open code"),
            ("***both***", "both"),
            ("**a *b* c**", "a b c"),
        ] {
            assert_eq!(clean_cell(raw), seen, "{raw}");
        }
    }

    #[test]
    fn escaped_cells_read_back_as_written() {
        for cell in [
            "a|b",
            "**x**",
            "_x_",
            "a\\b\\",
            "line\nbreak",
            "<br>",
            "---",
            ":-:",
            "[a](b)",
            "`c`",
            "~~s~~",
            "x_y_z",
            "(_a_)",
        ] {
            let mut escaped = String::new();
            escape_cell(cell, &mut escaped);
            let row = format!("| {escaped} |");
            let back: Vec<Cow<'_, str>> = split_row(&row).map(clean_cell).collect();
            assert_eq!(back, [cell], "{escaped}");
            assert!(!is_alignment_row(&row));
        }
    }
}
