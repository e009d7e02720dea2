//! [`Stdio`]: the [`Transport`] over the process's standard input and output (for spipe).

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::Transport;

/// Standard input as the reading side and standard output as the writing side.
///
/// Pipes, sockets and terminals are driven on the blocking pool (through
/// `tokio::fs::File`, whose operations run there), and a regular file on
/// standard input is read directly, so all of them work and neither descriptor is
/// switched to non-blocking mode (which would leak into whatever else shares it, such
/// as the invoking shell). The reader and the writer never wait for each other.
pub struct Stdio {
    stdin: Input,
    stdout: Mutex<Output>,
}

/// Standard input: a regular file is read right here, since its reads never wait for
/// anyone (`spipe < backup.tar`); saves a thread hand-off and a copy per chunk.
/// Anything else (pipe, socket, terminal) is read on a blocking thread.
enum Input {
    File(File),
    Other(Mutex<tokio::fs::File>),
}

struct Output {
    file: tokio::fs::File,
    /// Gathers a vectored write into one piece: handing the blocking thread one buffer
    /// per batch, not one per packet, is what makes bulk output cheap.
    scratch: Vec<u8>,
}

/// Bytes moved per blocking-thread hand-off at most; large, so bulk copies cost few
/// wake-ups.
const CHUNK: usize = 256 * 1024;

/// `file` driven on the blocking pool, at most [`CHUNK`] bytes per hand-off.
fn unblock(file: File) -> tokio::fs::File {
    let mut file = tokio::fs::File::from_std(file);
    file.set_max_buf_size(CHUNK);
    file
}

impl Stdio {
    /// Takes over the process's standard input and output (through duplicates of the
    /// descriptors, so Rust's own buffered handles are bypassed, not closed). Must be
    /// called inside the event loop, whose blocking pool serves it.
    pub fn new() -> io::Result<Stdio> {
        let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let stdin = match stdin.metadata() {
            Ok(m) if m.is_file() => Input::File(stdin),
            _ => Input::Other(Mutex::new(unblock(stdin))),
        };
        Ok(Stdio {
            stdin,
            stdout: Mutex::new(Output {
                file: unblock(stdout),
                scratch: Vec::new(),
            }),
        })
    }
}

#[async_trait]
impl Transport for Stdio {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.stdin {
            // Retried on EINTR, as the socket transports do: a signal is not an error.
            Input::File(f) => loop {
                match io::Read::read(&mut &*f, buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            },
            Input::Other(u) => u.lock().await.read(buf).await,
        }
    }

    async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut out = self.stdout.lock().await;
        let Output { file, scratch } = &mut *out;
        scratch.clear();
        for b in bufs {
            scratch.extend_from_slice(b);
        }
        let written = scratch.len();
        file.write_all(scratch).await?;
        // Flush per batch: a consumer waiting for a reply must not wait for our buffer.
        file.flush().await?;
        if scratch.capacity() > CHUNK {
            // Keep an idle connection small after a burst.
            *scratch = Vec::new();
        }
        Ok(written)
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        // Standard output stays open until exit; what matters is that nothing is held
        // back in our buffer.
        self.stdout.lock().await.file.flush().await
    }

    fn peer(&self) -> String {
        "stdio".to_owned()
    }
}
