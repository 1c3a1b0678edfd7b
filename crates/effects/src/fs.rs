//! The world's filesystem: the only code in Baton that opens, reads or writes a file on a
//! plugin's behalf. Directories come from the policy as cap-std preopens, so every path is
//! resolved beneath them: `..`, absolute paths and symlinks that lead outside fail, and are
//! reported as escapes. A `Node` is a guest's descriptor; its OS handle is private to this
//! module and absent in a replay, where the gate serves every answer from the record.
//!
//! Operations are small and run on the calling thread, as the guest waits for each anyway.

use std::io;
use std::sync::Arc;

use cap_fs_ext::{
    DirExt, FollowSymlinks, MetadataExt, OpenOptionsFollowExt, OpenOptionsMaybeDirExt,
};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions, OpenOptionsExt};

use baton_journal::event::{FileStat, FsAnswer, Timestamp};
use baton_policy::FsMount;

/// The journaled code of an escape attempt; the guest sees `not-permitted`.
pub const ESCAPE: &str = "escape";
/// The journaled (and guest-visible) code of a write to a read-only directory.
pub const NOT_PERMITTED: &str = "not-permitted";

/// The largest read served at once; guests read big files in several calls.
const MAX_READ: u64 = 1 << 20;

/// A guest's descriptor: a preopened directory or something opened beneath one.
#[derive(Clone)]
pub struct Node {
    /// The path the guest knows it by (the preopen's guest path, then the path it opened).
    path: String,
    /// Whether the preopen it lies beneath was granted for writing.
    writable: bool,
    /// How it was opened (read, write), as the guest asked.
    opened_for_write: bool,
    directory: bool,
    /// `None` in a replay.
    os: Option<Os>,
}

#[derive(Clone)]
enum Os {
    Dir(Arc<Dir>),
    File(Arc<std::fs::File>),
}

impl Node {
    /// Opens a granted directory on the host (live runs).
    pub fn preopen(mount: &FsMount) -> io::Result<Self> {
        let dir = Dir::open_ambient_dir(&mount.host, ambient_authority())?;
        Ok(Self::root(mount, Some(Os::Dir(Arc::new(dir)))))
    }

    /// A granted directory as a replay sees it: its answers come from the record.
    pub fn replayed(mount: &FsMount) -> Self {
        Self::root(mount, None)
    }

    fn root(mount: &FsMount, os: Option<Os>) -> Self {
        Self {
            path: mount.guest.clone(),
            writable: mount.writable,
            opened_for_write: false,
            directory: true,
            os,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_directory(&self) -> bool {
        self.directory
    }

    /// Whether it may be changed: beneath a writable preopen (and, for a file, opened for
    /// writing).
    pub fn writable(&self) -> bool {
        self.writable && (self.directory || self.opened_for_write)
    }

    /// Whether the preopen it lies beneath is writable.
    pub fn in_writable_tree(&self) -> bool {
        self.writable
    }

    fn child(&self, path: &str) -> String {
        match path.trim_end_matches('/') {
            "." | "" => self.path.clone(),
            path => format!("{}/{path}", self.path.trim_end_matches('/')),
        }
    }
}

/// What a guest asks of the filesystem.
pub enum FsOp<'a> {
    Stat,
    StatAt {
        path: &'a str,
        follow: bool,
    },
    OpenAt {
        path: &'a str,
        follow: bool,
        open: OpenHow,
    },
    Read {
        offset: u64,
        len: u64,
    },
    /// `offset` `None` appends.
    Write {
        offset: Option<u64>,
        data: &'a [u8],
    },
    ReadDirectory,
    ReadlinkAt {
        path: &'a str,
    },
    CreateDirectoryAt {
        path: &'a str,
    },
    RemoveDirectoryAt {
        path: &'a str,
    },
    UnlinkFileAt {
        path: &'a str,
    },
    RenameAt {
        from: &'a str,
        to_dir: &'a Node,
        to: &'a str,
    },
    SetSize {
        size: u64,
    },
    Sync,
}

/// How `open-at` was asked to open.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenHow {
    pub create: bool,
    pub exclusive: bool,
    pub truncate: bool,
    pub directory: bool,
    pub read: bool,
    pub write: bool,
}

impl OpenHow {
    /// Whether this open may change the tree or the file.
    pub fn mutates(&self) -> bool {
        self.create || self.truncate || self.write
    }
}

impl FsOp<'_> {
    /// The guest path the operation names, under `node`.
    pub fn target(&self, node: &Node) -> String {
        match self {
            FsOp::StatAt { path, .. }
            | FsOp::OpenAt { path, .. }
            | FsOp::ReadlinkAt { path }
            | FsOp::CreateDirectoryAt { path }
            | FsOp::RemoveDirectoryAt { path }
            | FsOp::UnlinkFileAt { path }
            | FsOp::RenameAt { from: path, .. } => node.child(path),
            _ => node.path.clone(),
        }
    }

    /// The operation's name, as journaled.
    pub fn name(&self) -> &'static str {
        match self {
            FsOp::Stat => "stat",
            FsOp::StatAt { .. } => "stat_at",
            FsOp::OpenAt { .. } => "open_at",
            FsOp::Read { .. } => "read",
            FsOp::Write { .. } => "write",
            FsOp::ReadDirectory => "read_directory",
            FsOp::ReadlinkAt { .. } => "readlink_at",
            FsOp::CreateDirectoryAt { .. } => "create_directory_at",
            FsOp::RemoveDirectoryAt { .. } => "remove_directory_at",
            FsOp::UnlinkFileAt { .. } => "unlink_file_at",
            FsOp::RenameAt { .. } => "rename_at",
            FsOp::SetSize { .. } => "set_size",
            FsOp::Sync => "sync",
        }
    }

    /// Its arguments, as journaled: what a replay must ask again. Written data is journaled
    /// by size and digest.
    pub fn args(&self) -> String {
        match self {
            FsOp::Stat | FsOp::ReadDirectory | FsOp::Sync => String::new(),
            FsOp::StatAt { path, follow } => format!("path={path} follow={follow}"),
            FsOp::OpenAt { path, follow, open } => {
                let flags: Vec<&str> = [
                    ("read", open.read),
                    ("write", open.write),
                    ("create", open.create),
                    ("exclusive", open.exclusive),
                    ("truncate", open.truncate),
                    ("directory", open.directory),
                ]
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| *name)
                .collect();
                format!("path={path} follow={follow} flags={}", flags.join(","))
            }
            FsOp::Read { offset, len } => format!("offset={offset} len={len}"),
            FsOp::Write { offset, data } => {
                let at = offset.map_or("end".to_string(), |o| o.to_string());
                let digest = baton_core::Digest::of(data);
                format!("offset={at} len={} digest={digest}", data.len())
            }
            FsOp::ReadlinkAt { path }
            | FsOp::CreateDirectoryAt { path }
            | FsOp::RemoveDirectoryAt { path }
            | FsOp::UnlinkFileAt { path } => format!("path={path}"),
            FsOp::RenameAt { from, to_dir, to } => {
                format!("from={from} to={}", to_dir.child(to))
            }
            FsOp::SetSize { size } => format!("size={size}"),
        }
    }
}

/// What an operation gave, besides its journaled answer: the node an `open-at` opened.
pub enum Opened {
    None,
    Node(Node),
}

/// Performs `op` on `node` in the world: the answer to journal, and the opened node.
pub(crate) fn perform(node: &Node, op: &FsOp) -> (FsAnswer, Opened) {
    match run(node, op) {
        Ok(done) => done,
        Err(e) => (
            FsAnswer::Failed {
                code: error_code(&e).into(),
            },
            Opened::None,
        ),
    }
}

/// Rebuilds what a recorded answer gave: in a replay, an opened node has no OS handle.
pub(crate) fn replayed(node: &Node, op: &FsOp, answer: &FsAnswer) -> Opened {
    match (op, answer) {
        (FsOp::OpenAt { path, open, .. }, FsAnswer::Opened { node: kind }) => Opened::Node(Node {
            path: node.child(path),
            writable: node.writable,
            opened_for_write: open.write || open.truncate || open.create,
            directory: kind == "directory",
            os: None,
        }),
        _ => Opened::None,
    }
}

fn run(node: &Node, op: &FsOp) -> io::Result<(FsAnswer, Opened)> {
    let Some(os) = &node.os else {
        // A replayed node only exists in a replay, whose gate never comes here.
        return Err(io::Error::other(
            "no host file behind a replayed descriptor",
        ));
    };
    let dir = || match os {
        Os::Dir(dir) => Ok(dir.as_ref()),
        Os::File(_) => Err(io::Error::from(io::ErrorKind::NotADirectory)),
    };
    let file = || match os {
        Os::File(file) => Ok(file.as_ref()),
        Os::Dir(_) => Err(io::Error::from(io::ErrorKind::IsADirectory)),
    };
    let done = |answer| Ok((answer, Opened::None));
    match *op {
        FsOp::Stat => {
            let meta = match os {
                Os::Dir(dir) => dir.dir_metadata()?,
                Os::File(file) => Metadata::from_just_metadata(file.metadata()?),
            };
            done(FsAnswer::Stat { stat: stat(&meta) })
        }
        FsOp::StatAt { path, follow } => {
            let meta = match follow {
                true => dir()?.metadata(path)?,
                false => dir()?.symlink_metadata(path)?,
            };
            done(FsAnswer::Stat { stat: stat(&meta) })
        }
        FsOp::OpenAt { path, follow, open } => open_at(node, dir()?, path, follow, open),
        FsOp::Read { offset, len } => {
            let mut buf = vec![0; len.min(MAX_READ) as usize];
            let n = read_at(file()?, &mut buf, offset)?;
            buf.truncate(n);
            let end = n == 0 || offset + n as u64 >= file()?.metadata()?.len();
            let (_, data) = super::http::encode_body(&buf);
            done(FsAnswer::Bytes { data, end })
        }
        FsOp::Write { offset, data } => {
            let file = file()?;
            let at = match offset {
                Some(at) => at,
                None => file.metadata()?.len(),
            };
            write_all_at(file, data, at)?;
            done(FsAnswer::Count {
                count: data.len() as u64,
            })
        }
        FsOp::ReadDirectory => {
            let mut entries = Vec::new();
            for entry in dir()?.entries()? {
                let entry = entry?;
                let name = entry.file_name().into_string().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "a name is not UTF-8")
                })?;
                entries.push((name, type_name(&entry.file_type()?).to_string()));
            }
            entries.sort();
            done(FsAnswer::Entries { entries })
        }
        FsOp::ReadlinkAt { path } => {
            let target = dir()?.read_link_contents(path)?;
            // An absolute target names a place on the host the guest has no business knowing
            // (and could not reach: it lies outside every preopen).
            if target.is_absolute() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the link leads to an absolute path on the host",
                ));
            }
            let text = target
                .into_os_string()
                .into_string()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the link is not UTF-8"))?;
            done(FsAnswer::Text { text })
        }
        FsOp::CreateDirectoryAt { path } => {
            dir()?.create_dir(path)?;
            done(FsAnswer::Done)
        }
        FsOp::RemoveDirectoryAt { path } => {
            dir()?.remove_dir(path)?;
            done(FsAnswer::Done)
        }
        FsOp::UnlinkFileAt { path } => {
            dir()?.remove_file(path)?;
            done(FsAnswer::Done)
        }
        FsOp::RenameAt { from, to_dir, to } => {
            let Some(Os::Dir(target)) = &to_dir.os else {
                return Err(io::ErrorKind::NotADirectory.into());
            };
            dir()?.rename(from, target, to)?;
            done(FsAnswer::Done)
        }
        FsOp::SetSize { size } => {
            file()?.set_len(size)?;
            done(FsAnswer::Done)
        }
        FsOp::Sync => {
            if let Os::File(file) = os {
                file.sync_all()?;
            }
            done(FsAnswer::Done)
        }
    }
}

fn open_at(
    parent: &Node,
    dir: &Dir,
    path: &str,
    follow: bool,
    open: OpenHow,
) -> io::Result<(FsAnswer, Opened)> {
    let follow = match follow {
        true => FollowSymlinks::Yes,
        false => FollowSymlinks::No,
    };
    let node = |os: Os, directory: bool| Node {
        path: parent.child(path),
        writable: parent.writable,
        opened_for_write: open.mutates(),
        directory,
        os: Some(os),
    };
    if open.directory {
        let opened = match follow {
            FollowSymlinks::Yes => dir.open_dir(path)?,
            FollowSymlinks::No => dir.open_dir_nofollow(path)?,
        };
        let answer = FsAnswer::Opened {
            node: "directory".into(),
        };
        return Ok((answer, Opened::Node(node(Os::Dir(Arc::new(opened)), true))));
    }
    let mut options = OpenOptions::new();
    // Opening a FIFO waits for its other end, and a device may block or act: opened without
    // waiting, anything that is neither a file nor a directory is refused below.
    options
        .read(true)
        .follow(follow)
        .maybe_dir(true)
        .custom_flags(libc::O_NONBLOCK);
    if open.create {
        match open.exclusive {
            true => options.create_new(true),
            false => options.create(true),
        };
    }
    options.write(open.mutates()).truncate(open.truncate);
    let file = dir.open_with(path, &options)?;
    let meta = file.metadata()?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only regular files and directories can be opened",
        ));
    }
    // A hard link planted in a granted directory may be another name for a file outside it:
    // a file with more than one name is not opened.
    if meta.is_file() && meta.nlink() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the file has more than one name (a hard link), which may lead outside",
        ));
    }
    let kind = type_name(&meta.file_type());
    let answer = FsAnswer::Opened { node: kind.into() };
    let os = match meta.is_dir() {
        true => Os::Dir(Arc::new(Dir::from_std_file(file.into_std()))),
        false => Os::File(Arc::new(file.into_std())),
    };
    Ok((answer, Opened::Node(node(os, meta.is_dir()))))
}

fn stat(meta: &Metadata) -> FileStat {
    let time = |t: io::Result<cap_std::time::SystemTime>| {
        let since = t
            .ok()?
            .into_std()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(Timestamp {
            seconds: since.as_secs(),
            nanos: since.subsec_nanos(),
        })
    };
    FileStat {
        accessed: time(meta.accessed()),
        links: meta.nlink(),
        modified: time(meta.modified()),
        node: type_name(&meta.file_type()).into(),
        size: meta.len(),
    }
}

/// A file type by its wasi:filesystem name.
fn type_name(t: &cap_std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic-link"
    } else if t.is_file() {
        "regular-file"
    } else {
        "unknown"
    }
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &std::fs::File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(windows)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &std::fs::File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, data, offset)?;
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// The wasi:filesystem error code (by its WIT name) of a failed operation; a path that led
/// outside its preopen is `escape`.
fn error_code(e: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    // cap-std refuses paths that leave the preopen with this error and no OS error number.
    if e.kind() == PermissionDenied && e.raw_os_error().is_none() {
        return ESCAPE;
    }
    // ELOOP (too many symlinks, or one refused by no-follow) has no stable ErrorKind.
    #[cfg(target_os = "linux")]
    if e.raw_os_error() == Some(40) {
        return "loop";
    }
    match e.kind() {
        NotFound => "no-entry",
        PermissionDenied => "access",
        AlreadyExists => "exist",
        NotADirectory => "not-directory",
        IsADirectory => "is-directory",
        DirectoryNotEmpty => "not-empty",
        InvalidInput => "invalid",
        InvalidData => "illegal-byte-sequence",
        StorageFull => "insufficient-space",
        ReadOnlyFilesystem => "read-only",
        FileTooLarge => "file-too-large",
        Unsupported => "unsupported",
        _ => "io",
    }
}

/// Opens every granted directory, naming the one that cannot be opened.
pub fn preopen_all(mounts: &[FsMount]) -> Result<Vec<Node>, (FsMount, io::Error)> {
    mounts
        .iter()
        .map(|m| Node::preopen(m).map_err(|e| (m.clone(), e)))
        .collect()
}
