//! What an operator can watch: `/metrics` in the Prometheus text format after a conversation.

use std::time::Duration;

use serde_json::json;

use crate::fakes::{config, llm_text, llm_tool, Fake, Molten, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_conversation() {
    let fake = Fake::start().await;
    let molten = Molten::start(
        &config(&fake, "").replace(
            "admin_token = ",
            "metrics_token = \"scrape-only-token\"\nadmin_token = ",
        ),
        &[],
    )
    .await;
    fake.script_llm([
        llm_tool(
            "m1",
            "text_editor",
            json!({"command": "create", "path": "/tmp/a.txt", "file_text": "a"}),
        ),
        llm_text("Saved."),
    ]);
    molten.telegram(1, 5, "save a").await;
    fake.wait_for("/sendMessage", 1, Duration::from_secs(30))
        .await;
    assert_eq!(molten.get("/nope", None).await.status(), 404);
    assert_eq!(
        molten.get("/metrics", None).await.status(),
        401,
        "operators only"
    );

    // The reply is counted once the worker has recorded it.
    let mut text = String::new();
    for _ in 0..100 {
        let response = molten.get("/metrics", Some(ADMIN_TOKEN)).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        text = response.text().await.unwrap();
        // The reply goes out before its message leaves the queue.
        if text.contains("molten_replies_sent_total 1") && text.contains("molten_queue_depth 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for expected in [
        r#"molten_http_requests_total{route="/webhook/telegram",status="200"} 1"#,
        r#"molten_http_requests_total{route="other",status="404"} 1"#,
        r#"molten_http_requests_total{route="/metrics",status="401"} 1"#,
        "molten_webhooks_accepted_total 1",
        "molten_replies_sent_total 1",
        "molten_llm_request_seconds_count 2",
        r#"molten_llm_tokens_total{model="fake-model",kind="prompt"} 150"#,
        r#"molten_llm_tokens_total{model="fake-model",kind="completion"} 30"#,
        r#"molten_llm_cost_microusd_total{model="fake-model"} 120000"#,
        r#"molten_skill_calls_total{skill="text_editor",result="ok"} 1"#,
        r#"molten_skill_call_seconds_count{skill="text_editor"} 1"#,
        "molten_queue_depth 0",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    assert!(!text.contains(ADMIN_TOKEN) && !text.contains("sk-test-key"));
    // The scrape token opens /metrics and nothing else.
    let scraped = molten.get("/metrics", Some("scrape-only-token")).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .unwrap()
        .contains("molten_replies_sent_total 1"));
    assert_eq!(
        molten
            .get("/admin/status", Some("scrape-only-token"))
            .await
            .status(),
        401
    );
}

/// The Prometheus text of `/metrics`.
async fn metrics(molten: &Molten) -> String {
    let response = molten.get("/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Chat `first` asks to save a file (one `text_editor` call), then chat `second` says hi; waits
/// for both replies.
async fn two_turns(fake: &Fake, molten: &Molten, (first, second): (i64, i64)) {
    fake.script_llm([
        llm_tool(
            "c1",
            "text_editor",
            json!({"command": "create", "path": "/tmp/two.txt", "file_text": "t"}),
        ),
        llm_text("Saved."),
        llm_text("Hello."),
    ]);
    molten.telegram(1, first, "save a file").await;
    replies_to(fake, 1).await;
    molten.telegram(2, second, "hi").await;
    replies_to(fake, 2).await;
}

/// Replies sent to Telegram chat `chat`, in order.
async fn replies_to(fake: &Fake, count: usize) -> Vec<String> {
    fake.wait_for("/sendMessage", count, Duration::from_secs(30))
        .await
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_over_the_rate_limit_gets_a_polite_reply_and_the_model_is_not_called() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, "[limits]\nmessages_per_minute = 2\n"), &[]).await;
    fake.script_llm([llm_text("one"), llm_text("two")]);
    // Three messages inside one minute (not straddling its end).
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60
        > 45
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, text) in ["a", "b", "c"].iter().enumerate() {
        molten.telegram(10 + i as i64, 3, text).await;
        replies_to(&fake, i + 1).await;
    }
    let replies = replies_to(&fake, 3).await;
    assert_eq!(replies[..2], ["one", "two"]);
    assert!(
        replies[2].starts_with("You are sending messages faster than the 2 a minute allowed here."),
        "{replies:?}"
    );
    assert_eq!(
        fake.llm_requests().len(),
        2,
        "the third never reached the model"
    );
    // Another user is not limited by the first.
    fake.script_llm([llm_text("hello")]);
    molten.telegram(20, 4, "hi").await;
    assert_eq!(replies_to(&fake, 4).await[3], "hello");
    let metrics = metrics(&molten).await;
    assert!(
        metrics.contains("molten_messages_limited_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_global_daily_budget_stops_every_model_call_once_spent() {
    let fake = Fake::start().await;
    // Each text turn costs 100 * 0.5 / 1000 + 20 * 1.5 / 1000 = 0.08 USD.
    let molten = Molten::start(&config(&fake, "[limits]\nglobal_daily_usd = 0.1\n"), &[]).await;
    fake.script_llm([llm_text("first"), llm_text("second")]);
    for (i, chat) in [1, 2, 3, 4].iter().enumerate() {
        molten.telegram(30 + i as i64, *chat, "hello").await;
        replies_to(&fake, i + 1).await;
    }
    let replies = replies_to(&fake, 4).await;
    assert_eq!(replies[..2], ["first", "second"]);
    for reply in &replies[2..] {
        assert!(
            reply.starts_with(
                "This assistant has used its budget for today. It will answer again in about"
            ),
            "{replies:?}"
        );
    }
    assert_eq!(fake.llm_requests().len(), 2);
    assert!(
        molten.log().contains("global daily budget"),
        "{}",
        molten.log()
    );
}

/// `molten admin ARGS` with the config of `molten` (found in its data directory).
fn admin(molten: &Molten, args: &[&str]) -> std::process::Output {
    molten
        .cli(&["admin"])
        .args(args)
        .args(["--url", &molten.url])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn molten_admin_prints_what_the_server_says() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, "[skills.bash]\nenabled = false\n"), &[]).await;
    let out = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let status = admin(&molten, &["status"]);
    let text = out(&status);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains("queue depth 0, model fake-model")
            && text.contains("skills: calendar_create, email_send, text_editor, web_search")
            && text.contains("counters:\n  accepted: 0"),
        "{text}"
    );
    let skills = out(&admin(&molten, &["skills"]));
    assert!(
        skills.contains("text_editor")
            && skills.contains("built in")
            && skills.contains("bash                 disabled"),
        "{skills}"
    );
    assert_eq!(out(&admin(&molten, &["poison"])), "no poisoned messages\n");
    let json: serde_json::Value =
        serde_json::from_slice(&admin(&molten, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["queue_depth"], 0);

    // A server that refuses says so.
    let wrong = molten
        .cli(&["admin", "status", "--url", &molten.url])
        .env("MOLTEN_ADMIN_TOKEN", "wrong-token")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(out(&wrong).contains("401"), "{}", out(&wrong));
}

/// The tool names offered in the model request `request`.
fn offered(request: &crate::fakes::Recorded) -> Vec<String> {
    request.body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_read_usage_and_switch_a_skill_off_and_on() {
    let fake = Fake::start().await;
    let mut molten = Molten::start(&config(&fake, ""), &[]).await;
    two_turns(&fake, &molten, (7, 8)).await;

    // Usage is recorded once the turn is answered.
    let mut usage = json!({});
    for _ in 0..100 {
        usage = molten.admin("/admin/usage").await;
        if usage["total"]["messages"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let today = molten::usage::day_string(molten::usage::today());
    assert_eq!(usage["until"], today.as_str(), "{usage}");
    assert_eq!(usage["days"][0]["day"], today.as_str(), "{usage}");
    assert_eq!(usage["days"][0]["messages"], 2);
    // 150 + 100 prompt and 30 + 20 completion tokens; 0.12 + 0.08 USD.
    assert_eq!(usage["total"]["prompt_tokens"], 250);
    assert_eq!(usage["total"]["completion_tokens"], 50);
    assert!((usage["total"]["cost_usd"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    assert_eq!(
        usage["users"][0]["user"], "telegram:7",
        "the top user by cost first"
    );
    assert_eq!(usage["users"][1]["user"], "telegram:8");
    assert_eq!(usage["skills"][0]["skill"], "text_editor");
    assert_eq!(usage["skills"][0]["calls"], 1);
    assert_eq!(usage["skills"][0]["success_rate"], 1.0);
    let one = molten.admin("/admin/usage?user=telegram:8").await;
    assert_eq!(one["total"]["messages"], 1, "{one}");
    assert_eq!(one["skills"], json!([]), "{one}");
    let bad = molten
        .get("/admin/usage?since=last-week", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(bad.status(), 400);
    let error: serde_json::Value = bad.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("YYYY-MM-DD"),
        "{error}"
    );

    // The CLI says the same.
    let cli: serde_json::Value =
        serde_json::from_slice(&admin(&molten, &["usage", "--json"]).stdout).unwrap();
    assert_eq!(cli, usage);
    let text = String::from_utf8(admin(&molten, &["usage", "--since", &today]).stdout).unwrap();
    assert!(
        text.contains(&format!("usage {today} to {today}"))
            && text.contains("telegram:7")
            && text
                .lines()
                .any(|l| l.starts_with("text_editor") && l.contains("100%")),
        "{text}"
    );
    let skills = molten.admin("/admin/skills").await;
    let editor = skills["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "text_editor")
        .unwrap();
    assert_eq!(editor["last_7_days"]["calls"], 1, "{editor}");

    // Switched off: not offered, and it stays off across a restart.
    let off = molten.post_admin("/admin/skills/text_editor/disable").await;
    assert_eq!(off.status(), 200);
    assert!(!molten
        .live_skills()
        .await
        .contains(&"text_editor".to_owned()));
    fake.script_llm([llm_text("No editor.")]);
    molten.telegram(3, 7, "again").await;
    assert_eq!(replies_to(&fake, 3).await[2], "No editor.");
    let last = fake.llm_requests().last().cloned().unwrap();
    assert!(
        !offered(&last).contains(&"text_editor".to_owned()),
        "{:?}",
        offered(&last)
    );
    assert!(offered(&last).contains(&"web_search".to_owned()));
    let unknown = molten.post_admin("/admin/skills/no_such/disable").await;
    assert_eq!(unknown.status(), 404);
    // Killed only once "again" has left the queue, so the metrics below see it empty.
    molten.until_queue_empty().await;
    molten.restart().await;
    assert!(!molten
        .live_skills()
        .await
        .contains(&"text_editor".to_owned()));
    let skills = String::from_utf8(admin(&molten, &["skills"]).stdout).unwrap();
    assert!(
        skills.contains("molten admin skills enable text_editor"),
        "{skills}"
    );
    let on = admin(&molten, &["skills", "enable", "text_editor"]);
    assert!(on.status.success());
    assert_eq!(
        String::from_utf8_lossy(&on.stdout),
        "skill text_editor is enabled\n"
    );
    assert!(molten
        .live_skills()
        .await
        .contains(&"text_editor".to_owned()));

    let metrics = metrics(&molten).await;
    for expected in [
        "molten_queue_oldest_message_seconds 0.0",
        "molten_global_daily_budget_used_ratio 0.0",
        "# TYPE molten_skill_fuel_used counter",
    ] {
        assert!(metrics.contains(expected), "{expected}\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skill_calls_count_their_fuel() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &[]).await;
    two_turns(&fake, &molten, (9, 10)).await;
    let metrics = metrics(&molten).await;
    let fuel: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"molten_skill_fuel_used_total{skill="text_editor"} "#))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!(fuel > 1000, "a call burns fuel: {fuel}");
}

/// Waits until the current minute has at least 15 s left, so that a burst of messages falls in
/// one per-minute window.
async fn early_in_a_minute() {
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60
        > 45
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_azure_two_workers_share_the_limits() {
    use crate::azurite::{azurite, Names};
    let fake = Fake::start().await;
    // Each turn costs 0.08 USD: the budget is five turns.
    let settings = config(
        &fake,
        &format!(
            "{}\n[worker]\nconcurrency = 2\n[limits]\nmessages_per_minute = 3\nglobal_daily_usd = 0.4\n",
            Names::new().section(&azurite().connection_string())
        ),
    );
    let ingress = Molten::start(&settings, &["--role", "ingress"]).await;
    let _workers = [
        Molten::start(&settings, &["--role", "worker"]).await,
        Molten::start(&settings, &["--role", "worker"]).await,
    ];
    let slow = || llm_text("ok").delayed(Duration::from_millis(150));
    fake.script_llm((0..40).map(|_| slow()));

    // One user, six messages at once: the per-minute counter is exact across replicas.
    early_in_a_minute().await;
    for i in 0..6 {
        ingress.telegram(100 + i, 5, "hello").await;
    }
    let replies = replies_to(&fake, 6).await;
    let limited = replies
        .iter()
        .filter(|r| r.starts_with("You are sending messages faster than the 3 a minute"))
        .count();
    assert_eq!((limited, fake.llm_requests().len()), (3, 3), "{replies:?}");

    // Sixteen users at once against the two turns of budget left: both workers check and
    // charge the same counter, so together they overshoot by at most the turns they can have
    // in flight (2 workers x concurrency 2).
    for i in 0..16 {
        ingress.telegram(200 + i, 1000 + i, "hello").await;
    }
    let replies = replies_to(&fake, 22).await;
    let turns = fake.llm_requests().len() - 3;
    let refused = replies[6..]
        .iter()
        .filter(|r| r.starts_with("This assistant has used its budget for today."))
        .count();
    eprintln!("{turns} turns for a budget of 2 turns");
    assert_eq!(turns + refused, 16, "{replies:?}");
    assert!(
        (2..=2 + 4).contains(&turns),
        "{turns} turns past a budget of 2"
    );
}

/// Every span the fake collector got, by name: (trace id, span id, parent span id, attributes).
fn exported_spans(fake: &Fake) -> Vec<(String, serde_json::Value)> {
    let mut spans = Vec::new();
    for export in fake.requests("/v1/traces") {
        for resource in export.body["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let service = &resource["resource"]["attributes"];
            assert!(
                service
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "molten"),
                "{service}"
            );
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    spans.push((span["name"].as_str().unwrap().to_owned(), span.clone()));
                }
            }
        }
    }
    spans
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map_or(&serde_json::Value::Null, |a| &a["value"]["stringValue"])
}

#[tokio::test(flavor = "multi_thread")]
async fn each_turn_is_one_trace_from_webhook_to_reply() {
    let fake = Fake::start().await;
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nexport_delay_ms = 100\n",
        fake.url()
    );
    let molten = Molten::start(&config(&fake, &telemetry), &[]).await;
    two_turns(&fake, &molten, (3, 4)).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = exported_spans(&fake);
        if spans.iter().filter(|(n, _)| n == "reply").count() == 2 {
            break spans;
        }
        assert!(std::time::Instant::now() < deadline, "{spans:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut traces: std::collections::BTreeMap<String, Vec<&(String, serde_json::Value)>> =
        Default::default();
    for span in &spans {
        traces
            .entry(span.1["traceId"].as_str().unwrap().to_owned())
            .or_default()
            .push(span);
    }
    assert_eq!(traces.len(), 2, "one trace per turn: {traces:?}");
    for (trace, spans) in &traces {
        assert_eq!(trace.len(), 32);
        let one = |name: &str| {
            let found: Vec<_> = spans.iter().filter(|(n, _)| n == name).collect();
            assert_eq!(found.len(), 1, "{name} in {spans:?}");
            &found[0].1
        };
        let id = |span: &serde_json::Value| span["spanId"].as_str().unwrap().to_owned();
        let parent = |span: &serde_json::Value| span["parentSpanId"].as_str().unwrap().to_owned();
        let (webhook, enqueue, turn) = (one("webhook"), one("enqueue"), one("turn"));
        // The webhook is the root; the turn, run by the worker from the queue, its grandchild.
        assert_eq!(parent(webhook), "");
        assert_eq!(attribute(webhook, "route"), "/webhook/telegram");
        assert_eq!(parent(enqueue), id(webhook));
        assert_eq!(parent(turn), id(enqueue));
        assert_eq!(parent(one("reply")), id(turn));
        let rounds: Vec<_> = spans.iter().filter(|(n, _)| n == "llm").collect();
        assert!(rounds.iter().all(|(_, s)| parent(s) == id(turn)));
        assert!(rounds
            .iter()
            .all(|(_, s)| attribute(s, "model") == "fake-model"));
        let skills: Vec<_> = spans.iter().filter(|(n, _)| n == "skill").collect();
        match attribute(turn, "user").as_str().unwrap() {
            "telegram:3" => {
                assert_eq!((rounds.len(), skills.len()), (2, 1), "{spans:?}");
                assert_eq!(attribute(&skills[0].1, "skill"), "text_editor");
                assert_eq!(parent(&skills[0].1), id(turn));
            }
            "telegram:4" => assert_eq!((rounds.len(), skills.len()), (1, 0), "{spans:?}"),
            other => panic!("a turn of {other}"),
        }
    }
    let exported = serde_json::to_string(&spans).unwrap();
    for secret in crate::fakes::TEST_SECRETS {
        assert!(!exported.contains(secret), "a span holds {secret}");
    }
}
