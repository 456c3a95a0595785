//! `calendar_create` and `email_send` end to end: the real components, the host's HTTP
//! capability with the Graph token injected, a loopback server speaking Graph's request and
//! response shapes (errors included), through `molten skill run` and the LLM loop.

use std::time::Duration;

use serde_json::json;

use crate::fakes::*;
use crate::support::skill_run;

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.graph-test-token.signature";

/// Grants both skills Graph and sends graph.microsoft.com to the fake; `settings` is TOML.
fn grant(fake: &Fake, settings: &str) -> String {
    let mut out = String::new();
    for skill in ["calendar_create", "email_send"] {
        out.push_str(&format!(
            "\n[skills.{skill}]\nhttp = [\"https://graph.microsoft.com/v1.0\"]\n\
             endpoints = {{ \"https://graph.microsoft.com\" = \"{}\" }}\nsettings = {{ {settings} }}\n",
            fake.url()
        ));
    }
    out
}

async fn run(config: &str, skill: &'static str, args: serde_json::Value) -> (bool, String, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        skill_run(
            &config,
            skill,
            &args.to_string(),
            &[("MOLTEN_SECRET_GRAPH_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_create_posts_a_graph_event() {
    let fake = Fake::start().await;
    let config = grant(&fake, "");
    let (ok, out, err) = run(
        &config,
        "calendar_create",
        json!({"subject": "Design review", "start": "2026-12-01T14:30", "end": "2026-12-01T15:30:00",
               "time_zone": "Europe/Paris", "attendees": ["ada@contoso.com"], "location": "Room 4",
               "body": "Agenda: the HTTP capability"}),
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.starts_with("Created \"Design review\" from 2026-12-01T14:30:00 to 2026-12-01T15:30:00 (Europe/Paris). Invited: ada@contoso.com. Link: https://outlook"), "{out}");
    let sent = fake.requests("/events");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1.0/me/events");
    assert_eq!(sent[0].headers["authorization"], format!("Bearer {TOKEN}"));
    let event = &sent[0].body;
    assert_eq!(
        event["start"],
        json!({"dateTime": "2026-12-01T14:30:00", "timeZone": "Europe/Paris"})
    );
    assert_eq!(
        event["attendees"][0],
        json!({"emailAddress": {"address": "ada@contoso.com"}, "type": "required"})
    );
    assert_eq!(event["location"]["displayName"], "Room 4");
    assert_eq!(
        event["body"],
        json!({"contentType": "text", "content": "Agenda: the HTTP capability"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_input_is_checked_before_any_request() {
    let fake = Fake::start().await;
    let config = grant(&fake, "");
    for (args, expected) in [
        (
            json!({"subject": "x", "start": "2026-12-01T15:00", "end": "2026-12-01T14:00"}),
            "must be after start",
        ),
        (
            json!({"subject": "x", "start": "2026-02-30T10:00", "end": "2026-03-01T10:00"}),
            "not a valid date",
        ),
        (
            json!({"subject": "x", "start": "tomorrow at 3", "end": "2026-03-01T10:00"}),
            "ISO 8601",
        ),
        (
            json!({"subject": "x", "start": "2026-12-01T10:00", "end": "2026-12-01T11:00", "attendees": ["bob"]}),
            "not an e-mail",
        ),
        (
            json!({"subject": " ", "start": "2026-12-01T10:00", "end": "2026-12-01T11:00"}),
            "subject",
        ),
    ] {
        let (ok, _, err) = run(&config, "calendar_create", args.clone()).await;
        assert!(
            !ok && err.contains("invalid input") && err.contains(expected),
            "{args}: {err}"
        );
    }
    assert!(fake.requests("/v1.0/").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_errors_are_readable_and_the_mailbox_setting_is_used() {
    let fake = Fake::start().await;
    let config = grant(&fake, "mailbox = \"ada@contoso.com\"");
    fake.script_api([
        graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        graph_error(429, "TooManyRequests", "Too many requests.").header("retry-after", "10"),
        graph_error(
            400,
            "ErrorInvalidParameter",
            "The value of timeZone is invalid.",
        ),
    ]);
    let args = json!({"subject": "x", "start": "2026-12-01T10:00", "end": "2026-12-01T11:00", "time_zone": "Mars/Olympus"});
    let (_, _, err) = run(&config, "calendar_create", args.clone()).await;
    assert!(
        err.contains("refused the token") && err.contains("InvalidAuthenticationToken"),
        "{err}"
    );
    let (_, _, err) = run(&config, "calendar_create", args.clone()).await;
    assert!(err.contains("throttling"), "{err}");
    let (_, _, err) = run(&config, "calendar_create", args).await;
    assert!(err.contains("timeZone is invalid"), "{err}");
    let paths: Vec<String> = fake
        .requests("/v1.0/")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        paths
            .iter()
            .all(|p| p == "/v1.0/users/ada@contoso.com/events"),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn email_send_checks_recipients_and_sends() {
    let fake = Fake::start().await;
    let config = grant(&fake, "max_recipients = 2");
    let (ok, out, err) = run(
        &config,
        "email_send",
        json!({"to": ["ada@contoso.com"], "cc": ["bob@contoso.com"], "subject": "Hello", "body": "<b>Hi</b>", "html": true}),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "Sent \"Hello\" to ada@contoso.com (cc bob@contoso.com)."
    );
    let sent = fake.requests("/sendMail");
    assert_eq!(sent[0].path, "/v1.0/me/sendMail");
    assert_eq!(sent[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        sent[0].body["message"]["body"],
        json!({"contentType": "HTML", "content": "<b>Hi</b>"})
    );
    assert_eq!(
        sent[0].body["message"]["toRecipients"],
        json!([{"emailAddress": {"address": "ada@contoso.com"}}])
    );
    assert_eq!(sent[0].body["saveToSentItems"], true);

    for (args, expected) in [
        (
            json!({"to": ["a@x.io", "b@x.io", "c@x.io"], "subject": "s", "body": "b"}),
            "at most 2",
        ),
        (
            json!({"to": ["not-an-address"], "subject": "s", "body": "b"}),
            "not an e-mail",
        ),
        (
            json!({"to": [], "subject": "s", "body": "b"}),
            "at '/to': minimum 1 items required",
        ),
        (
            json!({"to": ["a@x.io"], "subject": "s", "body": " "}),
            "body",
        ),
    ] {
        let (ok, _, err) = run(&config, "email_send", args.clone()).await;
        assert!(!ok && err.contains(expected), "{args}: {err}");
    }
    assert_eq!(
        fake.requests("/sendMail").len(),
        1,
        "refused input sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_sends_an_email_and_books_the_lunch() {
    let fake = Fake::start().await;
    let mut config = config(&fake, &grant(&fake, ""));
    config.push_str(&format!("\n[secrets]\n\"graph-token\" = \"{TOKEN}\"\n"));
    let molten = Molten::start(&config, &[]).await;
    fake.script_llm([
        llm_tool(
            "m1",
            "email_send",
            json!({"to": ["ada@contoso.com"], "subject": "Lunch", "body": "12:30?"}),
        ),
        llm_text("Done: I e-mailed Ada."),
    ]);
    molten
        .telegram(1, 8, "email ada@contoso.com: lunch at 12:30?")
        .await;
    let sent = fake
        .wait_for("/sendMessage", 1, Duration::from_secs(30))
        .await;
    assert_eq!(sent[0].body["text"], "Done: I e-mailed Ada.");
    assert_eq!(
        fake.requests("/sendMail")[0].headers["authorization"],
        format!("Bearer {TOKEN}")
    );
    let result = fake.llm_requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(result["content"], "Sent \"Lunch\" to ada@contoso.com.");
    assert!(!result.to_string().contains("graph-test-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graph_token_comes_from_client_credentials() {
    let fake = Fake::start().await;
    let mut config = grant(&fake, "mailbox = \"ada@contoso.com\"");
    config.push_str(&format!(
        "\n[graph]\ntenant_id = \"tenant-1\"\nclient_id = \"app-1\"\nauthority = \"{}\"\n",
        fake.url()
    ));
    let args = json!({"to": ["bob@contoso.com"], "subject": "Hi", "body": "from the app"});
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        skill_run(
            &config,
            "email_send",
            &args.to_string(),
            &[("MOLTEN_GRAPH_CLIENT_SECRET", "client-secret-value-123")],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.starts_with("Sent \"Hi\""), "{out}");
    let token = fake.requests("/oauth2/v2.0/token");
    assert_eq!(token[0].path, "/tenant-1/oauth2/v2.0/token");
    let form = &token[0].raw;
    for part in [
        "grant_type=client_credentials",
        "client_id=app-1",
        "client_secret=client-secret-value-123",
        "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
    ] {
        assert!(form.contains(part), "{form}");
    }
    let mail = fake.requests("/sendMail");
    assert_eq!(mail[0].path, "/v1.0/users/ada@contoso.com/sendMail");
    assert_eq!(
        mail[0].headers["authorization"],
        "Bearer eyJ0eXAiOiJKV1QifQ.client-credentials-token.c2ln"
    );
}
