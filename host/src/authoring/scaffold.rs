//! `molten skill new NAME`: a Rust, Python or JavaScript skill project that builds and passes its tests as
//! it is.

use std::path::{Path, PathBuf};

use super::{io, AuthorError};

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, on the molten-skill SDK.
    Rust,
    /// Python, componentized with CPython by componentize-py.
    Python,
    /// JavaScript, componentized with SpiderMonkey by componentize-js.
    Js,
}

/// The files of a new JavaScript project.
const JS: &[(&str, &str)] = &[
    ("app.js", include_str!("../../templates/js/app.js")),
    ("skill.toml", include_str!("../../templates/js/skill.toml")),
    ("tests.toml", include_str!("../../templates/js/tests.toml")),
    ("README.md", include_str!("../../templates/js/README.md")),
    (".gitignore", "/dist\n"),
    (
        ".molten/wit/skill.wit",
        include_str!("../../../wit/skill.wit"),
    ),
];

/// The files of a new Python project.
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../../templates/python/app.py")),
    (
        "skill.toml",
        include_str!("../../templates/python/skill.toml"),
    ),
    (
        "tests.toml",
        include_str!("../../templates/python/tests.toml"),
    ),
    (
        "README.md",
        include_str!("../../templates/python/README.md"),
    ),
    (".gitignore", "/dist\n__pycache__/\n"),
    (
        ".molten/wit/skill.wit",
        include_str!("../../../wit/skill.wit"),
    ),
];

/// The files of a new Rust project, with `{{name}}`, `{{crate}}` and `{{molten_version}}` to
/// fill.
const RUST: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    (
        "skill.toml",
        include_str!("../../templates/rust/skill.toml"),
    ),
    (
        "tests.toml",
        include_str!("../../templates/rust/tests.toml"),
    ),
    ("README.md", include_str!("../../templates/rust/README.md")),
    (".gitignore", "/target\n/dist\n"),
    (
        ".cargo/config.toml",
        include_str!("../../templates/rust/cargo-config.toml"),
    ),
    // The SDK, the HTTP client it re-exports, and the contract, as this molten has them.
    (
        ".molten/sdk/Cargo.toml",
        include_str!("../../templates/rust/sdk.Cargo.toml"),
    ),
    (
        ".molten/sdk/src/lib.rs",
        include_str!("../../../skills/sdk/src/lib.rs"),
    ),
    (
        ".molten/sdk/wit/skill.wit",
        include_str!("../../../wit/skill.wit"),
    ),
    (
        ".molten/http/Cargo.toml",
        include_str!("../../templates/rust/http.Cargo.toml"),
    ),
    (
        ".molten/http/src/lib.rs",
        include_str!("../../../skills/http/src/lib.rs"),
    ),
    (
        ".molten/http/src/graph.rs",
        include_str!("../../../skills/http/src/graph.rs"),
    ),
];

/// Writes a new skill project called `name` in `lang` into `dir` (which must not exist or be
/// empty); returns the directory.
pub fn new(name: &str, lang: Lang, dir: &Path) -> Result<PathBuf, AuthorError> {
    if !crate::skills::manifest::is_valid_name(name) {
        return Err(AuthorError::Project(format!(
            "`{name}` cannot be a skill name: use 1 to {} characters from a-z, 0-9 and _, \
             starting with a letter (it is the function name the model calls)",
            crate::skills::manifest::MAX_NAME_LEN
        )));
    }
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(AuthorError::Project(format!(
            "{} exists and is not empty; choose another directory",
            dir.display()
        )));
    }
    let crate_name = name.replace('_', "-");
    let files = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    for (file, template) in files {
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{molten_version}}", env!("CARGO_PKG_VERSION"));
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_written_once_with_its_name_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("word_count");
        new("word_count", Lang::Rust, &project).unwrap();
        let manifest = std::fs::read_to_string(project.join("skill.toml")).unwrap();
        assert!(
            manifest.starts_with("# The manifest") && manifest.contains("name = \"word_count\"")
        );
        let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"word-count\""));
        let code = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(code.contains("name: \"word_count\"") && !code.contains("{{"));
        assert!(project.join(".molten/sdk/wit/skill.wit").is_file());
        let again = new("word_count", Lang::Python, &project)
            .unwrap_err()
            .to_string();
        assert!(again.contains("not empty"), "{again}");
        let python = dir.path().join("csv");
        new("csv", Lang::Python, &python).unwrap();
        let app = std::fs::read_to_string(python.join("app.py")).unwrap();
        assert!(app.contains("name=\"csv\"") && !app.contains("{{"));
        let bad = new("Word-Count", Lang::Rust, &dir.path().join("x"))
            .unwrap_err()
            .to_string();
        assert!(bad.contains("cannot be a skill name"), "{bad}");
    }
}
