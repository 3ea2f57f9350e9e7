//! Bounded output capture: the tail of a byte stream, and a ring of recent lines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The last `cap` bytes of a stream, and how many bytes before them were dropped.
///
/// The tail is kept rather than the head because a failing command says why at its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// The kept bytes: the end of the stream, at most the cap.
    pub bytes: Vec<u8>,
    /// Bytes read before the kept ones and discarded.
    pub dropped: u64,
}

impl Tail {
    /// The kept bytes, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The last non-empty line, lossily decoded and shortened to 200 characters.
    pub fn last_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.chars().take(200).collect())
    }
}

/// Accumulates a [`Tail`] with amortised O(1) work per byte: the buffer grows to twice the
/// cap before its front is cut.
#[derive(Debug)]
pub(crate) struct TailBuf {
    buf: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl TailBuf {
    pub(crate) fn new(cap: usize) -> TailBuf {
        TailBuf {
            buf: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.dropped += (self.buf.len() + data.len() - self.cap) as u64;
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > self.cap.saturating_mul(2).max(8192) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    pub(crate) fn take(&mut self) -> Tail {
        self.trim();
        Tail {
            bytes: std::mem::take(&mut self.buf),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

/// Reads `stream` to its end into `sink`. Read errors end the capture (the stream is gone).
pub(crate) async fn read_into<R: AsyncRead + Unpin>(mut stream: R, sink: Arc<Mutex<TailBuf>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(&sink).push(&chunk[..n]),
        }
    }
}

/// Locks a mutex, recovering the data if a holder panicked (the buffers stay consistent:
/// every mutation is a single call).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The most recent lines of a process's output, bounded in count and in line length.
#[derive(Debug)]
pub struct LineRing {
    lines: VecDeque<String>,
    max_lines: usize,
    max_line_bytes: usize,
    partial: Vec<u8>,
    /// Lines pushed out of the ring since it was created.
    pub dropped: u64,
}

impl LineRing {
    /// A ring keeping `max_lines` lines of at most `max_line_bytes` bytes each (longer lines
    /// are cut at the limit).
    pub fn new(max_lines: usize, max_line_bytes: usize) -> LineRing {
        LineRing {
            lines: VecDeque::with_capacity(max_lines.min(1024)),
            max_lines: max_lines.max(1),
            max_line_bytes: max_line_bytes.max(1),
            partial: Vec::new(),
            dropped: 0,
        }
    }

    /// Adds raw output; complete lines enter the ring.
    pub fn push_bytes(&mut self, data: &[u8]) {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let room = self.max_line_bytes.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&rest[..pos.min(room)]);
            self.finish_line();
            rest = &rest[pos + 1..];
        }
        let room = self.max_line_bytes.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&rest[..rest.len().min(room)]);
    }

    /// Ends a pending partial line (the stream closed).
    pub fn flush(&mut self) {
        if !self.partial.is_empty() {
            self.finish_line();
        }
    }

    fn finish_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial)
            .trim_end_matches('\r')
            .to_owned();
        self.partial.clear();
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// Reads `stream` to its end, line by line, into `ring`.
pub async fn read_lines_into<R: AsyncRead + Unpin>(mut stream: R, ring: Arc<Mutex<LineRing>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(&ring).push_bytes(&chunk[..n]),
        }
    }
    lock(&ring).flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let mut t = TailBuf::new(10);
        for i in 0..1000u32 {
            t.push(format!("{i},").as_bytes());
        }
        let tail = t.take();
        assert_eq!(tail.bytes.len(), 10);
        assert!(tail.text().ends_with("999,"));
        let total: u64 = (0..1000u32).map(|i| format!("{i},").len() as u64).sum();
        assert_eq!(tail.dropped + 10, total);
    }

    #[test]
    fn tail_big_chunk() {
        let mut t = TailBuf::new(4);
        t.push(b"ab");
        t.push(b"0123456789");
        let tail = t.take();
        assert_eq!(tail.bytes, b"6789");
        assert_eq!(tail.dropped, 8);
    }

    #[test]
    fn ring_bounds_lines() {
        let mut r = LineRing::new(2, 3);
        r.push_bytes(b"abcdef\nx\ny");
        r.push_bytes(b"z\n");
        assert_eq!(r.lines(), vec!["x".to_owned(), "yz".to_owned()]);
        assert_eq!(r.dropped, 1);
        r.push_bytes(b"tail");
        r.flush();
        assert_eq!(r.lines(), vec!["yz".to_owned(), "tai".to_owned()]);
    }
}
