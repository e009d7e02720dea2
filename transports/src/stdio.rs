//! [`Stdio`]: the [`Transport`] over the process's standard input and output (for spipe).

use std::io::{self, IoSlice, Stdin, Stdout};

use async_lock::Mutex;
use async_trait::async_trait;
use blocking::Unblock;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::Transport;

/// Standard input as the reading side and standard output as the writing side.
///
/// Both are driven on blocking threads, so files, pipes and terminals all work. Each
/// side has its own lock: a reader and a writer never wait for each other.
pub struct Stdio {
    stdin: Mutex<Unblock<Stdin>>,
    stdout: Mutex<Unblock<Stdout>>,
}

/// Bytes moved per blocking-thread hand-off; large, so bulk copies cost few wake-ups.
const CHUNK: usize = 256 * 1024;

impl Stdio {
    /// Takes over the process's standard input and output.
    pub fn new() -> Stdio {
        Stdio {
            stdin: Mutex::new(Unblock::with_capacity(CHUNK, io::stdin())),
            stdout: Mutex::new(Unblock::with_capacity(CHUNK, io::stdout())),
        }
    }
}

impl Default for Stdio {
    fn default() -> Self {
        Stdio::new()
    }
}

#[async_trait]
impl Transport for Stdio {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdin.lock().await.read(buf).await
    }

    async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut out = self.stdout.lock().await;
        let n = out.write_vectored(bufs).await?;
        // Flush per write: a consumer waiting for a reply must not wait for our buffer.
        out.flush().await?;
        Ok(n)
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        // Standard output stays open until exit; what matters is that nothing is held
        // back in our buffer.
        self.stdout.lock().await.flush().await
    }

    fn peer(&self) -> String {
        "stdio".to_owned()
    }
}
