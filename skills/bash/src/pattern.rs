//! Shell patterns (`*`, `?`, `[...]`) for `case`, `[[ == ]]`, `${x#pattern}` and globbing,
//! translated to regexes by brush-parser. A pattern here is already expanded: quoted
//! characters arrive backslash-escaped.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;

/// Compiled patterns kept per call: a loop matching the same pattern compiles it once.
const CACHE_ENTRIES: usize = 256;

thread_local! {
    static COMPILED: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

/// A pattern compiled to match whole strings.
pub fn compile(pattern: &str) -> Option<Regex> {
    if let Some(hit) = COMPILED.with(|c| c.borrow().get(pattern).cloned()) {
        return hit;
    }
    let compiled = brush_parser::pattern::pattern_to_regex_str(pattern, false)
        .ok()
        .and_then(|body| Regex::new(&format!("^(?s:{body})$")).ok());
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(pattern.to_owned(), compiled.clone());
    });
    compiled
}

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    match compile(pattern) {
        Some(re) => re.is_match(text),
        None => pattern == text,
    }
}

/// Whether an unquoted word would be globbed: `*`, `?`, or a `[` with a `]` after it.
pub fn has_glob(pattern: &str) -> bool {
    let mut escaped = false;
    let mut open = false;
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' => return true,
            '[' => open = true,
            ']' if open => return true,
            _ => {}
        }
    }
    false
}

/// Escapes every pattern character of `text`, so that it matches only itself.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Removes the backslashes [`escape`] added.
pub fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Which end `${x#p}`, `${x##p}`, `${x%p}`, `${x%%p}` cut, and how much.
#[derive(Clone, Copy)]
pub enum Trim {
    ShortestPrefix,
    LongestPrefix,
    ShortestSuffix,
    LongestSuffix,
}

/// `text` without the part `pattern` matches at one end.
pub fn trim(text: &str, pattern: &str, how: Trim) -> String {
    let Some(re) = compile(pattern) else {
        return text.to_owned();
    };
    let mut cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    cuts.push(text.len());
    let found = match how {
        Trim::ShortestPrefix => cuts.iter().find(|&&i| re.is_match(&text[..i])),
        Trim::LongestPrefix => cuts.iter().rev().find(|&&i| re.is_match(&text[..i])),
        Trim::ShortestSuffix => cuts.iter().rev().find(|&&i| re.is_match(&text[i..])),
        Trim::LongestSuffix => cuts.iter().find(|&&i| re.is_match(&text[i..])),
    };
    match (found, how) {
        (Some(&i), Trim::ShortestPrefix | Trim::LongestPrefix) => text[i..].to_owned(),
        (Some(&i), _) => text[..i].to_owned(),
        (None, _) => text.to_owned(),
    }
}

/// Where replacements may match in `${x/p/r}` and its variants.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    First,
    All,
    Prefix,
    Suffix,
}

/// `${x/pattern/replacement}` and friends: the longest match at each position.
pub fn replace(text: &str, pattern: &str, replacement: &str, anchor: Anchor) -> String {
    let Some(re) = compile(pattern) else {
        return text.to_owned();
    };
    let mut cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    cuts.push(text.len());
    let longest_from = |start: usize| {
        cuts.iter()
            .rev()
            .filter(|&&end| end >= start)
            .find(|&&end| re.is_match(&text[start..end]))
            .copied()
    };
    match anchor {
        Anchor::Prefix => match longest_from(0) {
            Some(end) => format!("{replacement}{}", &text[end..]),
            None => text.to_owned(),
        },
        Anchor::Suffix => match cuts.iter().find(|&&i| re.is_match(&text[i..])) {
            Some(&start) => format!("{}{replacement}", &text[..start]),
            None => text.to_owned(),
        },
        Anchor::First | Anchor::All => {
            let mut out = String::new();
            let mut i = 0;
            let mut replaced = false;
            while i < text.len() {
                if !(replaced && anchor == Anchor::First) {
                    if let Some(end) = longest_from(i).filter(|&end| end > i) {
                        out.push_str(replacement);
                        i = end;
                        replaced = true;
                        continue;
                    }
                }
                let c = text[i..].chars().next().unwrap_or_default();
                out.push(c);
                i += c.len_utf8();
            }
            out
        }
    }
}
