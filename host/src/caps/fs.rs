//! `wasi:filesystem`: the directories a policy grants (`fs.read`, `fs.write`), preopened at
//! their guest paths. Baton implements the interface itself so that every answer goes through
//! the effect gate (and `effect::fs`, the only code that touches files): reads are journaled
//! with their bytes, so a replay needs none of the files; writes with their size and digest.
//!
//! What the policy refuses — changing anything beneath a read-only directory, or a path that
//! leads outside the granted directories — is a `not-permitted` error for the guest and a
//! `denied` event in the journal. Creating links and setting times are not supported.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, StreamError, StreamResult,
};

use crate::effect::Gate;
use crate::effect::fs::{self as world, FsOp, Node, OpenHow, Opened};
use crate::journal::event::{EventKind, FileStat, FsAnswer};
use crate::state::HostState;

mod generated {
    wasmtime::component::bindgen!({
        path: "wit-wasi",
        world: "baton:wasi/filesystem",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "wasi:filesystem/types.descriptor": crate::effect::fs::Node,
            "wasi:filesystem/types.directory-entry-stream": super::DirEntries,
        },
    });
}

use generated::wasi::filesystem::{preopens, types};
use types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};

type FsResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

/// The rest of a directory listing the guest has not read yet.
pub struct DirEntries(VecDeque<(String, String)>);

/// A filesystem error carried through a stream, for `filesystem-error-code`.
#[derive(Debug, thiserror::Error)]
#[error("filesystem error: {0:?}")]
struct StreamFsError(ErrorCode);

pub fn add_to_linker(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    preopens::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    Ok(())
}

impl HostState {
    /// Runs `op` through the gate, turning an escape into a denial.
    fn fs(&self, node: &Node, op: FsOp) -> Result<(FsAnswer, Opened), ErrorCode> {
        match self.gate.fs(node, &op) {
            (FsAnswer::Failed { code }, _) => Err(match code.as_str() {
                world::ESCAPE => self.deny_fs(&format!(
                    "'{}' leads outside the directories granted to '{}'",
                    op.target(node),
                    self.plugin
                )),
                code => error_code(code),
            }),
            done => Ok(done),
        }
    }

    /// Refuses a change beneath a read-only directory.
    fn refuse_write(&self, node: &Node) -> ErrorCode {
        self.deny_fs(&format!(
            "changing '{}' is not granted to '{}' (its directory is read-only: fs.read)",
            node.path(),
            self.plugin
        ))
    }

    fn deny_fs(&self, message: &str) -> ErrorCode {
        self.gate.emit(EventKind::Denied {
            capability: "fs".into(),
            message: message.into(),
        });
        ErrorCode::NotPermitted
    }

    fn node(&self, fd: &Resource<Node>) -> wasmtime::Result<Node> {
        Ok(self.table.get(fd)?.clone())
    }
}

/// Runs an operation that answers `done`.
macro_rules! unit {
    ($state:expr, $node:expr, $op:expr) => {
        Ok($state.fs(&$node, $op).map(|_| ()))
    };
}

impl types::Host for HostState {
    async fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime_wasi_io::streams::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<StreamFsError>().map(|e| e.0))
    }
}

impl types::HostDescriptor for HostState {
    async fn read_via_stream(
        &mut self,
        fd: Resource<Node>,
        offset: u64,
    ) -> FsResult<Resource<DynInputStream>> {
        let node = self.node(&fd)?;
        if node.is_directory() {
            return Ok(Err(ErrorCode::IsDirectory));
        }
        let reader = FileReader {
            gate: self.gate.clone(),
            node,
            offset,
            ended: false,
        };
        let stream: DynInputStream = Box::new(reader);
        Ok(Ok(self.table.push(stream)?))
    }

    async fn write_via_stream(
        &mut self,
        fd: Resource<Node>,
        offset: u64,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.writer(fd, Some(offset))
    }

    async fn append_via_stream(
        &mut self,
        fd: Resource<Node>,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.writer(fd, None)
    }

    async fn advise(&mut self, _: Resource<Node>, _: u64, _: u64, _: Advice) -> FsResult<()> {
        Ok(Ok(()))
    }

    async fn sync_data(&mut self, fd: Resource<Node>) -> FsResult<()> {
        let node = self.node(&fd)?;
        unit!(self, node, FsOp::Sync)
    }

    async fn sync(&mut self, fd: Resource<Node>) -> FsResult<()> {
        let node = self.node(&fd)?;
        unit!(self, node, FsOp::Sync)
    }

    async fn get_flags(&mut self, fd: Resource<Node>) -> FsResult<DescriptorFlags> {
        let node = self.node(&fd)?;
        let mut flags = DescriptorFlags::READ;
        if node.writable() {
            flags |= match node.is_directory() {
                true => DescriptorFlags::MUTATE_DIRECTORY,
                false => DescriptorFlags::WRITE,
            };
        }
        Ok(Ok(flags))
    }

    async fn get_type(&mut self, fd: Resource<Node>) -> FsResult<DescriptorType> {
        let node = self.node(&fd)?;
        Ok(Ok(match node.is_directory() {
            true => DescriptorType::Directory,
            false => DescriptorType::RegularFile,
        }))
    }

    async fn set_size(&mut self, fd: Resource<Node>, size: u64) -> FsResult<()> {
        let node = self.node(&fd)?;
        if !node.writable() {
            return Ok(Err(self.refuse_write(&node)));
        }
        unit!(self, node, FsOp::SetSize { size })
    }

    async fn set_times(
        &mut self,
        _: Resource<Node>,
        _: NewTimestamp,
        _: NewTimestamp,
    ) -> FsResult<()> {
        Ok(Err(ErrorCode::Unsupported))
    }

    async fn read(
        &mut self,
        fd: Resource<Node>,
        len: u64,
        offset: u64,
    ) -> FsResult<(Vec<u8>, bool)> {
        let node = self.node(&fd)?;
        Ok(self
            .fs(&node, FsOp::Read { offset, len })
            .map(|(answer, _)| match answer {
                FsAnswer::Bytes { data, end } => {
                    (crate::effect::http::decode_body(&data).to_vec(), end)
                }
                _ => (Vec::new(), true),
            }))
    }

    async fn write(&mut self, fd: Resource<Node>, buffer: Vec<u8>, offset: u64) -> FsResult<u64> {
        let node = self.node(&fd)?;
        if !node.writable() {
            return Ok(Err(self.refuse_write(&node)));
        }
        let op = FsOp::Write {
            offset: Some(offset),
            data: &buffer,
        };
        Ok(self.fs(&node, op).map(|(answer, _)| match answer {
            FsAnswer::Count { count } => count,
            _ => 0,
        }))
    }

    async fn read_directory(&mut self, fd: Resource<Node>) -> FsResult<Resource<DirEntries>> {
        let node = self.node(&fd)?;
        if !node.is_directory() {
            return Ok(Err(ErrorCode::NotDirectory));
        }
        let entries = match self.fs(&node, FsOp::ReadDirectory) {
            Ok((FsAnswer::Entries { entries }, _)) => entries,
            Ok(_) => Vec::new(),
            Err(code) => return Ok(Err(code)),
        };
        Ok(Ok(self.table.push(DirEntries(entries.into()))?))
    }

    async fn create_directory_at(&mut self, fd: Resource<Node>, path: String) -> FsResult<()> {
        let node = self.node(&fd)?;
        if !node.in_writable_tree() {
            return Ok(Err(self.refuse_write(&node)));
        }
        unit!(self, node, FsOp::CreateDirectoryAt { path: &path })
    }

    async fn stat(&mut self, fd: Resource<Node>) -> FsResult<DescriptorStat> {
        let node = self.node(&fd)?;
        Ok(self.fs(&node, FsOp::Stat).map(stat_of))
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Node>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        let node = self.node(&fd)?;
        let follow = flags.contains(PathFlags::SYMLINK_FOLLOW);
        Ok(self
            .fs(
                &node,
                FsOp::StatAt {
                    path: &path,
                    follow,
                },
            )
            .map(stat_of))
    }

    async fn set_times_at(
        &mut self,
        _: Resource<Node>,
        _: PathFlags,
        _: String,
        _: NewTimestamp,
        _: NewTimestamp,
    ) -> FsResult<()> {
        Ok(Err(ErrorCode::Unsupported))
    }

    async fn link_at(
        &mut self,
        _: Resource<Node>,
        _: PathFlags,
        _: String,
        _: Resource<Node>,
        _: String,
    ) -> FsResult<()> {
        Ok(Err(ErrorCode::Unsupported))
    }

    async fn open_at(
        &mut self,
        fd: Resource<Node>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Node>> {
        let node = self.node(&fd)?;
        if !node.is_directory() {
            return Ok(Err(ErrorCode::NotDirectory));
        }
        let open = OpenHow {
            create: open_flags.contains(OpenFlags::CREATE),
            exclusive: open_flags.contains(OpenFlags::EXCLUSIVE),
            truncate: open_flags.contains(OpenFlags::TRUNCATE),
            directory: open_flags.contains(OpenFlags::DIRECTORY),
            read: flags.contains(DescriptorFlags::READ),
            write: flags.contains(DescriptorFlags::WRITE),
        };
        if open.directory && (open.create || open.exclusive || open.truncate) {
            return Ok(Err(ErrorCode::Invalid));
        }
        if open.mutates() && !node.in_writable_tree() {
            return Ok(Err(self.refuse_write(&node)));
        }
        let op = FsOp::OpenAt {
            path: &path,
            follow: path_flags.contains(PathFlags::SYMLINK_FOLLOW),
            open,
        };
        match self.fs(&node, op) {
            Ok((_, Opened::Node(opened))) => Ok(Ok(self.table.push(opened)?)),
            Ok((_, Opened::None)) => Ok(Err(ErrorCode::Io)),
            Err(code) => Ok(Err(code)),
        }
    }

    async fn readlink_at(&mut self, fd: Resource<Node>, path: String) -> FsResult<String> {
        let node = self.node(&fd)?;
        Ok(self
            .fs(&node, FsOp::ReadlinkAt { path: &path })
            .map(|(answer, _)| match answer {
                FsAnswer::Text { text } => text,
                _ => String::new(),
            }))
    }

    async fn remove_directory_at(&mut self, fd: Resource<Node>, path: String) -> FsResult<()> {
        let node = self.node(&fd)?;
        if !node.in_writable_tree() {
            return Ok(Err(self.refuse_write(&node)));
        }
        unit!(self, node, FsOp::RemoveDirectoryAt { path: &path })
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Node>,
        from: String,
        to_fd: Resource<Node>,
        to: String,
    ) -> FsResult<()> {
        let (node, to_dir) = (self.node(&fd)?, self.node(&to_fd)?);
        for dir in [&node, &to_dir] {
            if !dir.in_writable_tree() {
                return Ok(Err(self.refuse_write(dir)));
            }
        }
        let op = FsOp::RenameAt {
            from: &from,
            to_dir: &to_dir,
            to: &to,
        };
        unit!(self, node, op)
    }

    async fn symlink_at(&mut self, _: Resource<Node>, _: String, _: String) -> FsResult<()> {
        Ok(Err(ErrorCode::Unsupported))
    }

    async fn unlink_file_at(&mut self, fd: Resource<Node>, path: String) -> FsResult<()> {
        let node = self.node(&fd)?;
        if !node.in_writable_tree() {
            return Ok(Err(self.refuse_write(&node)));
        }
        unit!(self, node, FsOp::UnlinkFileAt { path: &path })
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Node>,
        b: Resource<Node>,
    ) -> wasmtime::Result<bool> {
        Ok(self.node(&a)?.path() == self.node(&b)?.path())
    }

    // Identity is the guest path, so that it is the same in a replay on another machine.
    async fn metadata_hash(&mut self, fd: Resource<Node>) -> FsResult<MetadataHashValue> {
        Ok(Ok(path_hash(self.node(&fd)?.path())))
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Node>,
        _: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        let node = self.node(&fd)?;
        Ok(Ok(path_hash(&format!("{}/{path}", node.path()))))
    }

    async fn drop(&mut self, fd: Resource<Node>) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        Ok(())
    }
}

impl HostState {
    fn writer(
        &mut self,
        fd: Resource<Node>,
        offset: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let node = self.node(&fd)?;
        if node.is_directory() {
            return Ok(Err(ErrorCode::IsDirectory));
        }
        if !node.writable() {
            return Ok(Err(self.refuse_write(&node)));
        }
        let writer = FileWriter {
            gate: self.gate.clone(),
            node,
            offset,
        };
        let stream: DynOutputStream = Box::new(writer);
        Ok(Ok(self.table.push(stream)?))
    }
}

impl types::HostDirectoryEntryStream for HostState {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<DirEntries>,
    ) -> FsResult<Option<DirectoryEntry>> {
        let entries = self.table.get_mut(&stream)?;
        Ok(Ok(entries.0.pop_front().map(|(name, kind)| {
            DirectoryEntry {
                type_: descriptor_type(&kind),
                name,
            }
        })))
    }

    async fn drop(&mut self, stream: Resource<DirEntries>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl preopens::Host for HostState {
    async fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Node>, String)>> {
        let preopens = self.preopens.clone();
        preopens
            .into_iter()
            .map(|node| {
                let path = node.path().to_string();
                Ok((self.table.push(node)?, path))
            })
            .collect()
    }
}

/// Reads a file through the gate, one journaled read per call.
struct FileReader {
    gate: Arc<Gate>,
    node: Node,
    offset: u64,
    ended: bool,
}

#[async_trait::async_trait]
impl Pollable for FileReader {
    async fn ready(&mut self) {}
}

impl InputStream for FileReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.ended {
            return Err(StreamError::Closed);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let op = FsOp::Read {
            offset: self.offset,
            len: size as u64,
        };
        match self.gate.fs(&self.node, &op).0 {
            FsAnswer::Bytes { data, end } => {
                let bytes = crate::effect::http::decode_body(&data);
                self.offset += bytes.len() as u64;
                self.ended = end;
                if bytes.is_empty() && end {
                    return Err(StreamError::Closed);
                }
                Ok(bytes)
            }
            FsAnswer::Failed { code } => Err(stream_error(&code)),
            _ => Err(StreamError::Closed),
        }
    }
}

/// Writes a file through the gate, one journaled write per call.
struct FileWriter {
    gate: Arc<Gate>,
    node: Node,
    /// `None` appends.
    offset: Option<u64>,
}

/// The most a guest may write to a file in one call.
const WRITE_CHUNK: usize = 1 << 20;

#[async_trait::async_trait]
impl Pollable for FileWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for FileWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let op = FsOp::Write {
            offset: self.offset,
            data: &bytes,
        };
        match self.gate.fs(&self.node, &op).0 {
            FsAnswer::Count { count } => {
                if let Some(offset) = &mut self.offset {
                    *offset += count;
                }
                Ok(())
            }
            FsAnswer::Failed { code } => Err(stream_error(&code)),
            _ => Err(StreamError::Closed),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_CHUNK)
    }
}

fn stream_error(code: &str) -> StreamError {
    let code = match code {
        world::ESCAPE => ErrorCode::NotPermitted,
        code => error_code(code),
    };
    StreamError::LastOperationFailed(wasmtime::Error::new(StreamFsError(code)))
}

fn stat_of((answer, _): (FsAnswer, Opened)) -> DescriptorStat {
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
    let time = |t: Option<crate::journal::event::Timestamp>| {
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

fn descriptor_type(name: &str) -> DescriptorType {
    match name {
        "directory" => DescriptorType::Directory,
        "regular-file" => DescriptorType::RegularFile,
        "symbolic-link" => DescriptorType::SymbolicLink,
        _ => DescriptorType::Unknown,
    }
}

/// The guest's error code for a journaled one (see `effect::fs`).
fn error_code(code: &str) -> ErrorCode {
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

fn path_hash(path: &str) -> MetadataHashValue {
    let digest = crate::loader::digest::Digest::of(path.as_bytes()).to_string();
    let hex = digest.trim_start_matches("sha256:");
    let word = |at: usize| u64::from_str_radix(&hex[at..at + 16], 16).unwrap_or_default();
    MetadataHashValue {
        lower: word(0),
        upper: word(16),
    }
}
