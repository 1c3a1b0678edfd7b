//! `baton new`: a project that builds into a component of the right world, from templates
//! compiled into the binary (with Baton's WIT), so it needs no checkout of Baton's sources.

use std::path::{Path, PathBuf};

use clap::Args;

#[cfg(test)]
use super::Manifest;
use super::{Kind, Language, MANIFEST, check_name};
use crate::cli::Failure;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// What to make: a tool, a prompt or a planner
    #[arg(value_enum)]
    kind: Kind,
    /// Its name: lowercase letters, digits and dashes (the tool's name in policies)
    name: String,
    /// The language to write it in
    #[arg(long, value_enum)]
    lang: Language,
    /// Where to write the project [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Baton's WIT, which every project builds against.
const WIT: [(&str, &str); 3] = [
    (
        "wit/worlds.wit",
        include_str!("../../../../../wit/worlds.wit"),
    ),
    ("wit/host.wit", include_str!("../../../../../wit/host.wit")),
    (
        "wit/types.wit",
        include_str!("../../../../../wit/types.wit"),
    ),
];

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("../../../templates/", $path))
    };
}

/// The component's source: its path in the project, and its template.
fn source(kind: Kind, lang: Language, name: &str) -> (String, &'static str) {
    let text = match (lang, kind) {
        (Language::Rust, Kind::Tool) => template!("rust/tool.rs"),
        (Language::Rust, Kind::Prompt) => template!("rust/prompt.rs"),
        (Language::Rust, Kind::Planner) => template!("rust/planner.rs"),
        (Language::Python, Kind::Tool) => template!("python/tool.py"),
        (Language::Python, Kind::Prompt) => template!("python/prompt.py"),
        (Language::Python, Kind::Planner) => template!("python/planner.py"),
        (Language::Js, Kind::Tool) => template!("js/tool.js"),
        (Language::Js, Kind::Prompt) => template!("js/prompt.js"),
        (Language::Js, Kind::Planner) => template!("js/planner.js"),
    };
    let path = match lang {
        Language::Rust => "src/lib.rs".to_string(),
        Language::Python => "app.py".to_string(),
        Language::Js => format!("{name}.js"),
    };
    (path, text)
}

/// Every other file of the project: its path and its template.
fn files(kind: Kind, lang: Language) -> Vec<(&'static str, &'static str)> {
    let examples = match kind {
        Kind::Tool => template!("common/examples-tool.json"),
        Kind::Prompt => template!("common/examples-prompt.json"),
        Kind::Planner => template!("common/examples-planner.json"),
    };
    let mut files = vec![
        ("README.md", template!("common/README.md")),
        ("policy.toml", template!("common/policy.toml")),
        (MANIFEST, template!("common/baton.toml")),
        ("examples.json", examples),
    ];
    files.extend(match lang {
        Language::Rust => vec![
            ("Cargo.toml", template!("rust/Cargo.toml")),
            ("tests/examples.rs", template!("rust/examples.rs")),
        ],
        Language::Python => vec![("test_examples.py", template!("python/test_examples.py"))],
        Language::Js => vec![
            ("package.json", template!("js/package.json")),
            ("build.mjs", template!("js/build.mjs")),
            ("test.mjs", template!("js/test.mjs")),
        ],
    });
    files
}

/// What the README says for each language: (language, what to install, test command, test
/// files).
fn language_notes(lang: Language) -> [&'static str; 4] {
    match lang {
        Language::Rust => [
            "Rust",
            "Rust with its `wasm32-wasip2` target (`rustup target add wasm32-wasip2`)",
            "cargo test",
            "`tests/examples.rs`",
        ],
        Language::Python => [
            "Python",
            "componentize-py (`python3 -m pip install componentize-py`)",
            "python3 -m unittest",
            "`test_examples.py`",
        ],
        Language::Js => [
            "JavaScript",
            "Node.js 20 or later with npm (`baton build` installs componentize-js into \
             `node_modules/` the first time)",
            "npm test",
            "`test.mjs`",
        ],
    }
}

/// What the README says the component does, and the command that tries it.
fn kind_notes(kind: Kind, name: &str) -> [String; 2] {
    let policy = "baton --policy policy.toml";
    match kind {
        Kind::Tool => [
            "It greets someone by name, and refuses a blank name.".into(),
            format!("{policy} call {name}.wasm --input '{{\"name\": \"Ada\"}}'"),
        ],
        Kind::Prompt => [
            "It asks a model to answer a question briefly, and refuses a blank question.".into(),
            format!(
                "{policy} call {name}.wasm --input '{{\"question\": \"What is WebAssembly?\"}}'"
            ),
        ],
        Kind::Planner => [
            "It calls one tool with the run's input and finishes with its output (given no \
             tools, it finishes with the task)."
                .into(),
            format!("{policy} run --planner {name}.wasm \"say hello\""),
        ],
    }
}

/// The project's files, rendered: (path, text).
fn render(kind: Kind, lang: Language, name: &str) -> Vec<(String, String)> {
    let (source_path, source_text) = source(kind, lang, name);
    let [language, install, test, test_file] = language_notes(lang);
    let [about, try_it] = kind_notes(kind, name);
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{kind}}", kind.name())
            .replace("{{lang}}", lang.name())
            .replace("{{language}}", language)
            .replace("{{install}}", install)
            .replace("{{test}}", test)
            .replace("{{test_file}}", test_file)
            .replace("{{about}}", &about)
            .replace("{{try}}", &try_it)
            .replace("{{source}}", &source_path)
    };
    let mut rendered: Vec<(String, String)> = files(kind, lang)
        .into_iter()
        .map(|(path, text)| (path.to_string(), fill(text)))
        .collect();
    rendered.push((source_path.clone(), fill(source_text)));
    // The WIT as it is: its comments show step templates in braces.
    rendered.extend(WIT.map(|(path, text)| (path.to_string(), text.to_string())));
    let ignored = match lang {
        Language::Rust => "/target\n",
        Language::Python => "__pycache__/\n",
        Language::Js => "node_modules/\n",
    };
    rendered.push((
        ".gitignore".into(),
        format!("{}{ignored}", template!("common/gitignore")),
    ));
    rendered
}

pub fn run(args: NewArgs) -> Result<(), Failure> {
    check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let files = render(args.kind, args.lang, &args.name);
    write_project(&dir, &files)?;
    eprintln!(
        "made the {} {} ({}) in {}",
        args.kind.name(),
        args.name,
        language_notes(args.lang)[0],
        dir.display()
    );
    eprintln!("next: cd {} && baton keygen && baton build", dir.display());
    Ok(())
}

/// Writes the project into `dir` whole or not at all: into a new directory beside it, renamed
/// into place at the end. `dir` must not exist, or be empty.
fn write_project(dir: &Path, files: &[(String, String)]) -> Result<(), Failure> {
    let fail = |what: String| Failure::Usage(what);
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(fail(format!(
            "{} already exists and is not empty: choose another --dir, or remove it",
            dir.display()
        )));
    }
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let staging = tempfile::Builder::new()
        .prefix(".baton-new-")
        .tempdir_in(&parent)
        .map_err(|e| fail(format!("cannot write in {}: {e}", parent.display())))?;
    for (path, text) in files {
        let path = staging.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    }
    // A temporary directory is private to its owner; a project is not.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| fail(format!("cannot write in {}: {e}", parent.display())))?;
    }
    // Renaming onto an empty directory replaces it.
    std::fs::rename(staging.path(), dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    // Already moved: nothing left for the guard to remove.
    let _ = staging.keep();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_filled_in_whole() {
        for kind in [Kind::Tool, Kind::Prompt, Kind::Planner] {
            for lang in [Language::Rust, Language::Python, Language::Js] {
                let files = render(kind, lang, "word-count");
                for (path, text) in files.iter().filter(|(p, _)| !p.starts_with("wit/")) {
                    assert!(!text.contains("{{"), "{kind:?} {lang:?} {path}: {text}");
                }
                let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
                for needed in ["baton.toml", "policy.toml", "README.md", "wit/worlds.wit"] {
                    assert!(paths.contains(&needed), "{kind:?} {lang:?}: {paths:?}");
                }
                let manifest = &files.iter().find(|(p, _)| p == "baton.toml").unwrap().1;
                let manifest: Manifest = toml::from_str(manifest).unwrap();
                assert!(manifest.requests.is_empty());
                assert_eq!(manifest.component.kind, kind);
                assert_eq!(manifest.component.language, lang);
                assert_eq!(manifest.component.name, "word-count");
            }
        }
    }
}
