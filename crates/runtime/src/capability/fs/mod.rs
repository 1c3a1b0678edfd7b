//! `wasi:filesystem`: the directories a policy grants (`fs.read`, `fs.write`), preopened at
//! their guest paths. Baton implements the interface itself so that every answer goes through
//! the effect gate (and `baton_effects::fs`, the only code that touches files): reads are journaled
//! with their bytes, so a replay needs none of the files; writes with their size and digest.
//!
//! What the policy refuses — changing anything beneath a read-only directory, or a path that
//! leads outside the granted directories — is a `not-permitted` error for the guest and a
//! `denied` event in the journal. Creating links and setting times are not supported.

mod answers;
mod streams;

use std::collections::VecDeque;

use baton_effects::fs::{self as world, FsOp, Node, OpenHow, Opened};
use baton_journal::event::{EventKind, FsAnswer};
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::flow::Flow;
use answers::{descriptor_type, error_code, path_hash, stat_of};
use streams::{FileReader, FileWriter};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit-wasi",
        world: "baton:wasi/filesystem",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "wasi:filesystem/types.descriptor": baton_effects::fs::Node,
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
pub(super) struct StreamFsError(ErrorCode);

pub struct Filesystem;

impl Capability for Filesystem {
    /// The granted directories, preopened.
    type State = Vec<Node>;

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "wasi:filesystem",
        names: &["types", "preopens"],
        version: "0.2.",
    }];

    fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
        types::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
        preopens::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
        Ok(())
    }

    fn prepare(call: &CallSetup<'_>) -> Vec<Node> {
        call.grant.preopens.to_vec()
    }
}

impl HostState {
    /// Runs `op` through the gate, turning an escape into a denial.
    fn fs(&self, node: &Node, op: FsOp) -> Result<(FsAnswer, Opened), ErrorCode> {
        flow_fs(&self.flow, node, &op)?;
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

/// The flow's part in `op` on `node`: a change is a sink for what the call carries (refused
/// as `not-permitted`), anything else reads what lies beneath the node's directory.
fn flow_fs(flow: &Flow, node: &Node, op: &FsOp) -> Result<(), ErrorCode> {
    if crate::flow::changes(op) {
        let sink = format!("the fs {} of {}", op.name(), op.target(node));
        flow.check(&sink, None)
            .map_err(|_| ErrorCode::NotPermitted)
    } else {
        flow.read(node, op);
        Ok(())
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
            flow: self.flow.clone(),
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
                    (baton_effects::http::decode_body(&data).to_vec(), end)
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
            flow: self.flow.clone(),
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
        let preopens = self.fs.clone();
        preopens
            .into_iter()
            .map(|node| {
                let path = node.path().to_string();
                Ok((self.table.push(node)?, path))
            })
            .collect()
    }
}

