//! The one delimiter sniffer: uploads, `sheetgpt convert` and delimited blocks in replies all
//! decide their delimiter here, so that one file is never split two ways.

/// Delimiters sniffed, in order of preference when the evidence is equal: tabs never occur in
/// ordinary values, commas are the default, semicolons are what European spreadsheets write.
pub const DELIMITERS: [u8; 4] = [b'\t', b',', b';', b'|'];

/// How much of the input is looked at.
pub(crate) const SNIFF_BYTES: usize = 64 * 1024;
const SNIFF_RECORDS: usize = 50;

/// The delimiter that splits the first records of `input` most consistently into two or more
/// fields (quotes respected): the share of records having the most common field count
/// decides, ties go to the earlier delimiter in [`DELIMITERS`]. A comma when none splits.
/// Only the first 64 KiB are looked at, cut at a line break so no record in the sample is cut
/// short (unless one line is longer than the sample, which then decides alone).
pub fn sniff(input: &[u8]) -> u8 {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let sample = if input.len() <= SNIFF_BYTES {
        input
    } else {
        let sample = &input[..SNIFF_BYTES];
        sample
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(sample, |i| &sample[..i])
    };
    let mut best: Option<(usize, usize, u8)> = None;
    for delimiter in DELIMITERS {
        if !sample.contains(&delimiter) {
            continue;
        }
        let counts: Vec<usize> = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(sample)
            .byte_records()
            .map_while(Result::ok)
            .take(SNIFF_RECORDS)
            .map(|r| r.len())
            .collect();
        let Some(mode) = most_common(&counts) else {
            continue;
        };
        if mode < 2 {
            continue;
        }
        let agreeing = counts.iter().filter(|&&c| c == mode).count();
        // Compare agreeing / total as fractions without floats; ties keep the earlier delimiter.
        let better = best.is_none_or(|(a, t, _)| agreeing * t > a * counts.len());
        if better {
            best = Some((agreeing, counts.len(), delimiter));
        }
    }
    best.map_or(b',', |(_, _, d)| d)
}

fn most_common(counts: &[usize]) -> Option<usize> {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    sorted
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| run.len())
        .map(|run| run[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_sniffed_from_the_first_records() {
        assert_eq!(sniff(b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(sniff(b"a\tb\n1,000\t2,000\n"), b'\t');
        assert_eq!(sniff(b"Name;Preis\nA;1,5\nB;2,5\n"), b';');
        assert_eq!(sniff(b"a | b\n1 | 2\n"), b'|');
        assert_eq!(sniff(b"just one column\nvalue\n"), b',');
    }

    #[test]
    fn quoted_delimiters_do_not_count() {
        // Counting semicolons per line would pick `;` here (two per line, every line).
        let text = b"name,notes\n\"a\",\"x; y; z\"\n\"b\",\"p; q; r\"\n";
        assert_eq!(sniff(text), b',');
    }

    #[test]
    fn a_byte_order_mark_and_bytes_that_are_not_utf8_do_not_change_the_answer() {
        assert_eq!(sniff(b"\xEF\xBB\xBFa;b\n1;2\n"), b';');
        assert_eq!(sniff(b"name;city\nJos\xe9;M\xe1laga\n"), b';');
    }
}
