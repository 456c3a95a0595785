//! The redactor: scrubs secrets (credential shapes and every configured value) from everything
//! that leaves molten — replies, tool output sent to the model, HTTP responses handed to skills,
//! logs. It depends on nothing else in molten, so every layer can use it.

use regex::Regex;

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
