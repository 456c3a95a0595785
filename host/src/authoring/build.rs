//! `molten skill build`: molten's toolchain (for Rust, installed by the same script the
//! repository uses when a piece is missing; for Python, componentize-py from PyPI in a virtual
//! environment of its own), and the component laid out as the host loads it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io, AuthorError};

/// The repository's toolchain installer, run when a piece is missing.
const TOOLCHAIN_SCRIPT: &str = include_str!("../../../scripts/toolchain");

/// What the guest build needs, with the package or command that provides each.
const PIECES: &[(&str, &str)] = &[
    ("/usr/bin/rustc", "apt package rustc-web"),
    ("/usr/bin/cargo", "apt package cargo-web"),
    (
        "/usr/lib/rustlib/src/rust/library",
        "apt package rust-web-src",
    ),
    ("/usr/bin/wasm-ld-19", "apt package lld-19"),
    (
        "/usr/lib/wasm32-wasi/crt1-reactor.o",
        "apt package wasi-libc",
    ),
];

/// A built skill: the component and its manifest, side by side.
#[derive(Debug, Clone)]
pub struct Built {
    /// The skill's name.
    pub name: String,
    /// `dist/<name>.wasm`.
    pub component: PathBuf,
    /// `dist/<name>.toml`.
    pub manifest: PathBuf,
}

fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}

/// The pieces of the toolchain that are missing, each with what provides it.
pub fn missing_pieces() -> Vec<String> {
    let mut missing: Vec<String> = PIECES
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, from)| format!("{path} ({from})"))
        .collect();
    if !cargo_bin().join("wasm-component-ld").exists() {
        missing.push("wasm-component-ld (cargo install wasm-component-ld)".into());
    }
    missing
}

/// Installs the missing pieces with the repository's toolchain script.
fn ensure_toolchain() -> Result<(), AuthorError> {
    let missing = missing_pieces();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing the skill toolchain: {}", missing.join(", "));
    let status = Command::new("bash")
        .args(["-c", TOOLCHAIN_SCRIPT])
        .status()
        .map_err(|e| {
            AuthorError::Toolchain(format!("cannot run bash to install the toolchain: {e}"))
        })?;
    let still = missing_pieces();
    if !status.success() || !still.is_empty() {
        return Err(AuthorError::Toolchain(format!(
            "the skill toolchain is incomplete: missing {}; install with `sudo apt-get install \
             rustc-web cargo-web rust-web-src lld-19 wasi-libc` and `cargo install \
             wasm-component-ld`",
            if still.is_empty() { missing } else { still }.join(", ")
        )));
    }
    Ok(())
}

/// The string at `keys` (a path of table keys) in the TOML file `file` of project `dir`.
fn toml_field(dir: &Path, file: &str, keys: &[&str]) -> Result<String, AuthorError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        AuthorError::Project(format!(
            "{}: {e}; is {} a skill project (made by `molten skill new`)?",
            path.display(),
            dir.display()
        ))
    })?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| AuthorError::Project(format!("{}: {}", path.display(), e.message())))?;
    let mut value = Some(&toml::Value::Table(table));
    for key in keys {
        value = value.and_then(|v| v.get(key));
    }
    value
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            AuthorError::Project(format!(
                "{}: field `{}` is missing",
                path.display(),
                keys.join(".")
            ))
        })
}

/// The skill name in `dir/skill.toml`.
fn skill_name(dir: &Path) -> Result<String, AuthorError> {
    toml_field(dir, "skill.toml", &["name"])
}

/// The crate name in `dir/Cargo.toml`, as the component file is named (`-` as `_`).
fn crate_file(dir: &Path) -> Result<String, AuthorError> {
    Ok(toml_field(dir, "Cargo.toml", &["package", "name"])?.replace('-', "_"))
}

/// The componentize-py release Python skills are built with.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The componentize-js release JavaScript skills are built with.
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

/// Compiles the project in `dir` (a Rust crate, or a Python `app.py`; the compiler's output
/// shown as it comes) and lays the component and manifest out in `dir/dist` as `<name>.wasm`
/// and `<name>.toml`.
pub fn build(dir: &Path) -> Result<Built, AuthorError> {
    let name = skill_name(dir)?;
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).map_err(io(&dist))?;
    let component = dist.join(format!("{name}.wasm"));
    if dir.join("app.py").is_file() {
        build_python(dir, &component)?;
    } else if dir.join("app.js").is_file() {
        build_js(dir, &component)?;
    } else {
        let built = build_rust(dir, &name)?;
        std::fs::copy(&built, &component).map_err(io(&built))?;
    }
    let manifest = dist.join(format!("{name}.toml"));
    std::fs::copy(dir.join("skill.toml"), &manifest).map_err(io(dir.join("skill.toml")))?;
    Ok(Built {
        name,
        component,
        manifest,
    })
}

/// Where molten keeps the tools it installs for skill authors.
fn tools_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("molten")
}

/// componentize-py, installed into a virtual environment of molten's own when missing.
fn componentize_py() -> Result<PathBuf, AuthorError> {
    let venv = tools_dir().join(COMPONENTIZE_PY.replace("==", "-"));
    let tool = venv.join("bin").join("componentize-py");
    if tool.is_file() {
        return Ok(tool);
    }
    eprintln!("installing {COMPONENTIZE_PY} into {}", venv.display());
    let missing = |what: &str, e: &dyn std::fmt::Display| {
        AuthorError::Toolchain(format!(
            "cannot {what} ({e}); Python skills need python3 with venv (apt package \
             python3-venv) and {COMPONENTIZE_PY} from PyPI"
        ))
    };
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| missing("run python3", &e))?;
    if !made.success() {
        return Err(missing("make a virtual environment", &made));
    }
    let installed = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", COMPONENTIZE_PY])
        .status()
        .map_err(|e| missing("run pip", &e))?;
    if !installed.success() || !tool.is_file() {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(missing("install componentize-py", &installed));
    }
    Ok(tool)
}

/// `componentize-py` on `dir/app.py` against the vendored WIT.
fn build_python(dir: &Path, component: &Path) -> Result<(), AuthorError> {
    let args = [
        "-d",
        ".molten/wit",
        "-w",
        "skill",
        "componentize",
        "app",
        "-o",
    ];
    componentize(&componentize_py()?, &args, dir, component, "app.py")
}

/// Runs `tool` with `args` and the output path `component` in `dir`; its messages go to the
/// terminal, and a failure says `source` did not build.
fn componentize(
    tool: &Path,
    args: &[&str],
    dir: &Path,
    component: &Path,
    source: &str,
) -> Result<(), AuthorError> {
    let name = tool.file_name().map_or_else(
        || tool.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let status = Command::new(tool)
        .args(args)
        .arg(component)
        .current_dir(dir)
        .status()
        .map_err(|e| AuthorError::Toolchain(format!("cannot run {name}: {e}")))?;
    if !status.success() {
        return Err(AuthorError::Compile(format!(
            "{source} did not build; {name}'s messages are above"
        )));
    }
    Ok(())
}

/// componentize-js, installed with npm into a directory of molten's own when missing.
fn componentize_js() -> Result<PathBuf, AuthorError> {
    let prefix = tools_dir().join("componentize-js-0.23.0");
    let tool = prefix.join("node_modules/.bin/componentize-js");
    if tool.is_file() {
        return Ok(tool);
    }
    eprintln!("installing {COMPONENTIZE_JS} into {}", prefix.display());
    std::fs::create_dir_all(&prefix).map_err(io(&prefix))?;
    let installed = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(COMPONENTIZE_JS)
        .status();
    match installed {
        Ok(status) if status.success() && tool.is_file() => Ok(tool),
        outcome => {
            let _ = std::fs::remove_dir_all(&prefix);
            Err(AuthorError::Toolchain(format!(
                "cannot install componentize-js ({}); JavaScript skills need Node.js 18 or \
                 later with npm (apt packages nodejs and npm) and {COMPONENTIZE_JS}",
                match outcome {
                    Ok(status) => status.to_string(),
                    Err(e) => e.to_string(),
                }
            )))
        }
    }
}

/// `componentize-js` on `dir/app.js` against the vendored WIT.
fn build_js(dir: &Path, component: &Path) -> Result<(), AuthorError> {
    let args = [
        "app.js",
        "--wit",
        ".molten/wit",
        "-n",
        "skill",
        "-d",
        "fetch-event",
        "-o",
    ];
    componentize(&componentize_js()?, &args, dir, component, "app.js")
}

/// `cargo build` of the crate in `dir`; returns the component it made.
fn build_rust(dir: &Path, name: &str) -> Result<PathBuf, AuthorError> {
    let crate_file = crate_file(dir)?;
    ensure_toolchain()?;
    let path = format!(
        "{}:{}",
        cargo_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("/usr/bin/cargo")
        .args(["build", "--release"])
        .current_dir(dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("PATH", path)
        // The host's own flags must not leak into the guest build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .map_err(|e| AuthorError::Toolchain(format!("cannot run /usr/bin/cargo: {e}")))?;
    if !status.success() {
        return Err(AuthorError::Compile(format!(
            "{name} did not compile; the compiler's messages are above"
        )));
    }
    // CARGO_TARGET_DIR, when set, wins over the project's target-dir, as it does for cargo.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| dir.join(t))
        .unwrap_or_else(|| dir.join("target"));
    Ok(target
        .join("wasm32-wasip2/release")
        .join(format!("{crate_file}.wasm")))
}
