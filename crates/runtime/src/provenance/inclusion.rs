//! A signed run's place in the transparency log: the proof a bundle carries to the checkpoint
//! it carries, and, for a verifier who holds a checkpoint of their own (saved earlier, or
//! from a witness), the proof that the run is in the log that checkpoint describes.

use baton_journal::store::Inclusion;
use baton_journal::tlog::{self, Hash};

use super::ProofError;
use crate::checkpoint::{Checkpoint, NoteKey};

/// Checks that the signed run (whose envelope is `envelope`) is the leaf `inclusion` says,
/// in a log whose checkpoint one of `keys` signed; returns where, as "N of SIZE".
pub fn check_inclusion(
    envelope: &str,
    inclusion: &Inclusion,
    keys: &[NoteKey],
) -> Result<String, ProofError> {
    included(envelope, inclusion, keys)?;
    Ok(format!("{} of {}", inclusion.index + 1, inclusion.size))
}

/// Checks that the signed run is in the log that the checkpoint `held` describes: its proof
/// to its own checkpoint as [`check_inclusion`] does, then that one of the two logs extends
/// the other, with the proof `consistency(old, new)` gives (where the log is kept). A run
/// logged after `held` was signed is not in it. Returns where, as "N of SIZE" of `held`.
pub fn check_in_checkpoint(
    envelope: &str,
    inclusion: &Inclusion,
    held: &str,
    keys: &[NoteKey],
    consistency: impl FnOnce(u64, u64) -> Result<Vec<Hash>, String>,
) -> Result<String, ProofError> {
    let carried = included(envelope, inclusion, keys)?;
    let (held, _) = Checkpoint::open(held, keys)
        .map_err(|e| ProofError::NotInLog(format!("the checkpoint given: {e}")))?;
    let place = inclusion.index + 1;
    if inclusion.index >= held.size {
        return Err(ProofError::NotInLog(format!(
            "it is run {place} of the log, and the checkpoint given holds {}: it was logged \
             after that checkpoint",
            held.size
        )));
    }
    let (old, new) = if held.size <= carried.size {
        (&held, &carried)
    } else {
        (&carried, &held)
    };
    let proof = match old.size == new.size {
        true => Vec::new(),
        false => consistency(old.size, new.size).map_err(|e| {
            ProofError::NotInLog(format!(
                "no proof that the log of {} runs extends the log of {}: {e}",
                new.size, old.size
            ))
        })?,
    };
    if !tlog::verify_consistency((old.size, &old.root), (new.size, &new.root), &proof) {
        return Err(ProofError::NotInLog(match old.size == new.size {
            true => format!(
                "the checkpoint given and the run's disagree on the log of {} runs: one of \
                 them is of a rewritten log",
                old.size
            ),
            false => format!(
                "the log of {} runs does not extend the log of {}: a logged run was removed or \
                 rewritten",
                new.size, old.size
            ),
        }));
    }
    Ok(format!("{place} of {}", held.size))
}

/// The checkpoint `inclusion` carries, once its signature and the proof to it hold.
fn included(
    envelope: &str,
    inclusion: &Inclusion,
    keys: &[NoteKey],
) -> Result<Checkpoint, ProofError> {
    let (checkpoint, _) = Checkpoint::open(&inclusion.checkpoint, keys)
        .map_err(|e| ProofError::NotInLog(format!("its checkpoint: {e}")))?;
    if checkpoint.size != inclusion.size {
        return Err(ProofError::NotInLog(format!(
            "the proof is to a log of {} runs, the checkpoint of {}",
            inclusion.size, checkpoint.size
        )));
    }
    let leaf = tlog::leaf_hash(envelope.as_bytes());
    match tlog::verify_inclusion(
        &leaf,
        inclusion.index,
        inclusion.size,
        &inclusion.proof,
        &checkpoint.root,
    ) {
        true => Ok(checkpoint),
        false => Err(ProofError::NotInLog(format!(
            "the proof does not lead from its signed statement at {} to the signed root of {} \
             runs",
            inclusion.index, inclusion.size
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_journal::tlog::MemoryLog;
    use baton_trust::signing::{SigningKey, generate};

    /// A host that signs checkpoints.
    struct Host {
        key: SigningKey,
        public: String,
    }

    impl Host {
        fn new() -> Self {
            let (private, public) = generate(b"test").unwrap();
            let key = SigningKey::open(&private, "host", b"test").unwrap();
            Host { key, public }
        }

        fn keys(&self) -> Vec<NoteKey> {
            vec![NoteKey::parse("host", &self.public).unwrap()]
        }

        /// Its checkpoint of the first `size` runs of `log`.
        fn checkpoint(&self, log: &MemoryLog, size: u64) -> String {
            let root = tlog::root(log, size).unwrap();
            Checkpoint::of(&self.public, size, root)
                .unwrap()
                .sign(&self.key, &self.public)
                .unwrap()
        }

        /// The proof of run `index` that a bundle exported at `size` carries.
        fn inclusion(&self, log: &MemoryLog, index: u64, size: u64) -> Inclusion {
            Inclusion {
                index,
                size,
                proof: tlog::inclusion_proof(log, index, size).unwrap(),
                checkpoint: self.checkpoint(log, size),
            }
        }

        fn check(
            &self,
            log: &MemoryLog,
            (index, carried): (u64, u64),
            held: &str,
        ) -> Result<String, ProofError> {
            check_in_checkpoint(
                &statement(index),
                &self.inclusion(log, index, carried),
                held,
                &self.keys(),
                |old, new| tlog::consistency_proof(log, old, new),
            )
        }
    }

    fn statement(index: u64) -> String {
        format!("run {index}")
    }

    /// A log of the statements of runs `0..size`, run `rewritten` (if any) changed.
    fn log(size: u64, rewritten: Option<u64>) -> MemoryLog {
        let mut log = MemoryLog::default();
        for i in 0..size {
            let mut leaf = statement(i);
            if Some(i) == rewritten {
                leaf.push_str(", rewritten");
            }
            log.append(tlog::leaf_hash(leaf.as_bytes()));
        }
        log
    }

    #[test]
    fn a_run_is_in_every_checkpoint_signed_after_it_was_logged() {
        let (host, log) = (Host::new(), log(40, None));
        for (index, carried, held) in [(3, 7, 7), (3, 7, 40), (3, 40, 7), (0, 1, 33), (6, 7, 7)] {
            assert_eq!(
                host.check(&log, (index, carried), &host.checkpoint(&log, held)),
                Ok(format!("{} of {held}", index + 1)),
                "run {index}, proof to {carried}, checkpoint of {held}"
            );
        }
    }

    #[test]
    fn a_run_logged_after_the_checkpoint_is_not_in_it() {
        let (host, log) = (Host::new(), log(10, None));
        let err = host
            .check(&log, (7, 10), &host.checkpoint(&log, 5))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("it is run 8 of the log, and the checkpoint given holds 5"),
            "{err}"
        );
    }

    #[test]
    fn a_checkpoint_of_a_rewritten_log_is_refused() {
        let (host, log) = (Host::new(), log(12, None));
        // The same host signs a log whose run 2 was rewritten.
        let forked = self::log(12, Some(2));
        let same_size = host
            .check(&log, (5, 12), &host.checkpoint(&forked, 12))
            .unwrap_err();
        assert!(
            same_size
                .to_string()
                .contains("disagree on the log of 12 runs"),
            "{same_size}"
        );
        let larger = host
            .check(&log, (5, 8), &host.checkpoint(&forked, 12))
            .unwrap_err();
        assert!(
            larger
                .to_string()
                .contains("the log of 12 runs does not extend the log of 8"),
            "{larger}"
        );
    }

    #[test]
    fn a_checkpoint_signed_by_another_host_is_refused() {
        let (host, other, log) = (Host::new(), Host::new(), log(4, None));
        let err = host
            .check(&log, (1, 4), &other.checkpoint(&log, 4))
            .unwrap_err();
        assert!(err.to_string().contains("the checkpoint given"), "{err}");
    }

    #[test]
    fn without_a_consistency_proof_a_checkpoint_of_another_size_proves_nothing() {
        let (host, log) = (Host::new(), log(9, None));
        let err = check_in_checkpoint(
            &statement(1),
            &host.inclusion(&log, 1, 4),
            &host.checkpoint(&log, 9),
            &host.keys(),
            |_, _| Err("the bundle holds no log".into()),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(
                "no proof that the log of 9 runs extends the log of 4: the bundle holds no log"
            ),
            "{err}"
        );
    }
}
