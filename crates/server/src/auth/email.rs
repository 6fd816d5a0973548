//! Email addresses as accounts know them: trimmed, lower-cased, plausibly deliverable.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises (trim, lower-case) and checks the shape `local@domain.tld`. Deliverability
    /// is not checked here; there is no mail confirmation yet.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if email.len() > 254 {
            return Err("must be at most 254 characters long".to_owned());
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address like name@example.com".to_owned());
        };
        let bad = local.is_empty()
            || local.len() > 64
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || local.contains('@')
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
            || !domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if bad {
            return Err("must be an email address like name@example.com".to_owned());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").map(|e| e.to_string()),
            Ok("alice@example.com".to_owned())
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@example",
            "alice@exa_mple.com",
            "alice@@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
