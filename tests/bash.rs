//! The `bash` skill through the real runtime: scripts compared with real bash and coreutils
//! (tests/data/bash_expected.json, made by scripts/bash-reference), and attacks, each leaving
//! the host untouched.

use std::collections::BTreeMap;

use molten::skills::InvokeError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::{root, Host};

/// What one call printed and how it exited.
#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
    code: i64,
}

async fn try_bash(host: &Host, user: &str, script: &str) -> Result<Run, InvokeError> {
    let out = host
        .call("bash", user, json!({ "command": script }))
        .await?;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    Ok(Run {
        stdout: v["stdout"].as_str().unwrap().to_owned(),
        stderr: v["stderr"].as_str().unwrap().to_owned(),
        code: v["exit_code"].as_i64().unwrap(),
    })
}

async fn bash(host: &Host, user: &str, script: &str) -> Run {
    try_bash(host, user, script)
        .await
        .unwrap_or_else(|e| panic!("{script:?} failed: {e}"))
}

#[derive(Deserialize)]
struct Case {
    script: String,
    stdout: String,
    exit_code: i64,
}

fn reference() -> BTreeMap<String, Case> {
    let path = root().join("tests/data/bash_expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn scripts_print_and_exit_as_real_bash_does() {
    let host = Host::builtin().await;
    let cases = reference();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, (name, case)) in cases.iter().enumerate() {
        // A fresh user, so a fresh empty sandbox, like the fresh directory of the reference.
        let run = bash(&host, &format!("case-{i}"), &case.script).await;
        if run.stdout != case.stdout || run.code != case.exit_code {
            failures.push(format!(
                "--- {name} (exit {} want {})\n{}\n--- got:\n{}--- want:\n{}--- stderr:\n{}",
                run.code, case.exit_code, case.script, run.stdout, case.stdout, run.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts differ from real bash:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_reference_is_generated_from_the_current_cases() {
    let text = std::fs::read_to_string(root().join("tests/data/bash_cases.txt")).unwrap();
    let mut scripts = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            if let Some((n, lines)) = current.take() {
                scripts.insert(n, lines.join("\n") + "\n");
            }
            current = Some((name.trim().to_owned(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some((n, lines)) = current {
        scripts.insert(n, lines.join("\n") + "\n");
    }
    let reference: BTreeMap<String, String> = reference()
        .into_iter()
        .map(|(k, v)| (k, v.script))
        .collect();
    assert_eq!(
        scripts, reference,
        "tests/data/bash_cases.txt changed: run scripts/bash-reference"
    );
}

#[tokio::test]
async fn errors_look_like_bash() {
    let host = Host::builtin().await;
    let run = bash(&host, "u", "echo ok; if then fi").await;
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.starts_with("bash: "), "{}", run.stderr);
    assert!(run.stderr.contains("syntax error"), "{}", run.stderr);

    let run = bash(&host, "u", "frobnicate --now").await;
    assert_eq!(run.code, 127);
    assert_eq!(run.stderr, "bash: frobnicate: command not found\n");
}

#[tokio::test]
async fn each_call_is_a_fresh_shell_over_the_same_files() {
    let host = Host::builtin().await;
    let first = bash(
        &host,
        "alice",
        "mkdir -p work && cd work && echo kept > note; X=1; export Y=2; f() { :; }",
    )
    .await;
    assert_eq!(first.code, 0, "{first:?}");
    let second = bash(
        &host,
        "alice",
        "pwd; echo ${X:-unset} ${Y:-unset}; type f; cat work/note",
    )
    .await;
    assert_eq!(second.stdout, "/tmp\nunset unset\nkept\n");
    assert!(second.stderr.contains("f: not found"), "{second:?}");
    assert_eq!(
        std::fs::read_to_string(host.sandbox("alice").join("work/note")).unwrap(),
        "kept\n"
    );
    // Another user sees none of it.
    let other = bash(&host, "bob", "ls; cat work/note").await;
    assert_eq!(other.stdout, "");
    assert_ne!(other.code, 0);
}

#[tokio::test]
async fn output_is_capped_with_a_visible_marker() {
    let host = Host::builtin().await;
    let run = bash(&host, "u", "seq 1 100000; seq 1 20000 >&2").await;
    assert!(run.stdout.len() < 66 * 1024, "{}", run.stdout.len());
    assert!(run.stdout.starts_with("1\n2\n3\n"));
    let total = (1..=100_000)
        .map(|n: u32| n.to_string().len() + 1)
        .sum::<usize>();
    assert!(
        run.stdout.ends_with(&format!(
            "[stdout truncated: {} more bytes not shown]",
            total - 65536
        )),
        "{}",
        &run.stdout[run.stdout.len() - 80..]
    );
    assert!(
        run.stderr.contains("[stderr truncated: "),
        "stderr not capped"
    );
    assert_eq!(run.code, 0);
}

/// Files outside the user's sandbox that every attack must leave alone.
fn plant_canaries(host: &Host) -> Vec<std::path::PathBuf> {
    let canary = host.dir.path().join("canary.txt");
    std::fs::write(&canary, "host file").unwrap();
    let other = host.sandbox("victim");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.txt"), "victim's file").unwrap();
    vec![canary, other.join("secret.txt")]
}

fn assert_untouched(canaries: &[std::path::PathBuf]) {
    for c in canaries {
        assert!(c.is_file(), "{} was removed", c.display());
    }
}

/// Runs `script` as "mallory" next to planted canaries; returns what it printed.
async fn attack_leaves_canaries(script: &str) -> Run {
    let host = Host::builtin().await;
    let canaries = plant_canaries(&host);
    let run = bash(&host, "mallory", script).await;
    assert_untouched(&canaries);
    assert!(run.stdout.is_empty(), "{script}: {run:?}");
    run
}

#[tokio::test]
async fn rm_rf_root_removes_nothing() {
    let run = attack_leaves_canaries("rm -rf /").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot remove '/'"), "{run:?}");
}

#[tokio::test]
async fn rm_rf_root_glob_removes_nothing() {
    // `/*` matches nothing in the sandbox's world, so rm gets the word itself.
    let run = attack_leaves_canaries("rm -rf /* && echo gone /*").await;
    assert_eq!(run.code, 1, "{run:?}");
}

#[tokio::test]
async fn rm_rf_parent_paths_remove_nothing() {
    attack_leaves_canaries("rm -rf .. ../* /tmp/../.. ../victim").await;
}

#[tokio::test]
async fn rm_rf_home_empties_only_the_users_own_sandbox() {
    let host = Host::builtin().await;
    let canaries = plant_canaries(&host);
    bash(&host, "mallory", "mkdir -p a/b && touch a/b/c top").await;
    let run = bash(&host, "mallory", "rm -rf ~; ls -A ~ | wc -l").await;
    assert_eq!(run.stdout, "0\n", "{run:?}");
    assert_untouched(&canaries);
    // The sandbox still works afterwards.
    let run = bash(&host, "mallory", "echo again > f && cat f").await;
    assert_eq!(run.stdout, "again\n");
}

#[tokio::test]
async fn cat_etc_passwd_finds_no_such_file() {
    let host = Host::builtin().await;
    let run = bash(&host, "u", "cat /etc/passwd").await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr, "cat: /etc/passwd: No such file or directory\n");
}

#[tokio::test]
async fn cd_root_and_ls_list_nothing_of_the_host() {
    let host = Host::builtin().await;
    let run = bash(&host, "u", "cd / && ls").await;
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_ne!(run.code, 0);
    let run = bash(
        &host,
        "u",
        "ls / /etc /usr/bin; find / -maxdepth 1; echo /*; echo /etc/*",
    )
    .await;
    assert_eq!(run.stdout, "/*\n/etc/*\n", "{run:?}");
}

#[tokio::test]
async fn symlinks_planted_in_the_sandbox_do_not_lead_out() {
    let host = Host::builtin().await;
    let sandbox = host.sandbox("u");
    std::fs::create_dir_all(&sandbox).unwrap();
    std::os::unix::fs::symlink("/etc", sandbox.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sandbox.join("pw")).unwrap();
    std::os::unix::fs::symlink("../../", sandbox.join("up")).unwrap();
    for script in [
        "cat etc-link/passwd",
        "cat pw",
        "cat up/canary.txt",
        "echo x > pw",
        "cp pw copy && cat copy",
        "cd etc-link",
    ] {
        let run = bash(&host, "u", script).await;
        assert_ne!(run.code, 0, "{script}: {run:?}");
        assert!(run.stdout.is_empty(), "{script}: {run:?}");
    }
    // Listing shows a link as a name; it never lists what is behind it.
    let run = bash(
        &host,
        "u",
        "ls etc-link up; ls etc-link/ up/; find . -follow",
    )
    .await;
    assert!(
        !run.stdout.contains("passwd") && !run.stdout.contains("canary"),
        "{run:?}"
    );
    assert!(std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("root:"));
}

#[tokio::test]
async fn the_environment_holds_no_host_variables() {
    let host = Host::builtin().await;
    let run = bash(&host, "u", "env").await;
    let names: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    for name in &names {
        assert!(
            ["HOME", "PWD", "PATH", "SHELL", "USER", "LOGNAME", "LANG", "TMPDIR"].contains(name),
            "unexpected variable {name} in {}",
            run.stdout
        );
    }
    // The test process has CARGO_* variables; the skill sees none of them.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    assert!(!run.stdout.contains("CARGO"));
    let run = bash(&host, "u", "cat /proc/self/environ").await;
    assert_ne!(run.code, 0);
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn a_runaway_loop_is_stopped_with_a_clear_message() {
    let host = Host::builtin().await;
    let e = try_bash(&host, "u", "while true; do :; done")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            InvokeError::OutOfFuel { .. } | InvokeError::Timeout { .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("bash"), "{e}");
}

#[tokio::test]
async fn a_fork_bomb_ends() {
    let host = Host::builtin().await;
    match try_bash(&host, "u", ":(){ :|:& };:").await {
        Ok(run) => assert_ne!(run.code, 0, "{run:?}"),
        Err(e) => assert!(
            matches!(
                e,
                InvokeError::OutOfFuel { .. } | InvokeError::Timeout { .. }
            ),
            "{e:?}"
        ),
    }
}

#[tokio::test]
async fn deep_recursion_is_refused() {
    let host = Host::builtin().await;
    let run = bash(&host, "u", "f() { f; }; f; echo unreachable").await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("maximum function nesting level exceeded"),
        "{run:?}"
    );
    assert!(run.stdout.is_empty());
    // Nesting in the source itself: an error, never a hung or crashed host.
    let nested = format!("echo {}1{}", "$(".repeat(2000), ")".repeat(2000));
    match try_bash(&host, "u", &nested).await {
        Ok(run) => assert_ne!(run.code, 0, "{run:?}"),
        Err(e) => assert!(matches!(e, InvokeError::Crashed { .. }), "{e:?}"),
    }
    let run = bash(&host, "u", "echo still fine").await;
    assert_eq!(run.stdout, "still fine\n");
}

#[tokio::test]
async fn a_ten_megabyte_command_is_refused_clearly() {
    let host = Host::builtin().await;
    let script = format!("echo {}", "A".repeat(10 << 20));
    let e = try_bash(&host, "u", &script).await.unwrap_err();
    let InvokeError::InvalidInput(message) = e else {
        panic!("{e:?}");
    };
    assert!(message.contains("at most 1048576"), "{message}");
}

#[tokio::test]
async fn writes_past_the_quota_fail_like_a_full_disk() {
    let host = Host::with_quota(256 << 10).await;
    let canaries = plant_canaries(&host);
    let run = bash(
        &host,
        "u",
        "yes > f; echo \"yes exited $?\"; df -h | tail -n 1",
    )
    .await;
    assert!(run.stderr.contains("No space left on device"), "{run:?}");
    assert!(run.stdout.starts_with("yes exited 1\n"), "{run:?}");
    assert!(run.stdout.contains("256K"), "df shows the quota: {run:?}");
    let size = std::fs::metadata(host.sandbox("u").join("f"))
        .unwrap()
        .len();
    assert!(size <= 256 << 10, "{size}");
    assert!(size > 200 << 10, "{size}");

    // Full stays full across calls, for every way of writing...
    for script in [
        "echo more >> f",
        "seq 1 100000 > g",
        "cp f h",
        "printf x | tee t",
    ] {
        let run = bash(&host, "u", script).await;
        assert!(
            run.stderr.contains("No space left on device"),
            "{script}: {run:?}"
        );
    }
    // ...until space is freed.
    let run = bash(&host, "u", "rm f g h t; echo fits > small && cat small").await;
    assert_eq!(run.stdout, "fits\n", "{run:?}");
    assert_untouched(&canaries);
}

#[tokio::test]
async fn listings_sizes_and_dates_have_the_coreutils_shape() {
    let host = Host::builtin().await;
    let run = bash(
        &host,
        "u",
        "mkdir d; printf '%05000d' 0 > d/f; ls -l d; ls -lh d; du -sh d; du -s d; df -h; df; date; date -u +%Y",
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let re = |p: &str| regex::Regex::new(p).unwrap();
    assert_eq!(lines[0], "total 8");
    assert!(
        re(r"^-rw-r--r-- 1 user user 5000 [A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9] f$")
            .is_match(lines[1]),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "total 8.0K");
    assert!(
        lines[3].starts_with("-rw-r--r-- 1 user user 4.9K "),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "12K\td");
    assert_eq!(lines[5], "12\td");
    assert_eq!(lines[6], "Filesystem      Size  Used Avail Use% Mounted on");
    assert!(
        re(r"^sandbox +100M +5\.0K +100M +1% /tmp$").is_match(lines[7]),
        "{}",
        lines[7]
    );
    assert!(
        lines[8].starts_with("Filesystem     1K-blocks"),
        "{}",
        lines[8]
    );
    assert!(
        re(r"^sandbox +102400 +5 +102395 +1% /tmp$").is_match(lines[9]),
        "{}",
        lines[9]
    );
    assert!(re(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] UTC 20[0-9]{2}$").is_match(lines[10]), "{}", lines[10]);
    assert!(re(r"^20[0-9]{2}$").is_match(lines[11]), "{}", lines[11]);
}

/// Quota race: calls of one user that run at the same time each found the whole quota free
/// (6 calls writing 90 MB each filled 515 MiB of a 100 MiB sandbox). They now charge one
/// account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_race_concurrent_calls_share_one_account() {
    let host = Host::with_quota(1 << 20).await;
    // Every call starts (and opens its account) before any of them writes.
    let scripts: Vec<String> = (0..6)
        .map(|i| format!("sleep 1; yes abcdefg | head -c 900000 > f{i}; echo $?"))
        .collect();
    let runs = futures::future::join_all(scripts.iter().map(|s| bash(&host, "u", s))).await;
    let stored: u64 = std::fs::read_dir(host.sandbox("u"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(stored <= 1 << 20, "{stored} bytes in a 1 MiB sandbox");
    let full = runs
        .iter()
        .filter(|r| r.stderr.contains("No space left on device"))
        .count();
    assert!(full >= 5, "all but one call ran out of space: {runs:?}");
    // Once they are done, the next call measures the disk afresh and finds it full. (A few
    // bytes may be left: a refused write leaves less than itself free, so it asks for 100 kB,
    // more than any one write of theirs.)
    let run = bash(&host, "u", "yes abcdefg | head -c 100000 > g").await;
    assert!(run.stderr.contains("No space left on device"), "{run:?}");
}

/// Bricked sandbox: 5,000 nested directories (deeper than any path may be long) made every
/// later call of their owner fail with "cannot prepare the sandbox: File name too long" (and
/// the recursive measurement overflowed the host's stack, aborting the whole process). The
/// host now measures a sandbox from descriptor to descriptor, in a loop.
#[tokio::test]
async fn bricked_sandbox_a_tree_deeper_than_a_path_still_lets_its_owner_in() {
    use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
    let host = Host::builtin().await;
    bash(&host, "u", "echo 12345 > kept").await;
    // Built the way a skill can, one directory inside the last, never naming the whole path.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, host.sandbox("u").as_path(), flags, Mode::empty()).unwrap();
    for _ in 0..5_000 {
        mkdirat(&dir, "d", Mode::RWXU).unwrap();
        dir = openat(&dir, "d", flags, Mode::empty()).unwrap();
    }
    rustix::fs::openat(&dir, "deep", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
    let run = bash(&host, "u", "cat kept; df | tail -n 1").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("12345\n"), "{run:?}");
}

/// The other half of the bricked sandbox: directories nest at most 64 levels below /tmp, by
/// mkdir or by moving a tree under another, so that their owner can always remove them.
#[tokio::test]
async fn bricked_sandbox_nesting_is_limited_and_removable() {
    let host = Host::builtin().await;
    let run = bash(
        &host,
        "u",
        "mkdir -p $(printf 'd/%.0s' $(seq 1 70)); echo $?; find d -type d | wc -l",
    )
    .await;
    assert!(run.stderr.contains("name too long"), "{run:?}");
    assert_eq!(run.stdout, "1\n64\n", "{run:?}");
    // Two trees of 40 levels: one moved into the other's depths is refused and stays put.
    let run = bash(
        &host,
        "u",
        "mkdir -p a/$(printf 'x/%.0s' $(seq 1 39)) b/$(printf 'y/%.0s' $(seq 1 39)); \
         mv b a/$(printf 'x/%.0s' $(seq 1 39)); echo $?; find b -type d | wc -l; \
         mv b/y a/x; echo $?; find a -type d | wc -l",
    )
    .await;
    assert!(run.stderr.contains("name too long"), "{run:?}");
    assert_eq!(run.stdout, "1\n40\n0\n79\n", "{run:?}");
    // All of it can be removed by its owner.
    let run = bash(&host, "u", "rm -rf d a b; echo $?; ls | wc -l").await;
    assert_eq!(run.stdout, "0\n0\n", "{run:?}");
}

/// Uncounted inodes: directories counted 0 bytes and symlinks their target's length, so
/// 40,000 directories and 20,000 symlinks used 707 MiB of disk under a 100 MiB quota. A sandbox
/// now holds at most `[sandbox] max_files` entries; past it, creating one fails as a full quota.
#[tokio::test]
async fn uncounted_inodes_a_sandbox_holds_at_most_max_files_entries() {
    let host = Host::with_max_files(20).await;
    let run = bash(
        &host,
        "u",
        "for i in $(seq 1 30); do mkdir d$i 2>/dev/null || echo no d$i; done; touch f; echo $?; ls | wc -l",
    )
    .await;
    assert!(run.stdout.starts_with("no d21\n"), "{run:?}");
    assert!(run.stdout.ends_with("1\n20\n"), "{run:?}");
    assert!(run.stderr.contains("Quota exceeded"), "{run:?}");
    // The next call measures the same; deleting gives room back.
    let run = bash(
        &host,
        "u",
        "mkdir x; rmdir d1 d2; touch f g; echo $?; ls | wc -l",
    )
    .await;
    assert_eq!(run.stdout, "0\n20\n", "{run:?}");
}
