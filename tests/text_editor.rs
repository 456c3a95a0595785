//! The text_editor skill: every command, its errors, undo, a large file, non-ASCII text.

use molten::skills::InvokeError;
use serde_json::json;

use crate::support::Host;

fn invalid(e: InvokeError) -> String {
    match e {
        InvokeError::InvalidInput(m) => m,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn create_then_view_numbers_the_lines() {
    let host = Host::builtin().await;
    let out = host
        .edit(
            "alice",
            json!({"command": "create", "path": "/tmp/notes.md", "file_text": "hello\nworld\n"}),
        )
        .await;
    assert_eq!(out, "File created successfully at: /tmp/notes.md");
    assert_eq!(
        std::fs::read_to_string(host.sandbox("alice").join("notes.md")).unwrap(),
        "hello\nworld\n"
    );
    let out = host
        .edit("alice", json!({"command": "view", "path": "/tmp/notes.md"}))
        .await;
    assert_eq!(
        out,
        "Here's the result of running `cat -n` on /tmp/notes.md:\n     1\thello\n     2\tworld\n"
    );
}

#[tokio::test]
async fn view_range_selects_lines() {
    let host = Host::builtin().await;
    let text: String = (1..=5).map(|i| format!("line {i}\n")).collect();
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/f.txt", "file_text": text}),
    )
    .await;
    let out = host
        .edit(
            "u",
            json!({"command": "view", "path": "/tmp/f.txt", "view_range": [2, 3]}),
        )
        .await;
    assert!(out.ends_with("     2\tline 2\n     3\tline 3\n"), "{out}");
    let out = host
        .edit(
            "u",
            json!({"command": "view", "path": "/tmp/f.txt", "view_range": [4, -1]}),
        )
        .await;
    assert!(out.ends_with("     4\tline 4\n     5\tline 5\n"), "{out}");

    for (range, expected) in [
        (
            json!([0, 2]),
            "first element 0 should be within the range of lines of the file: [1, 5]",
        ),
        (
            json!([3, 2]),
            "second element 2 should be larger or equal than its first 3",
        ),
        (
            json!([1, 9]),
            "second element 9 should be smaller than the number of lines in the file: 5",
        ),
        (json!([1]), "at '/view_range': minimum 2 items required"),
    ] {
        let err = invalid(
            host.edit_err(
                "u",
                json!({"command": "view", "path": "/tmp/f.txt", "view_range": range}),
            )
            .await,
        );
        assert!(err.contains(expected), "{range}: {err}");
    }
}

#[tokio::test]
async fn view_of_a_directory_lists_two_levels_without_hidden_files() {
    let host = Host::builtin().await;
    for path in [
        "/tmp/a.txt",
        "/tmp/dir/b.txt",
        "/tmp/dir/sub/c.txt",
        "/tmp/dir/sub/deep/d.txt",
        "/tmp/.hidden",
    ] {
        host.edit(
            "u",
            json!({"command": "create", "path": path, "file_text": "x"}),
        )
        .await;
    }
    let out = host
        .edit("u", json!({"command": "view", "path": "/tmp"}))
        .await;
    assert_eq!(
        out,
        "Here's the files and directories up to 2 levels deep in /tmp, excluding hidden items:\n\
         /tmp\n/tmp/a.txt\n/tmp/dir/\n/tmp/dir/b.txt\n/tmp/dir/sub/\n"
    );
    let err = invalid(
        host.edit_err(
            "u",
            json!({"command": "view", "path": "/tmp/dir", "view_range": [1, 2]}),
        )
        .await,
    );
    assert!(
        err.contains("not allowed when `path` points to a directory"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_files_and_bad_arguments_are_explained() {
    let host = Host::builtin().await;
    let err = invalid(
        host.edit_err("u", json!({"command": "view", "path": "/tmp/nope.txt"}))
            .await,
    );
    assert!(err.contains("/tmp/nope.txt does not exist"), "{err}");

    let err = invalid(
        host.edit_err("u", json!({"command": "view", "path": "notes.md"}))
            .await,
    );
    assert!(
        err.contains("not an absolute path") && err.contains("/tmp/notes.md"),
        "{err}"
    );

    let err = invalid(
        host.edit_err("u", json!({"command": "delete", "path": "/tmp/x"}))
            .await,
    );
    // Checked against the skill's schema before it runs: the model learns what is allowed.
    assert!(
        err.contains("at '/command': value must be one of 'view', 'create'"),
        "{err}"
    );

    let err = invalid(host.edit_err("u", json!({"path": "/tmp/x"})).await);
    assert!(
        err.contains("at the top level: missing properties 'command'"),
        "{err}"
    );

    let err = invalid(
        host.call("text_editor", "u", json!("just a string"))
            .await
            .unwrap_err(),
    );
    assert!(
        err.contains("at the top level: want object, but got string"),
        "{err}"
    );

    for (command, field) in [
        ("create", "file_text"),
        ("str_replace", "old_str"),
        ("insert", "insert_line"),
    ] {
        let err = invalid(
            host.edit_err("u", json!({"command": command, "path": "/tmp/x"}))
                .await,
        );
        assert_eq!(
            err,
            format!("Parameter `{field}` is required for command: {command}.")
        );
    }
}

#[tokio::test]
async fn create_makes_parents_and_overwrites_with_undo() {
    let host = Host::builtin().await;
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/a/b/c.txt", "file_text": "one"}),
    )
    .await;
    let out = host
        .edit(
            "u",
            json!({"command": "create", "path": "/tmp/a/b/c.txt", "file_text": "two"}),
        )
        .await;
    assert!(out.contains("overwritten"), "{out}");
    let out = host
        .edit(
            "u",
            json!({"command": "undo_edit", "path": "/tmp/a/b/c.txt"}),
        )
        .await;
    assert!(
        out.contains("undone") && out.contains("     1\tone"),
        "{out}"
    );
    let err = invalid(
        host.edit_err(
            "u",
            json!({"command": "create", "path": "/tmp/a", "file_text": "x"}),
        )
        .await,
    );
    assert!(err.contains("is a directory"), "{err}");
}

#[tokio::test]
async fn str_replace_needs_exactly_one_match() {
    let host = Host::builtin().await;
    let text = "fn a() {}\nfn b() {}\nfn a() {}\nlet x = 1;\n";
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/m.rs", "file_text": text}),
    )
    .await;

    let err = invalid(
        host.edit_err("u", json!({"command": "str_replace", "path": "/tmp/m.rs", "old_str": "fn c", "new_str": "x"}))
            .await,
    );
    assert_eq!(
        err,
        "No replacement was performed, old_str `fn c` did not appear verbatim in /tmp/m.rs."
    );

    let err = invalid(
        host.edit_err("u", json!({"command": "str_replace", "path": "/tmp/m.rs", "old_str": "fn a() {}", "new_str": "x"}))
            .await,
    );
    assert_eq!(
        err,
        "No replacement was performed. Multiple occurrences of old_str `fn a() {}` in lines [1, 3]. Please ensure it is unique."
    );

    let err = invalid(
        host.edit_err(
            "u",
            json!({"command": "str_replace", "path": "/tmp/m.rs", "old_str": ""}),
        )
        .await,
    );
    assert!(err.contains("must not be empty"), "{err}");

    let out = host
        .edit("u", json!({"command": "str_replace", "path": "/tmp/m.rs", "old_str": "let x = 1;", "new_str": "let x = 2;\nlet y = 3;"}))
        .await;
    assert!(
        out.starts_with("The file /tmp/m.rs has been edited."),
        "{out}"
    );
    assert!(
        out.contains("     4\tlet x = 2;\n     5\tlet y = 3;\n"),
        "{out}"
    );
    // Without new_str the match is deleted.
    host.edit(
        "u",
        json!({"command": "str_replace", "path": "/tmp/m.rs", "old_str": "fn b() {}\n"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(host.sandbox("u").join("m.rs")).unwrap(),
        "fn a() {}\nfn a() {}\nlet x = 2;\nlet y = 3;\n"
    );
    // Errors leave the file as it was.
    assert!(host.sandbox("u").join("m.rs").is_file());
}

#[tokio::test]
async fn insert_after_a_line() {
    let host = Host::builtin().await;
    let file = |host: &Host| std::fs::read_to_string(host.sandbox("u").join("i.txt")).unwrap();
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/i.txt", "file_text": "a\nb"}),
    )
    .await;

    host.edit(
        "u",
        json!({"command": "insert", "path": "/tmp/i.txt", "insert_line": 0, "new_str": "top"}),
    )
    .await;
    assert_eq!(file(&host), "top\na\nb");
    let out = host
        .edit("u", json!({"command": "insert", "path": "/tmp/i.txt", "insert_line": 2, "new_str": "mid1\nmid2\n"}))
        .await;
    assert!(out.contains("     3\tmid1\n     4\tmid2\n"), "{out}");
    assert_eq!(file(&host), "top\na\nmid1\nmid2\nb");
    // After the last line of a file without a final newline.
    host.edit(
        "u",
        json!({"command": "insert", "path": "/tmp/i.txt", "insert_line": 5, "new_str": "end"}),
    )
    .await;
    assert_eq!(file(&host), "top\na\nmid1\nmid2\nb\nend\n");

    for line in [-1, 7] {
        let err = invalid(
            host.edit_err("u", json!({"command": "insert", "path": "/tmp/i.txt", "insert_line": line, "new_str": "x"}))
                .await,
        );
        assert_eq!(
            err,
            format!("Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: [0, 6].")
        );
    }
    let err = invalid(
        host.edit_err(
            "u",
            json!({"command": "insert", "path": "/tmp/i.txt", "insert_line": 1}),
        )
        .await,
    );
    assert_eq!(err, "Parameter `new_str` is required for command: insert.");
}

#[tokio::test]
async fn undo_walks_back_every_edit_then_says_there_is_none() {
    let host = Host::builtin().await;
    let path = host.sandbox("u").join("u.txt");
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/u.txt", "file_text": "v1\n"}),
    )
    .await;
    host.edit(
        "u",
        json!({"command": "str_replace", "path": "/tmp/u.txt", "old_str": "v1", "new_str": "v2"}),
    )
    .await;
    host.edit(
        "u",
        json!({"command": "insert", "path": "/tmp/u.txt", "insert_line": 1, "new_str": "v3"}),
    )
    .await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "v2\nv3\n");

    host.edit("u", json!({"command": "undo_edit", "path": "/tmp/u.txt"}))
        .await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "v2\n");
    host.edit("u", json!({"command": "undo_edit", "path": "/tmp/u.txt"}))
        .await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "v1\n");
    let out = host
        .edit("u", json!({"command": "undo_edit", "path": "/tmp/u.txt"}))
        .await;
    assert!(out.contains("removed"), "{out}");
    assert!(!path.exists());
    let err = invalid(
        host.edit_err("u", json!({"command": "undo_edit", "path": "/tmp/u.txt"}))
            .await,
    );
    assert_eq!(err, "No edit history found for /tmp/u.txt.");
    // History is per file and per user.
    let err = invalid(
        host.edit_err("v", json!({"command": "undo_edit", "path": "/tmp/u.txt"}))
            .await,
    );
    assert_eq!(err, "No edit history found for /tmp/u.txt.");
}

#[tokio::test]
async fn undo_history_is_bounded() {
    let host = Host::builtin().await;
    for i in 0..15 {
        host.edit(
            "u",
            json!({"command": "create", "path": "/tmp/h.txt", "file_text": format!("{i}")}),
        )
        .await;
    }
    let mut undone = 0;
    while host
        .call(
            "text_editor",
            "u",
            json!({"command": "undo_edit", "path": "/tmp/h.txt"}),
        )
        .await
        .is_ok()
    {
        undone += 1;
    }
    assert_eq!(undone, 10);
    assert_eq!(
        std::fs::read_to_string(host.sandbox("u").join("h.txt")).unwrap(),
        "4"
    );
}

#[tokio::test]
async fn large_file() {
    let host = Host::builtin().await;
    let text: String = (1..=50_000)
        .map(|i| format!("this is line number {i:06}\n"))
        .collect();
    assert!(text.len() > 1_000_000);
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/big.txt", "file_text": text}),
    )
    .await;
    let out = host
        .edit(
            "u",
            json!({"command": "view", "path": "/tmp/big.txt", "view_range": [49_999, -1]}),
        )
        .await;
    assert!(
        out.ends_with(" 49999\tthis is line number 049999\n 50000\tthis is line number 050000\n"),
        "{out}"
    );
    host.edit("u", json!({"command": "str_replace", "path": "/tmp/big.txt", "old_str": "number 049000", "new_str": "NUMBER 49000"}))
        .await;
    let on_disk = std::fs::read_to_string(host.sandbox("u").join("big.txt")).unwrap();
    assert!(on_disk.contains("this is line NUMBER 49000\n"));
    assert_eq!(on_disk.len(), text.len() - 1);
    // The whole file is more than a tool result may carry: the host cuts it and says so.
    let out = host
        .edit("u", json!({"command": "view", "path": "/tmp/big.txt"}))
        .await;
    assert!(out.len() < 300 * 1024, "{}", out.len());
    assert!(
        out.contains("\n[output truncated: 262144 of "),
        "{}",
        &out[out.len() - 100..]
    );
}

#[tokio::test]
async fn non_ascii_text() {
    let host = Host::builtin().await;
    let text = "héllo wörld 🌍\n日本語のテキスト\nпривет\n";
    host.edit(
        "u",
        json!({"command": "create", "path": "/tmp/ünïcode/文件.txt", "file_text": text}),
    )
    .await;
    host.edit("u", json!({"command": "str_replace", "path": "/tmp/ünïcode/文件.txt", "old_str": "wörld 🌍", "new_str": "мир 🌏"}))
        .await;
    host.edit("u", json!({"command": "insert", "path": "/tmp/ünïcode/文件.txt", "insert_line": 1, "new_str": "ελληνικά"}))
        .await;
    let out = host
        .edit(
            "u",
            json!({"command": "view", "path": "/tmp/ünïcode/文件.txt", "view_range": [1, 3]}),
        )
        .await;
    assert!(
        out.ends_with("     1\théllo мир 🌏\n     2\tελληνικά\n     3\t日本語のテキスト\n"),
        "{out}"
    );
    let listing = host
        .edit("u", json!({"command": "view", "path": "/tmp"}))
        .await;
    assert!(listing.contains("/tmp/ünïcode/文件.txt"), "{listing}");
}

#[tokio::test]
async fn binary_files_are_refused_not_mangled() {
    let host = Host::builtin().await;
    let sandbox = host.sandbox("u");
    std::fs::create_dir_all(&sandbox).unwrap();
    std::fs::write(sandbox.join("blob.bin"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    match host
        .edit_err("u", json!({"command": "view", "path": "/tmp/blob.bin"}))
        .await
    {
        InvokeError::Failed(m) => assert!(m.contains("not a UTF-8 text file"), "{m}"),
        other => panic!("{other:?}"),
    }
    let err = host
        .edit_err(
            "u",
            json!({"command": "str_replace", "path": "/tmp/blob.bin", "old_str": "a"}),
        )
        .await;
    assert!(matches!(err, InvokeError::Failed(_)), "{err:?}");
    assert_eq!(
        std::fs::read(sandbox.join("blob.bin")).unwrap(),
        [0xff, 0xfe, 0x00, 0x80]
    );
}
