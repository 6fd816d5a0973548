//! Markdown pipe tables (GitHub style): reading them out of replies and writing them.
//!
//! The rules are GFM's (github/cmark-gfm, spec section *Tables*): a table is a header row of
//! cells separated by `|`, then a delimiter row (`|---|:--:|`) with as many cells as the
//! header (otherwise there is no table), then rows until a blank line or a line that begins
//! another block (a quote, heading, fence, list item, thematic break, HTML block or indented
//! code); a line without a pipe before that is a row of one cell, as GitHub shows it. Leading
//! and trailing pipes are optional, `\|` is a pipe inside a cell, rows with too many cells are
//! cut and rows with too few padded. Inline markup is replaced by its text (`**bold**` →
//! `bold`, `[text](url)` → `text`, `<https://x.io>` → `https://x.io`, `<b>x</b>` → `x`,
//! `&amp;` → `&`, `\*` → `*`) and `<br>` becomes a line break, so cells hold what a reader
//! sees.

use std::borrow::Cow;
use std::collections::HashMap;

use super::Line;
use super::build::build_table;
use crate::table::{DateOrder, Table, Value};

/// Whether a line could head a table (the alignment row below it decides).
fn may_be_header(line: &str) -> bool {
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

/// Whether `header` and the line after it open a table: a delimiter row with as many cells
/// as the header row (GFM: "The header row must match the delimiter row in the number of
/// cells. If not, a table will not be recognized").
pub(super) fn opens_table(header: &str, delimiter: &str) -> bool {
    may_be_header(header)
        && is_alignment_row(delimiter)
        && split_row(header).count() == split_row(delimiter).count()
}

/// Whether a line ends a table body by beginning another block: after at most three spaces
/// of indentation, a block quote, an ATX heading, a code fence, a thematic break, a list item
/// or an HTML block; or four columns of indentation (an indented code block).
fn starts_block(line: &str) -> bool {
    let mut indent = 0;
    let mut at = 0;
    for b in line.bytes() {
        match b {
            b' ' => indent += 1,
            b'\t' => indent += 4 - indent % 4,
            _ => break,
        }
        at += 1;
        if indent >= 4 {
            return !line[at..].trim().is_empty();
        }
    }
    let t = &line[at..];
    let b = t.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    let blank_or_space = |i: usize| b.get(i).is_none_or(|c| matches!(c, b' ' | b'\t'));
    match first {
        b'>' => true,
        b'#' => {
            let n = run_len(b, 0, b'#');
            n <= 6 && blank_or_space(n)
        }
        b'`' | b'~' => {
            let n = run_len(b, 0, first);
            // A backtick fence's info string holds no backtick.
            n >= 3 && (first == b'~' || !t[n..].contains('`'))
        }
        b'-' | b'*' | b'_' if is_thematic_break(t) => true,
        b'-' | b'*' | b'+' => blank_or_space(1),
        b'0'..=b'9' => {
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            n <= 9 && matches!(b.get(n), Some(b'.' | b')')) && blank_or_space(n + 1)
        }
        b'<' => starts_html_block(t),
        _ => false,
    }
}

/// Three or more of one of `-`, `*`, `_`, and nothing else but spaces and tabs.
fn is_thematic_break(t: &str) -> bool {
    let Some(marker) = t.bytes().next() else {
        return false;
    };
    let mut count = 0;
    for b in t.bytes() {
        match b {
            b' ' | b'\t' => {}
            _ if b == marker => count += 1,
            _ => return false,
        }
    }
    count >= 3
}

/// HTML block starts (CommonMark 4.6, kinds 1 to 7) at the start of `t`, which begins with `<`.
fn starts_html_block(t: &str) -> bool {
    const RAW: [&str; 4] = ["script", "pre", "style", "textarea"];
    const BLOCK: [&str; 62] = [
        "address",
        "article",
        "aside",
        "base",
        "basefont",
        "blockquote",
        "body",
        "caption",
        "center",
        "col",
        "colgroup",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "frame",
        "frameset",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "header",
        "hr",
        "html",
        "iframe",
        "legend",
        "li",
        "link",
        "main",
        "menu",
        "menuitem",
        "nav",
        "noframes",
        "ol",
        "optgroup",
        "option",
        "p",
        "param",
        "search",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "title",
        "tr",
        "track",
        "ul",
    ];
    let rest = &t[1..];
    if rest.starts_with("!--") || rest.starts_with('?') || rest.starts_with("![CDATA[") {
        return true;
    }
    if rest.starts_with('!') && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
        return true;
    }
    let (closing, name_at) = match rest.strip_prefix('/') {
        Some(_) => (true, 1),
        None => (false, 0),
    };
    let name_len = rest[name_at..]
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'-')
        .count();
    let name = &rest[name_at..name_at + name_len];
    let after = &rest[name_at + name_len..];
    let ends_name = |s: &str| {
        s.is_empty() || s.starts_with([' ', '\t', '>']) || (!closing && s.starts_with("/>"))
    };
    let ends_raw = |s: &str| s.is_empty() || s.starts_with([' ', '\t', '>']);
    if !closing && RAW.iter().any(|r| name.eq_ignore_ascii_case(r)) && ends_raw(after) {
        return true;
    }
    if BLOCK.iter().any(|r| name.eq_ignore_ascii_case(r))
        && (ends_name(after) || after.starts_with("/>"))
    {
        return true;
    }
    // Kind 7: a whole open or closing tag, alone on its line.
    let mut memo = HtmlMemo::default();
    html_len(t.as_bytes(), &mut memo).is_some_and(|len| t[len..].trim().is_empty())
}

/// Reads the table whose header is `lines[0]` (and alignment row `lines[1]`). Returns the
/// table, or `None` when it is wider than `MAX_COLUMNS`, and how many lines it took.
pub(super) fn read_table(text: &str, lines: &[Line], dates: DateOrder) -> (Option<Table>, usize) {
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
        // A row like `| - | - |` is a row here, as in Markdown, even though it would pass
        // for an alignment row; a line without a pipe is a row too, as GitHub shows it.
        if s.trim().is_empty() || starts_block(s) {
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
    (Some(build_table(&headers, &cells, width, dates)), used)
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
    matches!(b, b'\\' | b'`' | b'*' | b'_' | b'~' | b'[' | b'<' | b'&')
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
    let mut html_memo = HtmlMemo::default();
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
            b'<' => {
                if let Some(len) = br_len(&bytes[i..]) {
                    flush(&mut pieces, text_from, i);
                    pieces.push(Piece::Text(Cow::Borrowed("\n")));
                    i += len;
                    text_from = i;
                } else if let Some(len) = autolink_len(&bytes[i..]) {
                    // The link's text is its address.
                    flush(&mut pieces, text_from, i);
                    pieces.push(Piece::Text(Cow::Borrowed(&s[i + 1..i + len - 1])));
                    i += len;
                    text_from = i;
                } else if let Some(len) = html_len(&bytes[i..], &mut html_memo) {
                    // A tag, comment or declaration has no text of its own.
                    flush(&mut pieces, text_from, i);
                    i += len;
                    text_from = i;
                } else {
                    i += 1;
                }
            }
            b'&' => match entity(&s[i..]) {
                Some((len, decoded)) => {
                    flush(&mut pieces, text_from, i);
                    pieces.push(Piece::Text(Cow::Owned(decoded)));
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

/// Searches that failed once fail again later in the same text (a closer that is not there),
/// so each is done at most once per cell and reading stays linear.
#[derive(Default)]
struct HtmlMemo {
    no_comment_end: bool,
    no_pi_end: bool,
    no_cdata_end: bool,
    no_declaration_end: bool,
    no_quote: [bool; 2],
}

/// The length of the inline HTML at the start of `b` (CommonMark 6.6): an open tag with
/// attributes, a closing tag, a comment, a processing instruction, a declaration or CDATA.
fn html_len(b: &[u8], memo: &mut HtmlMemo) -> Option<usize> {
    let rest = b.get(1..)?;
    let find = |from: usize, needle: &[u8], failed: &mut bool| -> Option<usize> {
        if *failed {
            return None;
        }
        let found = b
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| from + p + needle.len());
        *failed = found.is_none();
        found
    };
    if rest.starts_with(b"!--") {
        // `<!-->` and `<!--->` are comments too (CommonMark 0.31).
        for short in [&b"<!-->"[..], b"<!--->"] {
            if b.starts_with(short) {
                return Some(short.len());
            }
        }
        return find(4, b"-->", &mut memo.no_comment_end);
    }
    if rest.starts_with(b"![CDATA[") {
        return find(9, b"]]>", &mut memo.no_cdata_end);
    }
    if rest.starts_with(b"?") {
        return find(2, b"?>", &mut memo.no_pi_end);
    }
    if rest.first() == Some(&b'!') && rest.get(1).is_some_and(u8::is_ascii_alphabetic) {
        return find(2, b">", &mut memo.no_declaration_end);
    }
    let tag_name = |at: usize| -> usize {
        if !b.get(at).is_some_and(u8::is_ascii_alphabetic) {
            return 0;
        }
        b[at..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
            .count()
    };
    let space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    if rest.first() == Some(&b'/') {
        let n = tag_name(2);
        if n == 0 {
            return None;
        }
        let mut i = 2 + n;
        while b.get(i).is_some_and(space) {
            i += 1;
        }
        return (b.get(i) == Some(&b'>')).then_some(i + 1);
    }
    let n = tag_name(1);
    if n == 0 {
        return None;
    }
    let mut i = 1 + n;
    loop {
        let spaces = b[i..].iter().take_while(|c| space(c)).count();
        i += spaces;
        match b.get(i)? {
            b'>' => return Some(i + 1),
            b'/' => return (b.get(i + 1) == Some(&b'>')).then_some(i + 2),
            c if spaces > 0 && (c.is_ascii_alphabetic() || matches!(c, b'_' | b':')) => {
                i += b[i..]
                    .iter()
                    .take_while(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-')
                    })
                    .count();
                let mut j = i;
                while b.get(j).is_some_and(space) {
                    j += 1;
                }
                if b.get(j) != Some(&b'=') {
                    continue;
                }
                j += 1;
                while b.get(j).is_some_and(space) {
                    j += 1;
                }
                match b.get(j)? {
                    q @ (b'"' | b'\'') => {
                        let slot = usize::from(*q == b'\'');
                        if memo.no_quote[slot] {
                            return None;
                        }
                        match b[j + 1..].iter().position(|c| c == q) {
                            Some(p) => i = j + 1 + p + 1,
                            None => {
                                memo.no_quote[slot] = true;
                                return None;
                            }
                        }
                    }
                    _ => {
                        let n = b[j..]
                            .iter()
                            .take_while(|c| {
                                !space(c) && !matches!(c, b'"' | b'\'' | b'=' | b'<' | b'>' | b'`')
                            })
                            .count();
                        if n == 0 {
                            return None;
                        }
                        i = j + n;
                    }
                }
            }
            _ => return None,
        }
    }
}

/// The length of an autolink at the start of `b`: `<scheme:address>` or `<name@host>`.
fn autolink_len(b: &[u8]) -> Option<usize> {
    let end = 1 + b
        .get(1..)?
        .iter()
        .position(|c| matches!(c, b'>' | b'<' | b' ' | b'\t'))?;
    if b[end] != b'>' {
        return None;
    }
    let inner = &b[1..end];
    let scheme = inner
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
        .count();
    let is_uri = (2..=32).contains(&scheme)
        && inner[0].is_ascii_alphabetic()
        && inner.get(scheme) == Some(&b':')
        && inner.iter().all(|c| !c.is_ascii_control());
    let is_email = inner.iter().position(|c| *c == b'@').is_some_and(|at| {
        let (local, domain) = (&inner[..at], &inner[at + 1..]);
        !local.is_empty()
            && local
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(c))
            && domain.split(|c| *c == b'.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label[0] != b'-'
                    && label[label.len() - 1] != b'-'
                    && label
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            })
    });
    (is_uri || is_email).then_some(end + 1)
}

/// An entity or numeric character reference at the start of `s`: its length and its text.
/// Named references are the common ones; others are left as written.
fn entity(s: &str) -> Option<(usize, String)> {
    const NAMED: [(&str, &str); 30] = [
        ("amp", "&"),
        ("lt", "<"),
        ("gt", ">"),
        ("quot", "\""),
        ("apos", "'"),
        ("nbsp", "\u{a0}"),
        ("copy", "©"),
        ("reg", "®"),
        ("trade", "™"),
        ("hellip", "…"),
        ("mdash", "—"),
        ("ndash", "–"),
        ("lsquo", "‘"),
        ("rsquo", "’"),
        ("ldquo", "“"),
        ("rdquo", "”"),
        ("laquo", "«"),
        ("raquo", "»"),
        ("euro", "€"),
        ("pound", "£"),
        ("yen", "¥"),
        ("cent", "¢"),
        ("deg", "°"),
        ("times", "×"),
        ("divide", "÷"),
        ("plusmn", "±"),
        ("middot", "·"),
        ("bull", "•"),
        ("sect", "§"),
        ("para", "¶"),
    ];
    let body = s.get(1..)?;
    let end = body.bytes().take(33).position(|c| c == b';')?;
    let name = &body[..end];
    let len = end + 2;
    if let Some(num) = name.strip_prefix('#') {
        let (digits, radix, max) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 6),
            None => (num, 10, 7),
        };
        if digits.is_empty()
            || digits.len() > max
            || !digits.bytes().all(|c| (c as char).is_digit(radix))
        {
            return None;
        }
        let code = u32::from_str_radix(digits, radix).ok()?;
        // U+0000 and what is not a character read as U+FFFD, as CommonMark says.
        let c = char::from_u32(code)
            .filter(|c| *c != '\0')
            .unwrap_or('\u{fffd}');
        return Some((len, c.to_string()));
    }
    NAMED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| (len, (*text).to_owned()))
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
    let mut memo = HtmlMemo::default();
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
            '<' if {
                let rest = &cell.as_bytes()[i..];
                br_len(rest).is_some()
                    || autolink_len(rest).is_some()
                    || html_len(rest, &mut memo).is_some()
            } =>
            {
                out.push_str("\\<");
            }
            '&' if entity(&cell[i..]).is_some() => out.push_str("\\&"),
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
    fn inline_html_autolinks_and_references_become_their_text() {
        for (raw, seen) in [
            (
                "<b>bold</b> <span class=\"x\" data-a='1' hidden>in</span>",
                "bold in",
            ),
            ("<a href=\"https://x.io\">Paris</a>", "Paris"),
            ("a <!-- note --> b", "a  b"),
            ("<?php x ?>y", "y"),
            ("<!DOCTYPE html>z", "z"),
            ("<![CDATA[raw]]>k", "k"),
            (
                "<https://x.io/a?b=1> and <ops@x.io>",
                "https://x.io/a?b=1 and ops@x.io",
            ),
            (
                "AT&amp;T &lt;tag&gt; &quot;q&quot; &#65;&#x42; &nbsp;",
                "AT&T <tag> \"q\" AB \u{a0}",
            ),
            ("&#0; &#x110000;", "\u{fffd} \u{fffd}"),
            (
                "&notareference; & alone; a<b, 3 < 4",
                "&notareference; & alone; a<b, 3 < 4",
            ),
            ("`<b>x</b> &amp;`", "<b>x</b> &amp;"),
            ("\\<b>x\\&amp;", "<b>x&amp;"),
            ("<b x=\"unclosed>y", "<b x=\"unclosed>y"),
            ("<!-- unclosed <!-- again", "<!-- unclosed <!-- again"),
        ] {
            assert_eq!(clean_cell(raw), seen, "{raw}");
        }
    }

    #[test]
    fn a_table_needs_a_delimiter_row_as_wide_as_its_header() {
        assert!(opens_table("| abc | def |", "| --- | --- |"));
        assert!(opens_table("| abc | defghi |", ":-: | -----------:"));
        assert!(!opens_table("| abc | def |", "| --- |"));
        assert!(!opens_table("| abc |", "| --- | --- |"));
        assert!(!opens_table("abc", "| --- |"));
    }

    #[test]
    fn blocks_that_end_a_table() {
        for line in [
            "> quote",
            "# Heading",
            "###### six",
            "```",
            "~~~ text",
            "---",
            "* * *",
            "- item",
            "+ item",
            "1. first",
            "12) twelfth",
            "    indented code",
            "\tcode",
            "<div>",
            "</table>",
            "<!-- comment",
            "<script src=x>",
            "<custom-tag attr=\"1\">",
            "   > three spaces are not code",
        ] {
            assert!(starts_block(line), "{line}");
        }
        for line in [
            "bar",
            "| a | b |",
            "#hashtag",
            "-5 | 3",
            "1.5 | 2",
            "``code``",
            "<b>x</b> | 2",
            "   ",
        ] {
            assert!(!starts_block(line), "{line}");
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
            "<b>bold</b>",
            "<https://x.io>",
            "<a@b.io>",
            "<!-- c -->",
            "&amp; &#38; &copy;",
            "AT&T a < b > c",
            "&unknown; &#; &",
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
