//! What an operator can watch: `/metrics` in the Prometheus text format after a conversation.

use std::time::Duration;

use serde_json::json;

use crate::fakes::{config, llm_text, llm_tool, Fake, Molten, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_conversation() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &[]).await;
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
        if text.contains("molten_replies_sent_total 1") {
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
}
