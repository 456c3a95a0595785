//! Confinement by capability: a skill reaches its user's sandbox and nothing else. The skills do
//! no path checks of their own, so every refusal here comes from the WASI sandbox.

use std::os::unix::fs::symlink;

use molten::skills::InvokeError;
use serde_json::json;

use crate::support::Host;

fn denied(e: InvokeError) -> String {
    match e {
        InvokeError::Denied(m) => m,
        other => panic!("expected a sandbox denial, got {other:?}"),
    }
}

/// A file next to the sandboxes, on the host, that no skill may touch.
fn plant_host_file(host: &Host) -> std::path::PathBuf {
    let secret = host.dir.path().join("host-secret.txt");
    std::fs::write(&secret, "host only").unwrap();
    secret
}

#[tokio::test]
async fn host_paths_are_refused_by_the_sandbox() {
    let host = Host::builtin().await;
    let secret = plant_host_file(&host);
    for path in [
        "/etc/passwd",
        "/tmp/../etc/passwd",
        "/tmp/../../../../../../etc/passwd",
        "/tmp/../host-secret.txt",
        "/tmp/../../host-secret.txt",
        "/",
        "/proc/self/environ",
    ] {
        let m = denied(
            host.edit_err("alice", json!({"command": "view", "path": path}))
                .await,
        );
        assert!(m.contains("the sandbox does not allow it"), "{path}: {m}");
        assert!(!m.contains("root:"), "{path}: leaked {m}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host only");
}

#[tokio::test]
async fn writes_outside_the_sandbox_fail_and_change_nothing() {
    let host = Host::builtin().await;
    let secret = plant_host_file(&host);
    let attempts = [
        json!({"command": "create", "path": "/tmp/../host-secret.txt", "file_text": "pwned"}),
        json!({"command": "create", "path": "/tmp/../../host-secret.txt", "file_text": "pwned"}),
        json!({"command": "create", "path": "/tmp/../escaped.txt", "file_text": "pwned"}),
        json!({"command": "create", "path": "/etc/molten-pwned", "file_text": "pwned"}),
        json!({"command": "str_replace", "path": "/tmp/../../host-secret.txt", "old_str": "host", "new_str": "pwned"}),
        json!({"command": "insert", "path": "/tmp/../../host-secret.txt", "insert_line": 0, "new_str": "pwned"}),
    ];
    for args in attempts {
        let err = host.edit_err("alice", args.clone()).await;
        assert!(matches!(err, InvokeError::Denied(_)), "{args}: {err:?}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host only");
    assert!(!host.dir.path().join("sandboxes/escaped.txt").exists());
    assert!(!std::path::Path::new("/etc/molten-pwned").exists());
}

#[tokio::test]
async fn a_host_absolute_path_never_reaches_the_host_file() {
    let host = Host::builtin().await;
    let secret = plant_host_file(&host);
    let path = secret.to_str().unwrap();
    let view = host
        .call(
            "text_editor",
            "alice",
            json!({"command": "view", "path": path}),
        )
        .await;
    let create = host
        .call(
            "text_editor",
            "alice",
            json!({"command": "create", "path": path, "file_text": "pwned"}),
        )
        .await;
    match path.strip_prefix("/tmp/") {
        // The checkout lives under the host's /tmp: inside the skill, /tmp is the sandbox, so
        // the same string names a file in the sandbox, never the host's.
        Some(rest) => {
            let not_there =
                matches!(&view, Err(InvokeError::InvalidInput(m)) if m.contains("does not exist"));
            assert!(not_there, "{view:?}");
            assert!(create.is_ok(), "{create:?}");
            let inside = host.sandbox("alice").join(rest);
            assert_eq!(std::fs::read_to_string(inside).unwrap(), "pwned");
        }
        None => {
            assert!(matches!(view, Err(InvokeError::Denied(_))), "{view:?}");
            assert!(matches!(create, Err(InvokeError::Denied(_))), "{create:?}");
        }
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host only");
}

#[tokio::test]
async fn symlinks_cannot_lead_out_of_the_sandbox() {
    let host = Host::builtin().await;
    let secret = plant_host_file(&host);
    let sandbox = host.sandbox("alice");
    std::fs::create_dir_all(&sandbox).unwrap();
    symlink("/etc", sandbox.join("etc")).unwrap();
    symlink(&secret, sandbox.join("abs-link.txt")).unwrap();
    symlink("../../host-secret.txt", sandbox.join("rel-link.txt")).unwrap();

    for path in ["/tmp/etc/passwd", "/tmp/abs-link.txt", "/tmp/rel-link.txt"] {
        let m = denied(
            host.edit_err("alice", json!({"command": "view", "path": path}))
                .await,
        );
        assert!(
            !m.contains("host only") && !m.contains("root:"),
            "{path}: {m}"
        );
        let err = host
            .edit_err("alice", json!({"command": "str_replace", "path": path, "old_str": "host", "new_str": "pwned"}))
            .await;
        assert!(matches!(err, InvokeError::Denied(_)), "{path}: {err:?}");
        let err = host
            .edit_err(
                "alice",
                json!({"command": "create", "path": path, "file_text": "pwned"}),
            )
            .await;
        assert!(matches!(err, InvokeError::Denied(_)), "{path}: {err:?}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host only");
    // A symlink that stays inside the sandbox works like the file it names.
    std::fs::write(sandbox.join("real.txt"), "inside\n").unwrap();
    symlink("real.txt", sandbox.join("inner-link.txt")).unwrap();
    let out = host
        .edit(
            "alice",
            json!({"command": "view", "path": "/tmp/inner-link.txt"}),
        )
        .await;
    assert!(out.contains("     1\tinside"), "{out}");
}

#[tokio::test]
async fn users_cannot_see_each_other() {
    let host = Host::builtin().await;
    host.edit(
        "alice",
        json!({"command": "create", "path": "/tmp/diary.txt", "file_text": "alice's secret"}),
    )
    .await;
    let err = host
        .edit_err("bob", json!({"command": "view", "path": "/tmp/diary.txt"}))
        .await;
    assert!(
        matches!(err, InvokeError::InvalidInput(ref m) if m.contains("does not exist")),
        "{err:?}"
    );
    for path in ["/tmp/../alice/diary.txt", "/tmp/../alice"] {
        denied(
            host.edit_err("bob", json!({"command": "view", "path": path}))
                .await,
        );
    }
    let listing = host
        .edit("bob", json!({"command": "view", "path": "/tmp"}))
        .await;
    assert!(!listing.contains("diary"), "{listing}");
    // A user id shaped like a path is just a name: it gets its own empty sandbox.
    for user in ["../alice", "alice/..", ".", "/"] {
        let err = host
            .edit_err(user, json!({"command": "view", "path": "/tmp/diary.txt"}))
            .await;
        assert!(
            matches!(err, InvokeError::InvalidInput(_)),
            "{user}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_skill_gets_no_environment_arguments_or_host_directories() {
    let host = Host::probe("[capabilities]\nfilesystem = \"sandbox\"").await;
    let out = host
        .call("probe", "alice", json!({"mode": "env"}))
        .await
        .unwrap();
    assert_eq!(out, "env=[] args=[] cwd=Some(\"/\")");
    for path in ["/", "/etc", "/tmp/.."] {
        let err = host
            .call("probe", "alice", json!({"mode": "list", "path": path}))
            .await;
        assert!(
            matches!(err, Err(InvokeError::Denied(_))),
            "{path}: {err:?}"
        );
    }
    let out = host
        .call("probe", "alice", json!({"mode": "list", "path": "/tmp"}))
        .await
        .unwrap();
    assert_eq!(out, "");
}

/// Sparse-file credit: a byte written at offset 2^40, then deleted, credited the quota with the
/// file's apparent size, so that one call could store far more than its quota. The hole is now
/// charged like written bytes: such a file does not fit, and nothing is credited.
#[tokio::test]
async fn sparse_file_credit_a_hole_is_charged_not_credited() {
    let host = Host::probe("[capabilities]\nfilesystem = \"sandbox\"").await;
    let err = host
        .call(
            "probe",
            "alice",
            json!({"mode": "sparse", "path": "/tmp/s", "n": 3}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("space"),
        "refused as a full disk: {err}"
    );
    // The refused write left an empty file; the sandbox is as usable as before.
    let out = host
        .call("probe", "alice", json!({"mode": "write", "path": "/tmp/w"}))
        .await
        .unwrap();
    assert_eq!(out, "written");
    let stored: u64 = std::fs::read_dir(host.sandbox("alice"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(stored, 5, "only the real write is stored");
}

#[tokio::test]
async fn a_skill_without_the_filesystem_capability_sees_no_files() {
    let host = Host::probe("[capabilities]\nfilesystem = \"none\"").await;
    for (mode, path) in [
        ("list", "/tmp"),
        ("write", "/tmp/x"),
        ("read", "/etc/passwd"),
    ] {
        let err = host
            .call("probe", "alice", json!({"mode": mode, "path": path}))
            .await;
        assert!(
            matches!(err, Err(InvokeError::Denied(_))),
            "{mode} {path}: {err:?}"
        );
    }
    assert!(
        !host.sandbox("alice").exists(),
        "no sandbox is created for such a skill"
    );
}
