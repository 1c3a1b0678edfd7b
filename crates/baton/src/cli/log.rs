//! `baton log`: the transparency log of signed runs a store keeps, and the proof that it only
//! ever grew.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use baton::Error;
use baton::journal::store::StoreUrl;
use baton::runtime::checkpoint::Checkpoint;
use baton::runtime::provenance::ProofError;
use baton::runtime::stores;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the newest checkpoint the host signed (save it: a later proof is against it)
    Checkpoint,
    /// Prove that the log now extends a checkpoint saved earlier: no logged run was removed
    /// or rewritten since
    ProveConsistency {
        /// The checkpoint saved earlier
        old: PathBuf,
        /// A later checkpoint [default: the newest in the store]
        new: Option<PathBuf>,
        /// The host's public key (from `baton keygen --host`) that signs the checkpoints
        #[arg(long, value_name = "HOST.pub", required = true)]
        key: Vec<PathBuf>,
    },
}

pub fn run(store: &StoreUrl, command: LogCommand) -> Result<(), Error> {
    let opened = stores::open_existing(store)?;
    let log = opened.log();
    let newest = || {
        log.latest_checkpoint()?
            .map(|(_, note)| note)
            .ok_or_else(|| {
                Error::TrustConfig(format!(
                    "{store} holds no checkpoint yet: runs are logged when the host signs them \
                 ([journal] signing_key)"
                ))
            })
    };
    match command {
        LogCommand::Checkpoint => print!("{}", newest()?),
        LogCommand::ProveConsistency { old, new, key } => {
            let (_, keys) = super::trace::host_keys(&key)?;
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).map_err(|e| Error::Key {
                    path: path.clone(),
                    reason: format!("cannot read the checkpoint: {e}"),
                })
            };
            let open = |text: &str, name: &str| {
                Checkpoint::open(text, &keys)
                    .map(|(checkpoint, _)| checkpoint)
                    .map_err(|e| unproven(store, format!("the checkpoint {name}: {e}")))
            };
            let old_checkpoint = open(&read(&old)?, &old.display().to_string())?;
            let new_checkpoint = match &new {
                Some(path) => open(&read(path)?, &path.display().to_string())?,
                None => open(&newest()?, "in the store")?,
            };
            let (old_size, new_size) = (old_checkpoint.size, new_checkpoint.size);
            if old_size > new_size {
                return Err(unproven(
                    store,
                    format!(
                        "the later checkpoint has {new_size} runs, fewer than the {old_size} of the earlier"
                    ),
                ));
            }
            let proof = log.log_consistency(old_size, new_size)?;
            let consistent = baton::journal::tlog::verify_consistency(
                (old_size, &old_checkpoint.root),
                (new_size, &new_checkpoint.root),
                &proof,
            );
            if !consistent {
                return Err(unproven(
                    store,
                    format!(
                        "the log of {} does not extend the checkpoint of {old_size}: a logged \
                         run was removed or rewritten",
                        runs(new_size)
                    ),
                ));
            }
            println!(
                "consistent: the log of {} extends the checkpoint of {old_size}",
                runs(new_size)
            );
            for hash in proof {
                println!("{}", STANDARD.encode(hash));
            }
        }
    }
    Ok(())
}

/// "1 run", "2 runs".
fn runs(n: u64) -> String {
    match n {
        1 => "1 run".into(),
        n => format!("{n} runs"),
    }
}

fn unproven(store: &StoreUrl, reason: String) -> Error {
    Error::Unproven {
        path: PathBuf::from(store.to_string()),
        source: ProofError::Inconsistent(reason),
    }
}
