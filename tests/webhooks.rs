//! Ingress through the real `molten serve --role ingress` (nothing consumes the queue, so what
//! was queued can be counted): signatures, handshakes, bad input, dedupe, health and admin.

use serde_json::{json, Value};

use crate::fakes::*;

async fn ingress() -> (Fake, Molten) {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &["--role", "ingress"]).await;
    (fake, molten)
}

fn json_headers() -> Vec<(&'static str, String)> {
    vec![("content-type", "application/json".into())]
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_checks_the_secret_and_the_body() {
    let (_fake, molten) = ingress().await;
    let body = telegram_update(1, 42, "hi").to_string();

    let missing = molten
        .post("/webhook/telegram", &json_headers(), body.clone())
        .await;
    assert_eq!(missing.status(), 401);
    let text = missing.text().await.unwrap();
    assert!(text.contains("X-Telegram-Bot-Api-Secret-Token"), "{text}");

    let mut wrong = json_headers();
    wrong.push(("x-telegram-bot-api-secret-token", "guess".into()));
    assert_eq!(
        molten
            .post("/webhook/telegram", &wrong, body.clone())
            .await
            .status(),
        401
    );

    let mut good = json_headers();
    good.push(("x-telegram-bot-api-secret-token", TELEGRAM_SECRET.into()));
    let malformed = molten
        .post("/webhook/telegram", &good, "{\"update_id\": ")
        .await;
    assert_eq!(malformed.status(), 400);
    assert!(malformed.text().await.unwrap().contains("malformed"));
    let not_an_update = molten.post("/webhook/telegram", &good, "[1,2]").await;
    assert_eq!(not_an_update.status(), 400);

    let huge = format!("{{\"update_id\":1,\"pad\":\"{}\"}}", "x".repeat(70_000));
    assert_eq!(
        molten.post("/webhook/telegram", &good, huge).await.status(),
        413
    );

    // A sticker (no text) and an edited message: 200 so Telegram stops resending, not queued.
    let sticker = json!({"update_id": 5, "message": {"message_id": 9, "date": 0,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "A"},
        "sticker": {"file_id": "x"}}});
    assert_eq!(
        molten
            .post("/webhook/telegram", &good, sticker.to_string())
            .await
            .status(),
        200
    );
    let edit = json!({"update_id": 6, "edited_message": {"message_id": 9, "date": 0,
        "chat": {"id": 42, "type": "private"}, "text": "changed"}});
    assert_eq!(
        molten
            .post("/webhook/telegram", &good, edit.to_string())
            .await
            .status(),
        200
    );
    assert_eq!(
        molten.queue_depth(),
        0,
        "nothing refused or ignored is queued"
    );

    assert_eq!(molten.telegram(1, 42, "hi").await.status(), 200);
    assert_eq!(
        molten.telegram(1, 42, "hi").await.status(),
        200,
        "a resend is acknowledged"
    );
    assert_eq!(molten.queue_depth(), 1, "the resend is not queued twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_verifies_before_anything_else() {
    let (_fake, molten) = ingress().await;
    let challenge =
        json!({"type": "url_verification", "token": "x", "challenge": "c-123"}).to_string();

    let forged = molten
        .post(
            "/webhook/slack",
            &slack_headers(&challenge.replace("c-123", "c-999"), now_secs()),
            challenge.clone(),
        )
        .await;
    assert_eq!(
        forged.status(),
        401,
        "even url_verification needs a valid signature"
    );

    let stale = molten
        .post(
            "/webhook/slack",
            &slack_headers(&challenge, now_secs() - 600),
            challenge.clone(),
        )
        .await;
    assert_eq!(stale.status(), 401);
    assert!(stale.text().await.unwrap().contains("timestamp"));

    let ok = molten
        .post(
            "/webhook/slack",
            &slack_headers(&challenge, now_secs()),
            challenge.clone(),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({"challenge": "c-123"})
    );

    let huge = format!(
        "{{\"type\":\"event_callback\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let r = molten
        .post(
            "/webhook/slack",
            &slack_headers(&huge, now_secs()),
            huge.clone(),
        )
        .await;
    assert_eq!(r.status(), 413);

    let malformed = "{\"type\": \"event_callback\", ";
    let bad = molten
        .post(
            "/webhook/slack",
            &slack_headers(malformed, now_secs()),
            malformed,
        )
        .await;
    assert_eq!(bad.status(), 400);

    let event = |event_id: &str, event: Value| {
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1",
               "event_id": event_id, "event_time": 1, "event": event})
        .to_string()
    };
    let bot = event(
        "Ev0",
        json!({"type": "message", "bot_id": "B1", "text": "echo",
        "channel": "C1", "ts": "1.0", "user": "U0"}),
    );
    let edit = event(
        "Ev1",
        json!({"type": "message", "subtype": "message_changed",
        "channel": "C1", "ts": "1.1"}),
    );
    for body in [bot, edit] {
        let r = molten
            .post(
                "/webhook/slack",
                &slack_headers(&body, now_secs()),
                body.clone(),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(molten.queue_depth(), 0);

    // The same message as `message` and as `app_mention`, and Slack's retry of one of them.
    let message = event(
        "Ev2",
        json!({"type": "message", "user": "U1", "text": "<@U0BOT> hello",
        "channel": "C1", "ts": "2.0", "channel_type": "channel"}),
    );
    let mention = event(
        "Ev3",
        json!({"type": "app_mention", "user": "U1", "text": "<@U0BOT> hello",
        "channel": "C1", "ts": "2.0"}),
    );
    for body in [&message, &mention, &message] {
        let r = molten
            .post(
                "/webhook/slack",
                &slack_headers(body, now_secs()),
                body.clone(),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(molten.queue_depth(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_pong_and_deferred_commands() {
    let (_fake, molten) = ingress().await;
    let ping = json!({"type": 1, "id": "1", "application_id": "app", "token": "t", "version": 1})
        .to_string();

    let unsigned = molten
        .post("/webhook/discord", &json_headers(), ping.clone())
        .await;
    assert_eq!(unsigned.status(), 401);
    let mut forged = discord_headers(&ping);
    forged[1].1 = "00".repeat(64);
    assert_eq!(
        molten
            .post("/webhook/discord", &forged, ping.clone())
            .await
            .status(),
        401
    );

    let pong = molten
        .post("/webhook/discord", &discord_headers(&ping), ping.clone())
        .await;
    assert_eq!(pong.status(), 200);
    assert_eq!(pong.json::<Value>().await.unwrap(), json!({"type": 1}));

    let huge = format!("{{\"type\":2,\"pad\":\"{}\"}}", "x".repeat(70_000));
    let r = molten
        .post("/webhook/discord", &discord_headers(&huge), huge.clone())
        .await;
    assert_eq!(r.status(), 413);

    let malformed = "{\"type\": 2,";
    let r = molten
        .post("/webhook/discord", &discord_headers(malformed), malformed)
        .await;
    assert_eq!(r.status(), 400);

    let command = json!({"type": 2, "id": "9001", "application_id": "app", "token": "tok",
        "channel_id": "chan", "member": {"user": {"id": "u1", "username": "ada"}},
        "data": {"id": "c", "name": "ask", "type": 1,
                 "options": [{"name": "prompt", "type": 3, "value": "what is 2+2?"}]}})
    .to_string();
    let deferred = molten
        .post(
            "/webhook/discord",
            &discord_headers(&command),
            command.clone(),
        )
        .await;
    assert_eq!(deferred.status(), 200);
    assert_eq!(deferred.json::<Value>().await.unwrap(), json!({"type": 5}));
    assert_eq!(molten.queue_depth(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_and_admin() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &["--role", "ingress"]).await;
    assert_eq!(molten.get("/healthz", None).await.status(), 200);
    let ready = molten.get("/ready", None).await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["ready"], true);

    assert_eq!(molten.get("/admin/status", None).await.status(), 401);
    assert_eq!(
        molten.get("/admin/status", Some("wrong")).await.status(),
        401
    );
    molten.telegram(7, 1, "queued").await;
    let status = molten.admin("/admin/status").await;
    assert_eq!(status["queue_depth"], 1, "{status}");
    assert_eq!(status["counters"]["accepted"], 1, "{status}");
    assert_eq!(
        status["skills"],
        json!([
            "bash",
            "calendar_create",
            "email_send",
            "text_editor",
            "web_search"
        ]),
        "{status}"
    );
    assert!(!status.to_string().contains(ADMIN_TOKEN));

    // Without an LLM: ready says what is missing.
    let unconfigured = config(&fake, "").replace("base_url = ", "# base_url = ");
    let bare = Molten::start(&unconfigured, &["--role", "ingress"]).await;
    let ready = bare.get("/ready", None).await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["checks"]["llm"]
            .as_str()
            .unwrap()
            .contains("MOLTEN_LLM_BASE_URL"),
        "{body}"
    );
}

#[test]
fn a_bad_config_names_the_key_and_exits() {
    let dir = crate::support::temp_dir();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[worker]\nconcurrency = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_molten"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("worker.concurrency: must be more than 0"),
        "{stderr}"
    );
}

/// Skills hold host descriptors: molten lifts its soft open-files limit to the hard one, so
/// that they cannot crowd out the sockets of other users' webhooks.
#[tokio::test]
async fn the_open_files_limit_is_raised_at_start() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let fake = Fake::start().await;
    // Start it with the common soft limit of 1,024 (molten inherits this process's limits).
    let ours = getrlimit(Resource::Nofile);
    let low = Rlimit {
        current: Some(1024.min(ours.maximum.unwrap_or(u64::MAX))),
        ..ours
    };
    setrlimit(Resource::Nofile, low).unwrap();
    let molten = Molten::start(&config(&fake, ""), &["--role", "ingress"]).await;
    setrlimit(Resource::Nofile, ours).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", molten.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files  <soft>  <hard>  files"
    assert_eq!(fields[3], fields[4], "{line}");
}
