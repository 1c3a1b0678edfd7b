//! The guest's view of journaled filesystem answers: stats, descriptor types, error codes.

use baton_effects::fs::{self as world, Opened};
use baton_journal::event::{FileStat, FsAnswer, Timestamp};

use super::types::{DescriptorStat, DescriptorType, ErrorCode, MetadataHashValue};

pub(super) fn stat_of((answer, _): (FsAnswer, Opened)) -> DescriptorStat {
    let stat = match answer {
        FsAnswer::Stat { stat } => stat,
        _ => FileStat {
            accessed: None,
            links: 0,
            modified: None,
            node: "unknown".into(),
            size: 0,
        },
    };
    let time = |t: Option<Timestamp>| {
        t.map(
            |t| wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime {
                seconds: t.seconds,
                nanoseconds: t.nanos,
            },
        )
    };
    DescriptorStat {
        type_: descriptor_type(&stat.node),
        link_count: stat.links,
        size: stat.size,
        data_access_timestamp: time(stat.accessed),
        data_modification_timestamp: time(stat.modified),
        status_change_timestamp: None,
    }
}

pub(super) fn descriptor_type(name: &str) -> DescriptorType {
    match name {
        "directory" => DescriptorType::Directory,
        "regular-file" => DescriptorType::RegularFile,
        "symbolic-link" => DescriptorType::SymbolicLink,
        _ => DescriptorType::Unknown,
    }
}

/// The guest's error code for a journaled one (see `baton_effects::fs`).
pub(super) fn error_code(code: &str) -> ErrorCode {
    match code {
        "no-entry" => ErrorCode::NoEntry,
        "access" => ErrorCode::Access,
        "exist" => ErrorCode::Exist,
        "not-directory" => ErrorCode::NotDirectory,
        "is-directory" => ErrorCode::IsDirectory,
        "not-empty" => ErrorCode::NotEmpty,
        "invalid" => ErrorCode::Invalid,
        "illegal-byte-sequence" => ErrorCode::IllegalByteSequence,
        "insufficient-space" => ErrorCode::InsufficientSpace,
        "read-only" => ErrorCode::ReadOnly,
        "file-too-large" => ErrorCode::FileTooLarge,
        "unsupported" => ErrorCode::Unsupported,
        "loop" => ErrorCode::Loop,
        world::NOT_PERMITTED => ErrorCode::NotPermitted,
        _ => ErrorCode::Io,
    }
}

pub(super) fn path_hash(path: &str) -> MetadataHashValue {
    let digest = baton_core::Digest::of(path.as_bytes()).to_string();
    let hex = digest.trim_start_matches("sha256:");
    let word = |at: usize| u64::from_str_radix(&hex[at..at + 16], 16).unwrap_or_default();
    MetadataHashValue {
        lower: word(0),
        upper: word(16),
    }
}
