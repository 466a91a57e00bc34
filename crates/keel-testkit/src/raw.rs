//! Reading a raw connection the way framing tests need to: until the answer is
//! complete, or until the peer closes, each read bounded by [`WAIT`] so that a test that
//! waits for bytes that never come fails instead of hanging.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wait::WAIT;

/// Reads until `complete` holds for all that arrived, and returns it; panics, naming
/// `what`, if the peer closes first or a read waits longer than [`WAIT`].
pub async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    what: &str,
    mut complete: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    while !complete(&read) {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no byte for {WAIT:?} while waiting for {what}"))
            .unwrap_or_else(|error| panic!("read failed while waiting for {what}: {error}"));
        assert!(
            n > 0,
            "closed before {what}; read: {}",
            String::from_utf8_lossy(&read)
        );
        read.extend_from_slice(&buffer[..n]);
    }
    read
}

/// Reads until the peer closes (or a read fails), or until no byte came for [`WAIT`]:
/// what arrived, and whether the peer closed.
pub async fn read_to_close<S: AsyncRead + Unpin>(stream: &mut S) -> (Vec<u8>, bool) {
    let mut read = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (read, true),
            Ok(Ok(n)) => read.extend_from_slice(&buffer[..n]),
            Err(_) => return (read, false),
        }
    }
}

/// Whether the peer closed the connection within [`WAIT`] of its last byte (what it sent
/// before is read and dropped).
pub async fn closed_by_peer<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    read_to_close(stream).await.1
}

/// Whether `read` holds a whole response head (its blank line).
pub fn has_head(read: &[u8]) -> bool {
    read.windows(4).any(|window| window == b"\r\n\r\n")
}
