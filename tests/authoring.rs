//! A skill author's loop, as a new user runs it from an empty directory: `molten skill new`,
//! `test`, `build`, the mistakes authors make (each with a clear message), and the skill
//! answering in chat once installed into a running `molten serve`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fakes::{config, llm_text, llm_tool, Fake, Molten};
use crate::support::temp_dir;

/// `molten skill ARGS` in `dir`, with `data` as the data directory and no config file.
fn skill(dir: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_molten"))
        .arg("--data-dir")
        .arg(data)
        .arg("skill")
        .args(args)
        .current_dir(dir)
        // The guest target directory of scripts/build-skills: the standard library it built
        // for wasm is reused instead of built again for this project.
        .env(
            "CARGO_TARGET_DIR",
            crate::support::root().join("target").join("guest"),
        )
        .env_remove("MOLTEN_CONFIG")
        .env_remove("MOLTEN_SKILLS_DIR")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// A project made by `molten skill new NAME --lang LANG` in an empty directory, whose own
/// tests pass (`passed` cases) through `molten skill test`; with its data directory.
struct Project {
    dir: std::path::PathBuf,
    data: tempfile::TempDir,
    _parent: tempfile::TempDir,
}

impl Project {
    fn new(name: &str, lang: &str, passed: usize) -> Self {
        let parent = temp_dir();
        let data = temp_dir();
        crate::support::share_compile_cache(data.path());
        let started = Instant::now();
        let new = skill(parent.path(), data.path(), &["new", name, "--lang", lang]);
        assert!(new.status.success(), "{}", text(&new));
        let dir = parent.path().join(name);
        let test = skill(&dir, data.path(), &["test"]);
        let report = text(&test);
        assert!(test.status.success(), "{report}");
        assert!(
            report.contains(&format!("{name}: {passed} passed, 0 failed")),
            "{report}"
        );
        eprintln!("{lang} skill new → tests passing: {:?}", started.elapsed());
        Self {
            dir,
            data,
            _parent: parent,
        }
    }

    /// `molten skill ARGS` in the project.
    fn skill(&self, args: &[&str]) -> Output {
        skill(&self.dir, self.data.path(), args)
    }

    /// What `molten skill run --dir dist NAME ARGUMENTS` prints.
    fn run(&self, name: &str, arguments: &str) -> String {
        let run = self.skill(&["run", "--dir", "dist", name, arguments]);
        assert!(run.status.success(), "{}", text(&run));
        String::from_utf8_lossy(&run.stdout).trim().to_owned()
    }

    /// What a `molten skill build` that must fail says.
    fn build_fails(&self) -> String {
        let build = self.skill(&["build"]);
        assert!(!build.status.success());
        text(&build)
    }
}

/// Installs the built skill `wasm` into the plugin store of a running `molten serve`, has the
/// scripted model call it with `arguments`, and checks the model got `expected` and the user
/// the answer.
async fn answers_in_chat(wasm: &Path, arguments: serde_json::Value, expected: &str) {
    let name = wasm.file_stem().unwrap().to_str().unwrap().to_owned();
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &[]).await;
    let install = molten
        .cli(&["skill", "install"])
        .arg(wasm)
        .output()
        .unwrap();
    assert!(install.status.success(), "{}", text(&install));
    molten.until_skill(&name, true).await;
    fake.script_llm([llm_tool("t1", &name, arguments), llm_text("Done.")]);
    molten.telegram(1, 77, "please use the skill").await;
    let sent = fake
        .wait_for("/sendMessage", 1, Duration::from_secs(60))
        .await;
    assert_eq!(sent[0].body["text"], "Done.");
    let requests = fake.llm_requests();
    let result = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(result["content"], expected, "{}", molten.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_skill_is_built_tested_and_answers_in_chat() {
    // The scaffold builds and passes its own tests as it is.
    let started = Instant::now();
    let project = Project::new("word_count", "rust", 4);
    let build = project.skill(&["build"]);
    let shown = text(&build);
    assert!(build.status.success(), "{shown}");
    assert!(
        shown.contains("capabilities: filesystem sandbox") && shown.contains("size: "),
        "{shown}"
    );
    assert_eq!(
        project.run("word_count", r#"{"text": "a b c"}"#),
        "1 lines, 3 words, 5 characters"
    );
    answers_in_chat(
        &project.dir.join("dist").join("word_count.wasm"),
        json!({"text": "to be or not to be"}),
        "1 lines, 6 words, 18 characters",
    )
    .await;
    eprintln!("skill new → answer in chat: {:?}", started.elapsed());

    // What authors get wrong, each said clearly.
    let lib = project.dir.join("src/lib.rs");
    let manifest = project.dir.join("skill.toml");
    edit(&lib, "text.lines().count(),", "text.lines().count()");
    let said = project.build_fails();
    assert!(
        said.contains("error")
            && said.contains("src/lib.rs")
            && said.contains("word_count did not compile"),
        "{said}"
    );
    edit(&lib, "text.lines().count()", "text.lines().count(),");

    edit(&manifest, "description =", "descriptin =");
    let said = project.build_fails();
    assert!(
        said.contains("descriptin") && said.contains("would not load"),
        "{said}"
    );
    edit(&manifest, "descriptin =", "description =");

    edit(&lib, "name: \"word_count\"", "name: \"word_counter\"");
    let said = project.build_fails();
    assert!(
        said.contains("names the skill `word_counter` but its manifest names it `word_count`"),
        "{said}"
    );
    edit(&lib, "name: \"word_counter\"", "name: \"word_count\"");

    edit(
        &project.dir.join("tests.toml"),
        "output = \"2 lines, 4 words",
        "output = \"3 lines, 4 words",
    );
    let failing = project.skill(&["test"]);
    assert!(!failing.status.success());
    let said = text(&failing);
    assert!(
        said.contains("FAILED case 1") && said.contains("3 passed, 1 failed"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_python_skill_is_built_tested_and_answers_in_chat_and_cannot_reach_the_host() {
    // Its tests include reading /etc/passwd: the host's files do not exist for it.
    let project = Project::new("csv_summary", "python", 4);
    let sandbox = project.data.path().join("sandboxes").join("cli");
    std::fs::create_dir_all(&sandbox).unwrap();
    std::fs::write(sandbox.join("t.csv"), "name,age\nada,36\nalan,41\n").unwrap();
    assert_eq!(
        project.run("csv_summary", r#"{"path": "/tmp/t.csv"}"#),
        "/tmp/t.csv: 2 rows, 2 columns\nname: 2 distinct values (ada, alan)\nage: numeric, min 36, max 41, mean 38.5"
    );
    // In chat the user is someone else, whose sandbox has no t.csv.
    answers_in_chat(
        &project.dir.join("dist").join("csv_summary.wasm"),
        json!({"path": "/tmp/t.csv"}),
        "error: invalid input: /tmp/t.csv does not exist",
    )
    .await;

    // A Python error is the author's to see, not a crash of molten.
    edit(
        &project.dir.join("app.py"),
        "def summarise(path, max_columns):",
        "def summarise(path, max_columns)",
    );
    let said = project.build_fails();
    assert!(
        said.contains("SyntaxError") && said.contains("app.py did not build"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_javascript_skill_is_built_tested_and_answers_in_chat() {
    let project = Project::new("markdown_table", "js", 4);
    assert_eq!(
        project.run("markdown_table", r#"{"rows": [{"x": 1}]}"#),
        "| x   |\n| --- |\n| 1   |"
    );
    answers_in_chat(
        &project.dir.join("dist").join("markdown_table.wasm"),
        json!({"rows": [{"n": 1}, {"n": 22}]}),
        "| n   |\n| --- |\n| 1   |\n| 22  |",
    )
    .await;

    // Without Node.js the build says what to install.
    let bare = Command::new(env!("CARGO_BIN_EXE_molten"))
        .arg("--data-dir")
        .arg(project.data.path())
        .args(["skill", "build"])
        .current_dir(&project.dir)
        .env("PATH", "/nonexistent")
        .env("XDG_CACHE_HOME", project.data.path().join("empty-cache"))
        .output()
        .unwrap();
    assert!(!bare.status.success());
    let said = text(&bare);
    assert!(
        said.contains(
            "JavaScript skills need Node.js 18 or later with npm (apt packages nodejs and npm)"
        ),
        "{said}"
    );

    edit(
        &project.dir.join("app.js"),
        "export function describe() {",
        "export function describe( {",
    );
    assert!(project.build_fails().contains("app.js did not build"));
}
