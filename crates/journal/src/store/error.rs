//! How a store fails, as messages name it.

use std::path::PathBuf;

use crate::event::FORMAT_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open journal {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{} is not a Baton journal or bundle ({reason})", path.display())]
    Foreign { path: PathBuf, reason: String },
    #[error(
        "{} uses journal format {found}, newer than this Baton understands ({FORMAT_VERSION}); \
         upgrade Baton to read it",
        path.display()
    )]
    NewerFormat { path: PathBuf, found: u32 },
    #[error("journal {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("journal {}: event {run}/{chain}/{seq} is not readable: {reason}", path.display())]
    BadEvent {
        path: PathBuf,
        run: String,
        chain: String,
        seq: i64,
        reason: String,
    },
    #[error("store {location}: {reason}")]
    Server { location: String, reason: String },
    #[error("store {location}: event {run}/{chain}/{seq} is not readable: {reason}")]
    BadRow {
        location: String,
        run: String,
        chain: String,
        seq: i64,
        reason: String,
    },
    #[error("journal {}: its transparency log: {reason}", path.display())]
    Log { path: PathBuf, reason: String },
    #[error("the journal writer recorded no chain '{chain}' of run {run}")]
    NoChain { run: String, chain: String },
    #[error("the journal writer stopped; events may not have been saved")]
    WriterGone,
    #[error("cannot write bundle {}: {source}; check that its directory exists and is writable", path.display())]
    WriteBundle {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    /// The root of chain `chain` of run `run` that a writer sends on `answer` once it has
    /// hashed the chain (`None`: it recorded no such chain).
    pub fn root_from(
        answer: &std::sync::mpsc::Receiver<Option<String>>,
        run: &str,
        chain: &str,
    ) -> Result<String, StoreError> {
        answer
            .recv()
            .map_err(|_| StoreError::WriterGone)?
            .ok_or_else(|| StoreError::NoChain {
                run: run.into(),
                chain: chain.into(),
            })
    }
}
