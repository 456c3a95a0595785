//! `email_send`: Microsoft Graph `POST /me/sendMail` (or `/users/{mailbox}/sendMail` when the
//! operator sets a mailbox). Addresses are checked and the recipient count capped (operator
//! setting `max_recipients`, default 10) before any request is made.

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

use molten::skill::settings;
use molten_http::graph;
use serde::Deserialize;
use serde_json::json;

const DEFAULT_MAX_RECIPIENTS: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    subject: String,
    body: String,
    #[serde(default)]
    html: bool,
}

struct EmailSend;

impl Guest for EmailSend {
    fn describe() -> Descriptor {
        Descriptor {
            name: "email_send".into(),
            description: "Send an e-mail (Microsoft 365). Only send what the user asked to send, \
                          to the addresses they gave."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1},
                    "cc": {"type": "array", "items": {"type": "string", "format": "email"}},
                    "subject": {"type": "string"},
                    "body": {"type": "string"},
                    "html": {"type": "boolean", "description": "body is HTML; default plain text"}
                },
                "required": ["to", "subject", "body"],
                "additionalProperties": false
            })
            .to_string(),
        }
    }

    fn invoke(arguments: String, _context: CallContext) -> Result<String, SkillError> {
        let args: Args = serde_json::from_str(&arguments)
            .map_err(|e| SkillError::InvalidInput(format!("arguments: {e}")))?;
        let max = settings::get("max_recipients")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_RECIPIENTS);
        let message = validate(&args, max).map_err(SkillError::InvalidInput)?;
        let url = format!(
            "{}/sendMail",
            graph::mailbox_url(settings::get("mailbox").as_deref())
        );
        let response = molten_http::request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            Some(message.to_string().as_bytes()),
        )
        .map_err(|e| SkillError::Failed(format!("mail unavailable: {e}")))?;
        if response.status != 202 && response.status != 200 {
            return Err(SkillError::Failed(graph::error_message(&response)));
        }
        let mut out = format!("Sent \"{}\" to {}", args.subject.trim(), args.to.join(", "));
        if !args.cc.is_empty() {
            out.push_str(&format!(" (cc {})", args.cc.join(", ")));
        }
        out.push('.');
        Ok(out)
    }
}

/// The Graph `sendMail` body, or what is wrong with the input.
fn validate(args: &Args, max_recipients: usize) -> Result<serde_json::Value, String> {
    if args.to.is_empty() {
        return Err("to must name at least one recipient".into());
    }
    let count = args.to.len() + args.cc.len();
    if count > max_recipients {
        return Err(format!(
            "{count} recipients; at most {max_recipients} are allowed per message"
        ));
    }
    if let Some(bad) = args
        .to
        .iter()
        .chain(&args.cc)
        .find(|a| !graph::is_email(a.trim()))
    {
        return Err(format!("`{bad}` is not an e-mail address"));
    }
    if args.subject.trim().is_empty() {
        return Err("subject must not be empty".into());
    }
    if args.body.trim().is_empty() {
        return Err("body must not be empty".into());
    }
    let recipients = |list: &[String]| {
        list.iter()
            .map(|a| json!({"emailAddress": {"address": a.trim()}}))
            .collect::<Vec<_>>()
    };
    Ok(json!({
        "message": {
            "subject": args.subject.trim(),
            "body": {"contentType": if args.html { "HTML" } else { "Text" }, "content": args.body},
            "toRecipients": recipients(&args.to),
            "ccRecipients": recipients(&args.cc),
        },
        "saveToSentItems": true
    }))
}

export!(EmailSend);
