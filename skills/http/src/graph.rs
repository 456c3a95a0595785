//! What the Microsoft Graph skills share: the base URL, the mailbox path, address checks and
//! readable errors. The Graph token is added by the host; skills never hold it.

use crate::Response;

/// Graph's v1.0 endpoint; the host's grant decides whether it is reachable.
pub const BASE: &str = "https://graph.microsoft.com/v1.0";

/// `/me` with a delegated token, or `/users/{id}` for the operator's configured mailbox with
/// an app-only token.
pub fn mailbox_url(mailbox: Option<&str>) -> String {
    match mailbox.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("{BASE}/users/{}", percent_encode(m)),
        None => format!("{BASE}/me"),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plausible e-mail address: one `@`, a dotted domain, no spaces or angle brackets.
pub fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !local
            .chars()
            .any(|c| c.is_whitespace() || "<>()[],;:\\\"".contains(c))
}

/// Graph's `{"error": {"code", "message"}}` as a sentence the model can act on.
pub fn error_message(response: &Response) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let hint = match response.status {
        400 => "Graph did not accept the request",
        401 => "Graph refused the token; the operator must set a valid graph-token",
        403 => "the token lacks the permission for this mailbox (Calendars.ReadWrite / Mail.Send)",
        404 => "the mailbox was not found; the operator must check the mailbox setting",
        429 => "Graph is throttling requests; try again in a minute",
        500..=599 => "Graph is failing; try again later",
        _ => "the Graph request failed",
    };
    if code.is_empty() {
        format!("{hint} (HTTP {}: {message})", response.status)
    } else {
        format!("{hint} (HTTP {} {code}: {message})", response.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in ["a@b.co", "first.last+tag@example.org"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@b.co>", "a@.co", "<a@b.co>",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn mailbox_paths() {
        assert_eq!(mailbox_url(None), "https://graph.microsoft.com/v1.0/me");
        assert_eq!(
            mailbox_url(Some("ada@contoso.com")),
            "https://graph.microsoft.com/v1.0/users/ada@contoso.com"
        );
        assert!(mailbox_url(Some("a/../b")).ends_with("/users/a%2F..%2Fb"));
    }
}
