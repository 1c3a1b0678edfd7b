//! `baton build`: runs the project's toolchain and leaves `NAME.wasm` in the project, saying
//! exactly what to install when a tool is missing. The toolchain's messages go to standard
//! error; standard output has only the line naming what was built.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;

use baton::policy::requests::{self, Requests};

use super::{Component, Kind, Language, Manifest};
use crate::cli::Failure;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project (made by `baton new`)
    #[arg(default_value = ".", value_name = "DIR")]
    dir: PathBuf,
}

/// The componentize-py release the Python templates are tested with.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

pub fn run(args: BuildArgs) -> Result<(), Failure> {
    let dir = &args.dir;
    let Manifest {
        component,
        requests,
    } = Manifest::read(dir)?;
    let out = dir.join(format!("{}.wasm", component.name));
    toolchain(component.language)?;
    eprintln!(
        "building the {} {} ({})",
        component.kind.name(),
        component.name,
        component.language.name()
    );
    match component.language {
        Language::Rust => rust(dir, &component, &out)?,
        Language::Python => python(dir, component.kind, &out)?,
        Language::Js => js(dir)?,
    }
    let mut bytes = std::fs::read(&out).map_err(|e| {
        Failure::Usage(format!(
            "the build finished but {} cannot be read: {e}",
            out.display()
        ))
    })?;
    if !requests.is_empty() {
        write_requests(&out, &mut bytes, &requests)?;
    }
    println!(
        "{}  {}  {}",
        out.display(),
        baton::limits::size(bytes.len() as u64),
        baton::Digest::of(&bytes)
    );
    // A rebuilt component's earlier signature no longer holds: it is replaced on purpose.
    let again = match baton::trust::check::with_suffix(&out, ".sig").exists() {
        true => " --force",
        false => "",
    };
    eprintln!(
        "next: baton sign{again} --key baton.key {}",
        out.file_name().expect("a file").to_string_lossy()
    );
    Ok(())
}

/// Appends the `baton:requests` section to the component at `out` (whose bytes are `bytes`),
/// replacing the file whole.
fn write_requests(out: &Path, bytes: &mut Vec<u8>, requests: &Requests) -> Result<(), Failure> {
    use wasm_encoder::{ComponentSection, CustomSection};
    let data = serde_json::to_vec(requests).expect("requests serialize");
    CustomSection {
        name: requests::SECTION.into(),
        data: data.into(),
    }
    .append_to_component(bytes);
    crate::cli::sign::write_whole(out, bytes, false, true)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", out.display())))
}

/// Fails, saying what to install, when the language's toolchain is missing.
fn toolchain(language: Language) -> Result<(), Failure> {
    match language {
        Language::Rust => {
            need("cargo", "Rust with rustup")?;
            // Without rustup (a distribution's Rust) cargo itself reports a missing target.
            let targets = Command::new("rustup")
                .args(["target", "list", "--installed"])
                .output();
            if let Ok(targets) = targets
                && !String::from_utf8_lossy(&targets.stdout).contains("wasm32-wasip2")
            {
                return Err(Failure::Usage(
                    "the Rust target wasm32-wasip2 is not installed: run `rustup target add \
                     wasm32-wasip2`, then `baton build` again"
                        .into(),
                ));
            }
            Ok(())
        }
        Language::Python => need(
            "componentize-py",
            &format!("componentize-py (`python3 -m pip install {COMPONENTIZE_PY}`)"),
        ),
        Language::Js => {
            need("node", "Node.js 20 or later, with npm")?;
            need("npm", "npm (it comes with Node.js)")
        }
    }
}

/// `cargo build --release --target wasm32-wasip2`, then the `.wasm` cargo reports copied to
/// `out`.
fn rust(dir: &Path, component: &Component, out: &Path) -> Result<(), Failure> {
    let mut child = Command::new("cargo")
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Usage(format!("cannot run cargo: {e}")))?;
    // Cargo names each artifact it builds on standard output, one JSON line each.
    let mut built = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && let Some(files) = message["filenames"].as_array()
        {
            built = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(built);
        }
    }
    finished("cargo", child.wait())?;
    let built = built.ok_or_else(|| {
        Failure::Usage(format!(
            "cargo built no .wasm for {}: Cargo.toml must keep crate-type = [\"cdylib\"]",
            component.name
        ))
    })?;
    std::fs::copy(&built, out).map_err(|e| {
        Failure::Usage(format!(
            "cannot copy {} to {}: {e}",
            built.display(),
            out.display()
        ))
    })?;
    Ok(())
}

/// `componentize-py` with the project's WIT and world, from `app.py`.
fn python(dir: &Path, kind: Kind, out: &Path) -> Result<(), Failure> {
    let status = Command::new("componentize-py")
        .current_dir(dir)
        .args(["-d", "wit", "-w", &format!("baton:plugin/{}", kind.name())])
        .args(["componentize", "app", "-o"])
        .arg(out.file_name().expect("a file"))
        .stdout(std::io::stderr())
        .status();
    finished("componentize-py", status)
}

/// componentize-js through the project's `build.mjs`, installing it with npm first when
/// `node_modules/` lacks it.
fn js(dir: &Path) -> Result<(), Failure> {
    if !dir
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        eprintln!("installing componentize-js into node_modules/ (npm install)");
        let status = Command::new("npm")
            .current_dir(dir)
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .stdout(std::io::stderr())
            .status();
        finished("npm install", status)?;
    }
    let status = Command::new("node")
        .current_dir(dir)
        .arg("build.mjs")
        .stdout(std::io::stderr())
        .status();
    finished("node build.mjs", status)
}

/// Fails, saying what to install, when `program` cannot be run.
fn need(program: &str, install: &str) -> Result<(), Failure> {
    match Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::Usage(format!(
            "`{program}` is not installed (or not on PATH): install {install}, then run `baton \
             build` again"
        ))),
        Err(e) => Err(Failure::Usage(format!("cannot run `{program}`: {e}"))),
    }
}

/// Whether a toolchain step succeeded; its own messages are already on standard error.
fn finished(what: &str, status: std::io::Result<std::process::ExitStatus>) -> Result<(), Failure> {
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(Failure::Usage(format!(
            "{what} failed ({status}); its messages are above"
        ))),
        Err(e) => Err(Failure::Usage(format!("cannot run {what}: {e}"))),
    }
}
