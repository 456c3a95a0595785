//! The real `molten` binary: the commands of the README.

use std::process::{Command, Output};

use crate::support::{root, temp_dir};

fn molten(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_molten"))
        .args(args)
        .env("MOLTEN_DATA_DIR", data)
        .env("MOLTEN_SKILLS_DIR", root().join("target").join("skills"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run molten")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn readme_walkthrough() {
    let data = temp_dir();
    let list = molten(data.path(), &["skill", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed = text(&list.stdout);
    // Sorted by name; every built-in skill is listed.
    assert!(listed.starts_with("bash\n"), "{listed}");
    for name in ["calendar_create", "email_send", "text_editor", "web_search"] {
        assert!(listed.contains(&format!("\n{name}\n")), "{listed}");
    }
    assert!(
        listed.contains("http: asks https://api.tavily.com; granted nothing (add [skills.web_search] http = [...] to the config)"),
        "{listed}"
    );
    assert!(
        listed.contains("limits: fuel 5000000000, timeout 30000 ms, memory 64 MiB, output 256 KiB"),
        "{listed}"
    );
    assert!(
        listed.contains("capabilities: filesystem sandbox"),
        "{listed}"
    );

    let create = molten(
        data.path(),
        &[
            "skill",
            "run",
            "text_editor",
            r#"{"command":"create","path":"/tmp/notes.md","file_text":"hello\n"}"#,
            "--user",
            "alice",
        ],
    );
    assert!(create.status.success(), "{}", text(&create.stderr));
    assert_eq!(
        text(&create.stdout),
        "File created successfully at: /tmp/notes.md\n"
    );

    let view = molten(
        data.path(),
        &[
            "skill",
            "run",
            "text_editor",
            r#"{"command":"view","path":"/tmp/notes.md"}"#,
            "--user",
            "alice",
        ],
    );
    assert!(view.status.success(), "{}", text(&view.stderr));
    assert_eq!(
        text(&view.stdout),
        "Here's the result of running `cat -n` on /tmp/notes.md:\n     1\thello\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("sandboxes/alice/notes.md")).unwrap(),
        "hello\n"
    );

    let refused = molten(
        data.path(),
        &[
            "skill",
            "run",
            "text_editor",
            r#"{"command":"view","path":"/etc/passwd"}"#,
            "--user",
            "alice",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty());
    let message = text(&refused.stderr);
    assert!(
        message
            .starts_with("error: denied: Cannot view /etc/passwd: the sandbox does not allow it"),
        "{message}"
    );
    assert!(!message.contains("root:"), "{message}");
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let data = temp_dir();
    let unknown = molten(data.path(), &["skill", "run", "nope", "{}"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no skill named `nope` is loaded"),
        "{}",
        text(&unknown.stderr)
    );

    let bad_json = molten(data.path(), &["skill", "run", "text_editor", "{not json"]);
    assert_eq!(bad_json.status.code(), Some(1));
    assert!(
        text(&bad_json.stderr).contains("error: invalid input: the arguments are not valid JSON"),
        "{}",
        text(&bad_json.stderr)
    );
}

#[test]
fn list_reports_skills_that_failed_to_load() {
    let data = temp_dir();
    let skills = data.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    std::fs::write(skills.join("broken.wasm"), b"nope").unwrap();
    std::fs::write(
        skills.join("broken.toml"),
        "name = \"broken\"\ndescription = \"d\"\n",
    )
    .unwrap();
    let dirs = format!(
        "{}:{}",
        root().join("target/skills").display(),
        skills.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_molten"))
        .args(["skill", "list"])
        .env("MOLTEN_DATA_DIR", data.path())
        .env("MOLTEN_SKILLS_DIR", dirs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("\ntext_editor\n"));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: skill not loaded: "), "{stderr}");
    assert!(
        stderr.contains(&skills.join("broken.wasm").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn replicas_sharing_a_sandbox_dir_see_the_same_user_files() {
    // Two replicas (two data dirs, as two containers have) with one mounted sandbox share.
    let share = temp_dir();
    let env = [("MOLTEN_SANDBOX_DIR", share.path().to_str().unwrap())];
    let (ok, _, err) = crate::support::skill_run(
        "",
        "bash",
        r#"{"command":"echo from replica one > /tmp/shared.txt"}"#,
        &env,
    );
    assert!(ok, "{err}");
    let (ok, out, err) =
        crate::support::skill_run("", "bash", r#"{"command":"cat /tmp/shared.txt"}"#, &env);
    assert!(ok, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["stdout"], "from replica one\n");
    assert!(
        std::fs::read_dir(share.path()).unwrap().count() > 0,
        "the sandbox is in the share"
    );
}
