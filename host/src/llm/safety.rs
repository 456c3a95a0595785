//! The input pre-filter (length cap, operator patterns) and the redactor that scrubs secrets from
//! everything that leaves molten: replies, tool output sent to the model, logs.

use regex::Regex;

use crate::config::SafetyConfig;

/// Decides whether a user's message goes to the model at all.
pub struct SafetyFilter {
    max_chars: usize,
    blocked: Vec<Regex>,
    refusal: String,
}

impl SafetyFilter {
    /// Builds the filter; patterns were validated with the config.
    pub fn new(config: &SafetyConfig) -> Result<Self, regex::Error> {
        Ok(Self {
            max_chars: config.max_input_chars,
            blocked: config
                .blocked_patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()?,
            refusal: config.refusal.clone(),
        })
    }

    /// `Some(polite refusal)` if the message must not reach the model.
    pub fn check(&self, text: &str) -> Option<String> {
        if text.trim().is_empty() {
            return Some("I received an empty message. What would you like to ask?".to_owned());
        }
        let chars = text.chars().count();
        if chars > self.max_chars {
            return Some(format!(
                "Your message is {chars} characters long; I can read at most {}. Please shorten it.",
                self.max_chars
            ));
        }
        self.blocked
            .iter()
            .any(|re| re.is_match(text))
            .then(|| self.refusal.clone())
    }
}

/// Replaces secret-looking strings and the configured secret values with `[redacted]`.
pub struct Redactor {
    patterns: Vec<Regex>,
}

/// Shapes of credentials that must never leave, whoever produced them.
const SECRET_SHAPES: &[&str] = &[
    // PEM private keys, whole block.
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    // Authorization header values.
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}",
    // OpenAI / Anthropic style keys.
    r"\bsk-[A-Za-z0-9_-]{20,}",
    // Slack tokens.
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    // GitHub tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    // AWS access key ids.
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    // Google API keys.
    r"\bAIza[0-9A-Za-z_-]{35}",
    // Telegram bot tokens.
    r"\b\d{8,10}:[A-Za-z0-9_-]{35}\b",
    // JWTs (Entra, Graph access tokens).
    r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    // Azure storage account keys and connection strings.
    r"(?i)AccountKey=[A-Za-z0-9+/=]{20,}",
];

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// Recognises the built-in shapes and the exact `secrets` (the configured values).
    pub fn new(secrets: &[String]) -> Self {
        let mut patterns: Vec<Regex> = SECRET_SHAPES
            .iter()
            .map(|p| Regex::new(p).expect("built-in secret patterns compile"))
            .collect();
        let literal: Vec<String> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| regex::escape(s))
            .collect();
        if !literal.is_empty() {
            // Longest first, so a secret that contains another is replaced whole.
            let mut literal = literal;
            literal.sort_by_key(|s| std::cmp::Reverse(s.len()));
            patterns.push(Regex::new(&literal.join("|")).expect("escaped literals compile"));
        }
        Self { patterns }
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = std::borrow::Cow::Borrowed(text);
        for re in &self.patterns {
            if re.is_match(&out) {
                out = std::borrow::Cow::Owned(re.replace_all(&out, REDACTED).into_owned());
            }
        }
        out.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> SafetyFilter {
        SafetyFilter::new(&SafetyConfig {
            max_input_chars: 10,
            blocked_patterns: patterns.iter().map(|p| p.to_string()).collect(),
            refusal: "no thanks".into(),
        })
        .unwrap()
    }

    #[test]
    fn filter_refuses_politely() {
        let f = filter(&["(?i)forbidden"]);
        assert_eq!(f.check("hello"), None);
        assert_eq!(f.check("FORBIDDEN").as_deref(), Some("no thanks"));
        assert!(f.check("01234567890").unwrap().contains("at most 10"));
        assert!(f.check("   ").is_some());
        // Characters, not bytes.
        assert_eq!(f.check("éééééééééé"), None);
    }

    #[test]
    fn redactor_scrubs_shapes_and_configured_values() {
        let r = Redactor::new(&["hunter2-secret".to_owned()]);
        let cases = [
            "key sk-abcdefghijklmnopqrstuvwxyz123456 end",
            "Authorization: Bearer abcdefghijklmnop.qrstuvwx",
            "token xoxb-1234567890-abcdefghij",
            "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "AKIAIOSFODNN7EXAMPLE",
            "password is hunter2-secret!",
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ];
        for case in cases {
            let out = r.redact(case);
            assert!(out.contains(REDACTED), "{case:?} -> {out:?}");
        }
        assert!(!r.redact("password is hunter2-secret!").contains("hunter2"));
        assert_eq!(r.redact("nothing to see here"), "nothing to see here");
    }
}
