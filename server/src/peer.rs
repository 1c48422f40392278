//! The client's socket while a statement streams to it without reading
//! from it (`COPY (SUBSCRIBE …) TO STDOUT`).
//!
//! Two things the connection loop normally gets for free stop working
//! then, because the loop only reads between statements:
//!
//! - **Noticing that the client went away.** [`PeerWatch`] holds a second
//!   handle on the socket and reports when the client closed it (end of
//!   stream, reset, or a `Terminate` message), without consuming anything
//!   the loop will read after the statement.
//! - **Writing what is buffered.** Responses are coalesced until the loop
//!   waits to read ([`crate::protocol::Coalesce`]); a stream that never
//!   ends would never be written. While a [`WriteThrough`] guard lives, a
//!   flush writes the buffer to the socket.
//!
//! Both are put in the connection's session extensions by
//! [`crate::protocol::serve_connection`].

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// A second handle on a client's socket, to learn that the client closed
/// it while the connection is not reading.
#[derive(Debug)]
pub struct PeerWatch {
    socket: TcpStream,
}

impl PeerWatch {
    /// Duplicates `socket`'s descriptor; the copy is closed with the watch.
    pub fn new(socket: &TcpStream) -> io::Result<PeerWatch> {
        let fd = socket.as_fd().try_clone_to_owned()?;
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?;
        Ok(PeerWatch { socket: TcpStream::from_std(std)? })
    }

    /// Resolves when the client has closed the connection or said goodbye
    /// (`Terminate`), with the error to end the statement with. Bytes the
    /// client sends meanwhile (a pipelined `Sync`, a next query) are only
    /// looked at, never consumed: the connection reads them afterwards.
    ///
    /// Cancel-safe: it only waits and peeks.
    pub async fn closed(&self) -> io::Error {
        let mut buf = [0u8; 512];
        loop {
            match self.socket.peek(&mut buf).await {
                Ok(0) => return gone(),
                Ok(n) if says_goodbye(&buf[..n]) => return gone(),
                Ok(_) => {}
                Err(e) => return e,
            }
            // Bytes for later: forget this readiness and wait for more
            // bytes or the close (which stays flagged once seen).
            let _ = self.socket.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
            match self.socket.ready(Interest::READABLE).await {
                Ok(r) if r.is_read_closed() || r.is_error() => return gone(),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the client closed the connection")
}

/// Whether `bytes` (whole frontend messages, perhaps cut at the end)
/// contain a `Terminate`.
fn says_goodbye(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 5 {
        if bytes[0] == b'X' {
            return true;
        }
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if len < 4 || len + 1 > bytes.len() {
            return false;
        }
        bytes = &bytes[len + 1..];
    }
    false
}

/// The switch that makes flushes write the coalescing buffer through.
#[derive(Debug, Default, Clone)]
pub struct WriteThrough(Arc<AtomicBool>);

impl WriteThrough {
    /// Turns write-through on until the guard is dropped.
    pub fn on(&self) -> WriteThroughGuard {
        self.0.store(true, Ordering::Release);
        WriteThroughGuard(self.0.clone())
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Write-through lasts as long as this lives.
#[derive(Debug)]
pub struct WriteThroughGuard(Arc<AtomicBool>);

impl Drop for WriteThroughGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_terminate_among_whole_messages() {
        let sync = [b'S', 0, 0, 0, 4];
        let terminate = [b'X', 0, 0, 0, 4];
        assert!(says_goodbye(&terminate));
        assert!(says_goodbye(&[&sync[..], &terminate[..]].concat()));
        assert!(!says_goodbye(&sync));
        let query = [&[b'Q', 0, 0, 0, 13][..], b"SELECT 1\0"].concat();
        assert!(!says_goodbye(&query));
        assert!(says_goodbye(&[&query[..], &terminate[..]].concat()));
        // A message cut short by the peek is not read past.
        assert!(!says_goodbye(&[b'Q', 0, 0, 1, 0, b'X', 0, 0, 0, 4]));
    }

    #[tokio::test]
    async fn reports_a_close_but_not_pending_bytes() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let watch = PeerWatch::new(&server).unwrap();
        client.write_all(&[b'S', 0, 0, 0, 4]).await.unwrap();
        let pending = tokio::time::timeout(std::time::Duration::from_millis(200), watch.closed()).await;
        assert!(pending.is_err(), "a pipelined Sync is not a close");
        drop(client);
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), watch.closed()).await.expect("close seen");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        // The bytes are still there for the connection to read.
        let mut buf = [0u8; 5];
        assert_eq!(server.peek(&mut buf).await.unwrap(), 5);
    }
}
