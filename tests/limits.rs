//! Limits, shown with the probe fixture (built like any skill): each runaway is stopped with a
//! clear error, and the host serves the next call normally.

use std::sync::Arc;

use molten::skills::{CallContext, InvokeError};
use serde_json::json;

use crate::support::Host;

/// The probe's own manifest limits: fuel 1e8, 20 s, 16 MiB, 64 KiB of output. The deadline is
/// far from what the fuel lasts, so that a loaded machine still runs out of fuel first.
const PROBE_LIMITS: &str =
    "[limits]\nfuel = 100_000_000\ntimeout_ms = 20_000\nmemory_mb = 16\noutput_kb = 64";

async fn still_serves(host: &Host) {
    let out = host
        .call("probe", "alice", json!({"mode": "echo"}))
        .await
        .unwrap();
    assert_eq!(out, r#"{"mode":"echo"}"#);
}

#[tokio::test]
async fn an_endless_loop_runs_out_of_fuel() {
    let host = Host::probe(PROBE_LIMITS).await;
    let err = host
        .call("probe", "alice", json!({"mode": "spin"}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        InvokeError::OutOfFuel {
            skill: "probe".into(),
            fuel: 100_000_000
        }
    );
    assert!(err.to_string().contains("raise limits.fuel"), "{err}");
    still_serves(&host).await;
}

#[tokio::test]
async fn an_endless_loop_hits_the_deadline_when_fuel_is_plentiful() {
    let host = Host::probe("[limits]\nfuel = 18_000_000_000_000_000_000\ntimeout_ms = 300").await;
    let err = host
        .call("probe", "alice", json!({"mode": "spin"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::Timeout { ref skill, timeout } if skill == "probe" && timeout.as_millis() == 300),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ran past its deadline of 300 ms"),
        "{err}"
    );
    still_serves(&host).await;
}

#[tokio::test]
async fn a_skill_blocked_in_a_host_call_hits_the_deadline() {
    let host = Host::probe("[limits]\ntimeout_ms = 300").await;
    let err = host
        .call("probe", "alice", json!({"mode": "sleep", "n": 600_000}))
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err:?}");
    still_serves(&host).await;
}

#[tokio::test]
async fn endless_allocation_hits_the_memory_cap() {
    let host = Host::probe(PROBE_LIMITS).await;
    let err = host
        .call("probe", "alice", json!({"mode": "alloc"}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        InvokeError::MemoryLimit {
            skill: "probe".into(),
            limit_bytes: 16 << 20
        }
    );
    assert!(err.to_string().contains("memory limit of 16 MiB"), "{err}");
    still_serves(&host).await;
}

#[tokio::test]
async fn megabytes_of_output_are_truncated_with_a_marker() {
    let host = Host::probe(PROBE_LIMITS).await;
    let out = host
        .call("probe", "alice", json!({"mode": "flood", "n": 4}))
        .await
        .unwrap();
    let marker = "\n[output truncated: 65536 of 4194304 bytes shown]";
    assert!(
        out.ends_with(marker),
        "{}",
        &out[out.len().saturating_sub(80)..]
    );
    assert_eq!(out.len(), 65536 + marker.len());
    // Error messages are capped the same way.
    match host
        .call("probe", "alice", json!({"mode": "fail", "n": 2}))
        .await
        .unwrap_err()
    {
        InvokeError::Failed(m) => {
            assert!(m.ends_with("\n[output truncated: 65536 of 2097152 bytes shown]"))
        }
        other => panic!("{other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let host = Host::probe(PROBE_LIMITS).await;
    match host
        .call("probe", "alice", json!({"mode": "panic"}))
        .await
        .unwrap_err()
    {
        InvokeError::Crashed { skill, detail } => {
            assert_eq!(skill, "probe");
            assert!(detail.contains("probe was asked to panic"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_not_a_host_crash() {
    let host = Host::probe("[limits]\nmemory_mb = 256").await;
    match host
        .call(
            "probe",
            "alice",
            json!({"mode": "recurse", "n": 100_000_000}),
        )
        .await
        .unwrap_err()
    {
        InvokeError::Crashed { detail, .. } => assert!(
            detail.contains("stack overflow") || detail.contains("stack overflowing"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn log_floods_are_capped_and_harmless() {
    let host = Host::probe(PROBE_LIMITS).await;
    let out = host
        .call("probe", "alice", json!({"mode": "log", "n": 10_000}))
        .await
        .unwrap();
    assert_eq!(out, "logged");
}

#[tokio::test]
async fn the_call_context_reaches_the_skill() {
    let host = Host::probe(PROBE_LIMITS).await;
    let out = host
        .registry
        .invoke(
            "probe",
            r#"{"mode":"whoami"}"#,
            &CallContext::new("telegram:42", "chat-7"),
        )
        .await
        .unwrap();
    assert_eq!(out, "telegram:42 chat-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_calls_than_instance_slots_all_complete() {
    let host = Arc::new(Host::probe(PROBE_LIMITS).await);
    let calls = (0..100).map(|i| {
        let host = host.clone();
        tokio::spawn(async move {
            let mode = if i % 10 == 0 { "spin" } else { "echo" };
            (
                mode,
                host.call("probe", &format!("user{i}"), json!({"mode": mode}))
                    .await,
            )
        })
    });
    let mut finished = 0;
    for call in calls.collect::<Vec<_>>() {
        let (mode, result) = call.await.unwrap();
        match mode {
            "spin" => assert!(
                matches!(result, Err(InvokeError::OutOfFuel { .. })),
                "{result:?}"
            ),
            _ => assert_eq!(result.unwrap(), r#"{"mode":"echo"}"#),
        }
        finished += 1;
    }
    assert_eq!(finished, 100);
}

#[tokio::test]
async fn an_unknown_skill_is_named() {
    let host = Host::probe(PROBE_LIMITS).await;
    let err = host.call("nope", "alice", json!({})).await.unwrap_err();
    assert_eq!(err, InvokeError::UnknownSkill("nope".into()));
    assert!(err.to_string().contains("molten skill list"));
}

/// Descriptor hoarding: one call opened the same file ~20,000 times and held the process's
/// whole descriptor limit. A call now holds at most 100 open resources; past that its opens
/// fail, the call goes on, and everything is closed when it ends.
#[tokio::test]
async fn descriptor_hoarding_is_capped_per_call() {
    let host =
        Host::probe("[limits]\nmemory_mb = 64\n[capabilities]\nfilesystem = \"sandbox\"").await;
    host.call("probe", "alice", json!({"mode": "write", "path": "/tmp/f"}))
        .await
        .unwrap();
    let open_before = std::fs::read_dir("/proc/self/fd").unwrap().count();
    for _ in 0..2 {
        let out = host
            .call(
                "probe",
                "alice",
                json!({"mode": "hoard", "path": "/tmp/f", "n": 20_000}),
            )
            .await
            .unwrap();
        let opened: usize = out
            .strip_prefix("opened ")
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            (90..100).contains(&opened) && out.contains("then:"),
            "{out}"
        );
    }
    let open_after = std::fs::read_dir("/proc/self/fd").unwrap().count();
    assert!(
        open_after < open_before + 16,
        "the descriptors went with the calls: {open_before} -> {open_after}"
    );
    still_serves(&host).await;
}

/// Aggregate memory: each call was capped, but 32 concurrent memory bombs took `molten serve`
/// to 6.5 GiB. All running skills now share one budget ([runtime] max_total_memory_mb): a call
/// that would take more fails with a clear message, and the host never holds more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_memory_all_running_skills_share_one_budget() {
    let budget: u64 = 48 << 20;
    let host = Host::probe_with("[limits]\nmemory_mb = 40\ntimeout_ms = 20000", budget).await;
    let bombs = (0..6).map(|_| host.call("probe", "alice", json!({"mode": "alloc"})));
    for result in futures::future::join_all(bombs).await {
        assert!(
            matches!(
                result,
                Err(InvokeError::MemoryLimit { .. } | InvokeError::HostMemory { .. })
            ),
            "{result:?}"
        );
    }
    let memory = host.registry.runtime().memory();
    assert!(memory.peak() <= budget, "peak {} > {budget}", memory.peak());
    assert_eq!(memory.in_use(), 0, "every call gave its memory back");

    // One call that may grow past what the host has left is told why it stopped.
    let small = Host::probe_with("[limits]\nmemory_mb = 64", 16 << 20).await;
    let err = small
        .call("probe", "alice", json!({"mode": "alloc"}))
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::HostMemory { .. }), "{err:?}");
    assert!(err.to_string().contains("memory budget of 16 MiB"), "{err}");
    still_serves(&small).await;
}
