//! A user's locale (a BCP 47 tag such as `de-DE`), parsed once at the edge: what SheetGPT
//! takes from it is the order of day and month in dates that read both ways (`03/04/2024`).

use crate::table::DateOrder;

/// The longest tag taken (language, script, region and a few variants fit).
pub const MAX_LEN: usize = 35;

/// A well-formed BCP 47 tag, normalised: language lower-case, script title-case, region
/// upper-case (`en-us` → `en-US`, `zh-hant-tw` → `zh-Hant-TW`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locale(String);

/// Regions that write the month first (`03/04/2024` is 4 March).
const MONTH_FIRST: [&str; 10] = ["US", "PH", "FM", "MH", "PW", "GU", "MP", "AS", "VI", "UM"];

impl Locale {
    /// Parses `language[-script][-region][-variant…]`: language 2–3 letters, script 4
    /// letters, region 2 letters or 3 digits, variants 5–8 letters or digits (or 4 starting
    /// with a digit). Private-use and extension parts are not taken.
    pub fn parse(tag: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not a BCP 47 language tag such as en-US or de-DE",
                tag.chars().take(40).collect::<String>()
            )
        };
        let tag = tag.trim();
        if tag.is_empty() || tag.len() > MAX_LEN {
            return Err(bad());
        }
        let mut parts = tag.split(['-', '_']);
        let language = parts.next().ok_or_else(bad)?;
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return Err(bad());
        }
        let mut out = language.to_ascii_lowercase();
        let mut stage = 0;
        for part in parts {
            let alpha = part.bytes().all(|b| b.is_ascii_alphabetic());
            let digits = part.bytes().all(|b| b.is_ascii_digit());
            let alnum = part.bytes().all(|b| b.is_ascii_alphanumeric());
            out.push('-');
            if stage < 1 && part.len() == 4 && alpha {
                let mut s = part.to_ascii_lowercase();
                s[..1].make_ascii_uppercase();
                out.push_str(&s);
                stage = 1;
            } else if stage < 2 && ((part.len() == 2 && alpha) || (part.len() == 3 && digits)) {
                out.push_str(&part.to_ascii_uppercase());
                stage = 2;
            } else if alnum
                && ((5..=8).contains(&part.len())
                    || (part.len() == 4 && part.as_bytes()[0].is_ascii_digit()))
            {
                out.push_str(&part.to_ascii_lowercase());
                stage = 3;
            } else {
                return Err(bad());
            }
        }
        Ok(Self(out))
    }

    /// The preferred tag of an `Accept-Language` header (the first with the highest `q`)
    /// that parses; `*` and malformed entries are skipped.
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(f32, Self)> = None;
        for entry in header.split(',').take(32) {
            let mut fields = entry.split(';');
            let tag = fields.next().unwrap_or_default().trim();
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
            let (Some(q), Ok(locale)) = (q, Self::parse(tag)) else {
                continue;
            };
            if q > 0.0 && best.as_ref().is_none_or(|(b, _)| q > *b) {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region (`DE` in `de-DE`), when the tag has one.
    pub fn region(&self) -> Option<&str> {
        self.0
            .split('-')
            .skip(1)
            .find(|p| p.len() == 2 || (p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit())))
    }

    /// How this locale writes `03/04/2024`: month first in the United States and a few
    /// regions that follow it (and for a bare `en`), day first elsewhere.
    pub fn date_order(&self) -> DateOrder {
        match self.region() {
            Some(region) if MONTH_FIRST.contains(&region) => DateOrder::MonthFirst,
            Some(_) => DateOrder::DayFirst,
            None if self.0 == "en" => DateOrder::MonthFirst,
            None => DateOrder::DayFirst,
        }
    }
}

/// The order of ambiguous dates for a user's locale, month first when none is set.
pub fn date_order(locale: Option<&str>) -> DateOrder {
    locale
        .and_then(|l| Locale::parse(l).ok())
        .map_or(DateOrder::MonthFirst, |l| l.date_order())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_parsed_and_normalised() {
        for (tag, want) in [
            ("en-US", "en-US"),
            ("de-de", "de-DE"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("fr", "fr"),
            ("es-419", "es-419"),
            ("de_CH", "de-CH"),
            ("sl-rozaj-biske", "sl-rozaj-biske"),
        ] {
            assert_eq!(
                Locale::parse(tag).map(|l| l.0),
                Ok(want.to_owned()),
                "{tag}"
            );
        }
        for bad in [
            "",
            "e",
            "english",
            "en-",
            "en-US-US",
            "12-US",
            "en US",
            &"a".repeat(40),
        ] {
            assert!(Locale::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_preferred_language_of_a_browser_is_taken() {
        let l = |h| Locale::from_accept_language(h).map(|l| l.0);
        assert_eq!(l("de-DE,de;q=0.9,en;q=0.8"), Some("de-DE".into()));
        assert_eq!(l("en;q=0.5, fr-FR;q=0.9, *"), Some("fr-FR".into()));
        assert_eq!(l("*, x"), None);
    }

    #[test]
    fn the_date_order_follows_the_region() {
        let order = |t: &str| Locale::parse(t).map(|l| l.date_order());
        assert_eq!(order("en-US"), Ok(DateOrder::MonthFirst));
        assert_eq!(order("en"), Ok(DateOrder::MonthFirst));
        assert_eq!(order("en-GB"), Ok(DateOrder::DayFirst));
        assert_eq!(order("de-DE"), Ok(DateOrder::DayFirst));
        assert_eq!(order("fr"), Ok(DateOrder::DayFirst));
        assert_eq!(date_order(None), DateOrder::MonthFirst);
    }
}
