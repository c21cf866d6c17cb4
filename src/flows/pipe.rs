//! An in-process pipe: bytes written on one thread are read on another. Used to hand a
//! capture's flow records to the CSV stream reader; unlike an OS pipe, a reader that has gone
//! away is an error for the writer, not a SIGPIPE for the process.

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The writing end: each `flush` (or a full buffer) sends what was written as one chunk.
pub struct PipeWriter {
    tx: SyncSender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

/// The reading end.
pub struct PipeReader {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    /// Where read chunks go back to be filled again (read-ahead only).
    recycle: Option<SyncSender<Vec<u8>>>,
}

/// A pipe that holds up to 64 unread chunks.
pub fn pipe() -> (PipeReader, PipeWriter) {
    pipe_of(64)
}

/// A pipe that holds up to `chunks` unread chunks.
fn pipe_of(chunks: usize) -> (PipeReader, PipeWriter) {
    let (tx, rx) = sync_channel(chunks);
    (
        PipeReader {
            rx,
            chunk: Vec::new(),
            at: 0,
            recycle: None,
        },
        PipeWriter {
            tx,
            buf: Vec::new(),
        },
    )
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx
            .send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader gone"))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// `input` read on a thread of its own, a MiB at a time, so reading (the kernel's copy, or
/// gunzipping) and parsing use two cores. The same few buffers go round: a fresh MiB per
/// read left the heap fragmented by the flows allocated in between, and memory grew with the
/// length of the capture.
pub fn read_ahead(mut input: impl Read + Send + 'static) -> PipeReader {
    const CHUNKS: usize = 4;
    let (mut reader, writer) = pipe_of(CHUNKS);
    let (give_back, returned) = sync_channel::<Vec<u8>>(CHUNKS + 2);
    reader.recycle = Some(give_back);
    std::thread::spawn(move || {
        let mut fresh = CHUNKS + 2;
        loop {
            let mut chunk = match returned.try_recv() {
                Ok(chunk) => chunk,
                Err(_) if fresh > 0 => {
                    fresh -= 1;
                    Vec::new()
                }
                Err(_) => match returned.recv() {
                    Ok(chunk) => chunk,
                    Err(_) => break,
                },
            };
            chunk.resize(1 << 20, 0);
            let sent = match input.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    writer.tx.send(Ok(chunk))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = writer.tx.send(Err(e));
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    reader
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.chunk, chunk?);
                    self.at = 0;
                    if let Some(recycle) = &self.recycle {
                        let _ = recycle.try_send(used);
                    }
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_in_order_and_a_gone_reader_is_an_error() {
        let (mut r, mut w) = pipe();
        let writer = std::thread::spawn(move || {
            for i in 0..1000 {
                write!(w, "{i},").unwrap();
                w.flush().unwrap();
            }
        });
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        writer.join().unwrap();
        let want: String = (0..1000).map(|i| format!("{i},")).collect();
        assert_eq!(got, want);
        let (r, mut w) = pipe();
        drop(r);
        w.write_all(b"x").unwrap();
        assert_eq!(
            w.flush().unwrap_err().kind(),
            std::io::ErrorKind::BrokenPipe
        );
    }
}
