//! Turns a container attach into the byte streams the supervisor reads and writes.
//!
//! The attach gives one multiplexed output stream (stdout and stderr frames) and one
//! writer. The output goes into a stdout pipe and a stderr pipe ([`Pipes`], moved by
//! the watch task, which can also replay it from the container's log); a small task
//! copies what the master writes into the container's stdin and, when the master
//! closes its end, closes the write side of the attach so that the worker sees EOF.

use crate::output::{Output, Pipes};
use bollard::container::AttachContainerResults;
use distarch_core::InstanceIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

/// Buffer of each in-memory pipe; a worker that writes faster than the master
/// reads is held back once it is full.
const PIPE_BUFFER: usize = 64 * 1024;

/// Wires an attach to pipes: returns the supervisor's ends, the attach's output
/// with the pipes it goes into, and the stdin task.
pub(crate) fn wire(attach: AttachContainerResults) -> (InstanceIo, Output, Pipes, JoinHandle<()>) {
    let (stdout_master, stdout_worker) = tokio::io::duplex(PIPE_BUFFER);
    let (stderr_master, stderr_worker) = tokio::io::duplex(PIPE_BUFFER);
    let (stdin_master, stdin_worker) = tokio::io::duplex(PIPE_BUFFER);
    let input = tokio::spawn(forward_stdin(stdin_worker, attach.input));
    let io = InstanceIo {
        stdin: Box::new(stdin_master),
        stdout: Box::new(stdout_master),
        stderr: Some(Box::new(stderr_master)),
    };
    (
        io,
        attach.output,
        Pipes::new(stdout_worker, stderr_worker),
        input,
    )
}

/// Copies the master's writes to the container's stdin; when the master closes its
/// end, half-closes the attach so the engine closes the worker's stdin.
async fn forward_stdin(
    mut from_master: DuplexStream,
    mut to_container: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        match from_master.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to_container.write_all(&buf[..n]).await.is_err()
                    || to_container.flush().await.is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = to_container.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::container::LogOutput;
    use tokio::io::AsyncReadExt;

    fn bytes(s: &str) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn demultiplexes_and_closes_stdin_when_the_master_does() {
        let frames = vec![
            Ok(LogOutput::StdOut {
                message: bytes("out 1\n"),
            }),
            Ok(LogOutput::StdErr {
                message: bytes("err 1\n"),
            }),
            Ok(LogOutput::StdOut {
                message: bytes("out 2\n"),
            }),
        ];
        let (container_stdin, mut engine_side) = tokio::io::duplex(1024);
        let attach = AttachContainerResults {
            output: Box::pin(futures_util::stream::iter(frames)),
            input: Box::pin(container_stdin),
        };
        let (io, mut output, mut pipes, input) = wire(attach);
        let pump = tokio::spawn(async move { pipes.pump(&mut output).await });
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut out = io.stdout;
        let mut err = io.stderr.unwrap();
        out.read_to_string(&mut stdout).await.unwrap();
        err.read_to_string(&mut stderr).await.unwrap();
        assert_eq!(stdout, "out 1\nout 2\n");
        assert_eq!(stderr, "err 1\n");
        assert_eq!(pump.await.unwrap(), crate::output::StreamEnd::Closed);

        let mut stdin = io.stdin;
        stdin.write_all(b"\x1e{\"type\":\"stop\"}\n").await.unwrap();
        drop(stdin);
        let mut got = Vec::new();
        // EOF arrives only if the forwarder shut the attach's write side down.
        engine_side.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"\x1e{\"type\":\"stop\"}\n");
        input.abort();
    }
}
