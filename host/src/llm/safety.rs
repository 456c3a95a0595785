//! The input pre-filter: a length cap and the operator's patterns. (The redactor that scrubs
//! secrets from what leaves molten is [`crate::redact`].)

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
}
