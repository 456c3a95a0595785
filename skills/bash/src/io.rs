//! Standard streams of the interpreter. There are no processes, so a pipe is a bounded buffer
//! that one stage fills before the next reads it, and stdin is a shared cursor so that `read`
//! in a loop consumes a file line by line.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::rc::Rc;

/// Most bytes a pipe or a command substitution holds; a writer past it gets "broken pipe",
/// which is how `yes | head` ends.
pub const PIPE_CAP: usize = 16 << 20;

/// What happens to bytes past a buffer's limit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Kept out and counted: the final stdout and stderr shown to the caller.
    Truncate,
    /// Refused with an error: pipes and captures.
    Refuse,
}

/// An in-memory byte sink with a limit.
pub struct Buffer {
    data: Vec<u8>,
    limit: usize,
    overflow: Overflow,
    dropped: u64,
}

/// Where a command's output goes.
#[derive(Clone)]
pub enum Out {
    /// A buffer (pipe, capture, or the caller's stdout/stderr).
    Buf(Rc<RefCell<Buffer>>),
    /// A file opened by a redirection.
    File(Rc<RefCell<File>>),
    /// `/dev/null`.
    Null,
}

impl Out {
    /// A buffer of `limit` bytes.
    pub fn buffer(limit: usize, overflow: Overflow) -> Self {
        Out::Buf(Rc::new(RefCell::new(Buffer {
            data: Vec::new(),
            limit,
            overflow,
            dropped: 0,
        })))
    }

    /// A pipe between two stages, or a command substitution's capture.
    pub fn pipe() -> Self {
        Self::buffer(PIPE_CAP, Overflow::Refuse)
    }

    /// Writes all of `bytes`, or fails like a full pipe or a full disk.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Null => Ok(()),
            Out::File(f) => f.borrow_mut().write_all(bytes),
            Out::Buf(b) => {
                let mut b = b.borrow_mut();
                let room = b.limit.saturating_sub(b.data.len());
                if bytes.len() <= room {
                    b.data.extend_from_slice(bytes);
                    return Ok(());
                }
                match b.overflow {
                    Overflow::Truncate => {
                        b.data.extend_from_slice(&bytes[..room]);
                        b.dropped += (bytes.len() - room) as u64;
                        Ok(())
                    }
                    Overflow::Refuse => {
                        Err(io::Error::new(io::ErrorKind::BrokenPipe, "Broken pipe"))
                    }
                }
            }
        }
    }

    /// Takes what a buffer holds, leaving it empty.
    pub fn take(&self) -> Vec<u8> {
        match self {
            Out::Buf(b) => std::mem::take(&mut b.borrow_mut().data),
            _ => Vec::new(),
        }
    }

    /// The bytes a buffer kept and how many it cut, leaving it empty.
    pub fn finish(&self) -> (Vec<u8>, u64) {
        match self {
            Out::Buf(b) => {
                let mut b = b.borrow_mut();
                (std::mem::take(&mut b.data), std::mem::take(&mut b.dropped))
            }
            _ => (Vec::new(), 0),
        }
    }
}

/// A command's standard input: bytes and how far they have been read.
#[derive(Clone, Default)]
pub struct In(Rc<RefCell<(Vec<u8>, usize)>>);

impl In {
    /// Input holding `bytes`.
    pub fn bytes(bytes: Vec<u8>) -> Self {
        In(Rc::new(RefCell::new((bytes, 0))))
    }

    /// Everything not yet read.
    pub fn read_all(&self) -> Vec<u8> {
        let mut s = self.0.borrow_mut();
        let pos = s.1;
        s.1 = s.0.len();
        s.0[pos..].to_vec()
    }

    /// The next line without its newline, and whether a newline ended it; `None` at the end.
    pub fn read_line(&self) -> Option<(Vec<u8>, bool)> {
        let mut s = self.0.borrow_mut();
        let pos = s.1;
        if pos >= s.0.len() {
            return None;
        }
        match s.0[pos..].iter().position(|&b| b == b'\n') {
            Some(n) => {
                s.1 = pos + n + 1;
                Some((s.0[pos..pos + n].to_vec(), true))
            }
            None => {
                s.1 = s.0.len();
                Some((s.0[pos..].to_vec(), false))
            }
        }
    }
}

/// The three streams of a command.
#[derive(Clone)]
pub struct Io {
    /// File descriptor 0.
    pub stdin: In,
    /// File descriptor 1.
    pub stdout: Out,
    /// File descriptor 2.
    pub stderr: Out,
}

/// The words coreutils use for an I/O error, without Rust's "(os error N)".
pub fn describe(e: &io::Error) -> String {
    use io::ErrorKind::*;
    // WASI's ENOTCAPABLE: a path outside the sandbox. For the script it does not exist.
    if e.raw_os_error() == Some(76) || e.to_string().starts_with("Capabilities insufficient") {
        return "No such file or directory".into();
    }
    match e.kind() {
        NotFound => "No such file or directory".into(),
        PermissionDenied => "Permission denied".into(),
        AlreadyExists => "File exists".into(),
        DirectoryNotEmpty => "Directory not empty".into(),
        IsADirectory => "Is a directory".into(),
        NotADirectory => "Not a directory".into(),
        StorageFull => "No space left on device".into(),
        BrokenPipe => "Broken pipe".into(),
        InvalidData => "invalid UTF-8 or binary data".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        }
    }
}
