//! `calendar_create`: Microsoft Graph `POST /me/events` (or `/users/{mailbox}/events` when the
//! operator sets a mailbox). Input is checked before any request is made.

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

use molten::skill::settings;
use molten_http::graph;
use serde::Deserialize;
use serde_json::json;

const MAX_ATTENDEES: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    subject: String,
    start: String,
    end: String,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    attendees: Vec<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// A local date and time, as Graph's `dateTime` wants it (no offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct LocalDateTime {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl LocalDateTime {
    /// `YYYY-MM-DDTHH:MM[:SS]`, with an optional trailing `Z` (reported back as UTC).
    fn parse(field: &str, text: &str) -> Result<(Self, bool), String> {
        let bad = || {
            format!("{field}: `{text}` is not an ISO 8601 date and time; write e.g. 2026-12-01T14:30:00")
        };
        let (text, utc) = match text.trim().strip_suffix('Z') {
            Some(t) => (t, true),
            None => (text.trim(), false),
        };
        let (date, time) = text.split_once('T').ok_or_else(bad)?;
        let num = |s: &str, len: usize| -> Result<u32, String> {
            if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let d: Vec<&str> = date.split('-').collect();
        let t: Vec<&str> = time
            .split('.')
            .next()
            .unwrap_or_default()
            .split(':')
            .collect();
        if d.len() != 3 || !(2..=3).contains(&t.len()) {
            return Err(bad());
        }
        let v = Self {
            year: num(d[0], 4)?,
            month: num(d[1], 2)?,
            day: num(d[2], 2)?,
            hour: num(t[0], 2)?,
            minute: num(t[1], 2)?,
            second: if t.len() == 3 { num(t[2], 2)? } else { 0 },
        };
        let leap =
            v.year.is_multiple_of(4) && (!v.year.is_multiple_of(100) || v.year.is_multiple_of(400));
        let days = match v.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(format!("{field}: month {} does not exist", v.month)),
        };
        if v.day == 0 || v.day > days || v.hour > 23 || v.minute > 59 || v.second > 59 {
            return Err(format!("{field}: `{text}` is not a valid date and time"));
        }
        Ok((v, utc))
    }

    fn to_graph(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

struct CalendarCreate;

impl Guest for CalendarCreate {
    fn describe() -> Descriptor {
        Descriptor {
            name: "calendar_create".into(),
            description: "Create a calendar event (Microsoft 365). Give local start and end \
                          times with their time zone; attendees get an invitation."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "subject": {"type": "string"},
                    "start": {"type": "string", "description": "local time, ISO 8601: 2026-12-01T14:30:00"},
                    "end": {"type": "string", "description": "local time, ISO 8601, after start"},
                    "time_zone": {"type": "string", "description": "IANA or Windows name, e.g. Europe/Paris; default UTC"},
                    "attendees": {"type": "array", "items": {"type": "string", "format": "email"}},
                    "location": {"type": "string"},
                    "body": {"type": "string", "description": "plain-text description"}
                },
                "required": ["subject", "start", "end"],
                "additionalProperties": false
            })
            .to_string(),
        }
    }

    fn invoke(arguments: String, _context: CallContext) -> Result<String, SkillError> {
        let args: Args = serde_json::from_str(&arguments)
            .map_err(|e| SkillError::InvalidInput(format!("arguments: {e}")))?;
        let event = validate(&args).map_err(SkillError::InvalidInput)?;
        let url = format!(
            "{}/events",
            graph::mailbox_url(settings::get("mailbox").as_deref())
        );
        let response = molten_http::request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            Some(event.to_string().as_bytes()),
        )
        .map_err(|e| SkillError::Failed(format!("calendar unavailable: {e}")))?;
        if response.status != 201 && response.status != 200 {
            return Err(SkillError::Failed(graph::error_message(&response)));
        }
        let created: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let mut out = format!(
            "Created \"{}\" from {} to {} ({}).",
            args.subject.trim(),
            event["start"]["dateTime"].as_str().unwrap_or_default(),
            event["end"]["dateTime"].as_str().unwrap_or_default(),
            event["start"]["timeZone"].as_str().unwrap_or_default()
        );
        if !args.attendees.is_empty() {
            out.push_str(&format!(" Invited: {}.", args.attendees.join(", ")));
        }
        if let Some(link) = created["webLink"].as_str() {
            out.push_str(&format!(" Link: {link}"));
        }
        Ok(out)
    }
}

/// The Graph event, or what is wrong with the input.
fn validate(args: &Args) -> Result<serde_json::Value, String> {
    let subject = args.subject.trim();
    if subject.is_empty() {
        return Err("subject must not be empty".into());
    }
    let (start, start_utc) = LocalDateTime::parse("start", &args.start)?;
    let (end, end_utc) = LocalDateTime::parse("end", &args.end)?;
    if start_utc != end_utc {
        return Err("start and end must both be local times, or both end in Z".into());
    }
    if end <= start {
        return Err(format!(
            "end ({}) must be after start ({})",
            args.end, args.start
        ));
    }
    let zone = match (&args.time_zone, start_utc) {
        (Some(z), false) if !z.trim().is_empty() => z.trim().to_owned(),
        (Some(z), true) if !z.trim().is_empty() && z.trim() != "UTC" => {
            return Err("times ending in Z are UTC; drop the Z or the time_zone".into())
        }
        _ => "UTC".to_owned(),
    };
    if args.attendees.len() > MAX_ATTENDEES {
        return Err(format!("at most {MAX_ATTENDEES} attendees"));
    }
    if let Some(bad) = args.attendees.iter().find(|a| !graph::is_email(a.trim())) {
        return Err(format!("attendee `{bad}` is not an e-mail address"));
    }
    let mut event = json!({
        "subject": subject,
        "start": {"dateTime": start.to_graph(), "timeZone": zone},
        "end": {"dateTime": end.to_graph(), "timeZone": zone},
        "attendees": args.attendees.iter().map(|a| json!({
            "emailAddress": {"address": a.trim()}, "type": "required"
        })).collect::<Vec<_>>(),
    });
    if let Some(location) = args.location.as_deref().filter(|l| !l.trim().is_empty()) {
        event["location"] = json!({"displayName": location.trim()});
    }
    if let Some(body) = args.body.as_deref().filter(|b| !b.trim().is_empty()) {
        event["body"] = json!({"contentType": "text", "content": body});
    }
    Ok(event)
}

export!(CalendarCreate);
