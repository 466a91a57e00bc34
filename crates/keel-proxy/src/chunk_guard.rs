//! A bound on the chunk sizes of HTTP/1 request bodies ([`MAX_CHUNK_SIZE`]), checked on
//! the bytes a client connection reads, before hyper parses them.
//!
//! hyper refuses a chunk size that overflows 64 bits, but takes `ffffffffffffffff`
//! itself: everything the client sends after it is then body, and was forwarded,
//! re-framed, until the route's timeout. nginx and HAProxy answer `400`. hyper has no
//! setting for it, so [`ChunkGuard`] follows the framing of the requests on one
//! connection (heads, `Content-Length` bodies, chunk-size lines, trailers) just far
//! enough to see each chunk size. Past the bound it stops the bytes before that
//! chunk-size line and fails the next read, which hyper reports as a broken request
//! body: the client gets `400 bad-request`, the connection closes, and no backend
//! ever receives a complete request.
//!
//! The guard never decides what a request is: hyper still parses everything. Where the
//! guard could read the framing differently (a `Content-Length` or `Transfer-Encoding`
//! hyper refuses), hyper closes the connection anyway, and the guard turns itself off
//! rather than guess. Body bytes are skipped by count, so only heads and chunk-size
//! lines are scanned byte by byte.

/// Largest chunk size accepted in a request body (1 TiB): far beyond any real upload
/// in one chunk, and far below the 64-bit sizes used to make parsers disagree.
pub(crate) const MAX_CHUNK_SIZE: u64 = 1 << 40;

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
const CHUNKED: &[u8] = b"chunked";

/// Where in the request stream the next byte falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A request head, line by line.
    Head(Head),
    /// A `Content-Length` body: this many bytes still to come.
    Fixed(u64),
    /// A chunk-size line: the size so far, and whether its digits still run.
    Size { size: u64, digits: bool },
    /// Chunk data: this many bytes still to come.
    Data(u64),
    /// The line end after chunk data.
    DataEnd,
    /// The trailer section after the last chunk; whether the current line is empty.
    Trailers { empty_line: bool },
    /// Not followed any more (see the module docs).
    Off,
}

/// What kind of head line the current one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// The request line, or a header that does not frame the body.
    Skip,
    /// A header name so far: its length, and whether it may still be either framing
    /// header.
    Name {
        len: u8,
        length: bool,
        encoding: bool,
    },
    /// A `Content-Length` value: the number so far.
    Length(u64),
    /// A `Transfer-Encoding` value: chars of `chunked` matched by the current token,
    /// and whether the token can no longer be `chunked`.
    Encoding { matched: u8, other: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    line: Line,
    /// Whether the current line has content yet (a CR alone does not count).
    content: bool,
    /// Whether the request line has been read.
    request_line: bool,
    length: Option<u64>,
    /// Whether the last `Transfer-Encoding` ended with `chunked`; `None` without one.
    chunked: Option<bool>,
}

impl Head {
    const START: Head = Head {
        line: Line::Skip,
        content: false,
        request_line: false,
        length: None,
        chunked: None,
    };
}

/// A chunk size past [`MAX_CHUNK_SIZE`]: the bytes before its line may be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Oversized {
    /// Bytes of the scanned buffer before the chunk-size line.
    pub(crate) before: usize,
}

/// Follows the request framing of one HTTP/1 client connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkGuard {
    phase: Phase,
}

impl ChunkGuard {
    /// A guard for a new HTTP/1 connection.
    pub(crate) const fn new() -> Self {
        Self {
            phase: Phase::Head(Head::START),
        }
    }

    /// A guard that checks nothing (an HTTP/2 connection).
    pub(crate) const fn off() -> Self {
        Self { phase: Phase::Off }
    }

    /// Whether there is nothing left to check on this connection.
    #[inline]
    pub(crate) fn is_off(&self) -> bool {
        self.phase == Phase::Off
    }

    /// Follows `bytes`, the next ones the client sent.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Result<(), Oversized> {
        let mut at = 0;
        // Where the current chunk-size line starts in `bytes` (0 when it began earlier).
        let mut size_line = 0;
        while at < bytes.len() {
            match &mut self.phase {
                Phase::Off => return Ok(()),
                Phase::Fixed(left) | Phase::Data(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - at);
                    at += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.phase = match self.phase {
                            Phase::Data(_) => Phase::DataEnd,
                            _ => Phase::Head(Head::START),
                        };
                    }
                }
                Phase::DataEnd => match find_line_feed(&bytes[at..]) {
                    Some(end) => {
                        at += end + 1;
                        size_line = at;
                        self.phase = Phase::Size {
                            size: 0,
                            digits: true,
                        };
                    }
                    None => at = bytes.len(),
                },
                Phase::Size { size, digits } => {
                    let b = bytes[at];
                    at += 1;
                    if b == b'\n' {
                        self.phase = if *size == 0 {
                            Phase::Trailers { empty_line: true }
                        } else {
                            Phase::Data(*size)
                        };
                    } else if *digits && let Some(digit) = (b as char).to_digit(16) {
                        match size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit.into()))
                        {
                            Some(bigger) if bigger <= MAX_CHUNK_SIZE => *size = bigger,
                            _ => {
                                return Err(Oversized { before: size_line });
                            }
                        }
                    } else {
                        *digits = false;
                    }
                }
                Phase::Trailers { empty_line } => {
                    let b = bytes[at];
                    at += 1;
                    match b {
                        b'\n' if *empty_line => self.phase = Phase::Head(Head::START),
                        b'\n' => *empty_line = true,
                        b'\r' => {}
                        _ => *empty_line = false,
                    }
                }
                Phase::Head(head) => {
                    let b = bytes[at];
                    at += 1;
                    if b == b'\n' {
                        if let Some(next) = head.end_line() {
                            if let Phase::Size { .. } = next {
                                size_line = at;
                            }
                            self.phase = next;
                        }
                    } else if b != b'\r' {
                        head.content = true;
                        if !head.request_line || head.line == Line::Skip {
                            // Nothing in this line frames the body: on to its end (a CR
                            // before it counts for nothing either way).
                            match find_line_feed(&bytes[at..]) {
                                Some(end) => at += end,
                                None => at = bytes.len(),
                            }
                        } else if !head.header_byte(b) {
                            self.phase = Phase::Off;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The offset of the first LF in `bytes`, eight bytes at a time: most of a request
/// head is lines the guard skips whole.
#[inline]
fn find_line_feed(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_ne_bytes(eight) ^ LFS;
        // Non-zero exactly when some byte of `x` is zero, that is, some byte is an LF.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return word.iter().position(|&b| b == b'\n').map(|i| offset + i);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

impl Head {
    /// Ends the current line; the next phase when the head ended (or cannot be
    /// followed), `None` while it goes on.
    fn end_line(&mut self) -> Option<Phase> {
        let had_content = std::mem::replace(&mut self.content, false);
        let line = std::mem::replace(
            &mut self.line,
            Line::Name {
                len: 0,
                length: true,
                encoding: true,
            },
        );
        if !had_content {
            if !self.request_line {
                // Empty lines before the request line are ignored (RFC 9112 §2.2).
                self.line = Line::Skip;
                return None;
            }
            return Some(self.body());
        }
        if !self.request_line {
            self.request_line = true;
            return None;
        }
        match line {
            Line::Length(value) => {
                if self.length.is_some_and(|earlier| earlier != value) {
                    return Some(Phase::Off);
                }
                self.length = Some(value);
            }
            Line::Encoding { matched, other } => {
                self.chunked = Some(!other && usize::from(matched) == CHUNKED.len());
            }
            Line::Name { .. } => return Some(Phase::Off),
            Line::Skip => {}
        }
        None
    }

    /// What follows the head.
    fn body(&self) -> Phase {
        match (self.chunked, self.length) {
            (Some(true), _) => Phase::Size {
                size: 0,
                digits: true,
            },
            // hyper refuses an encoding that does not end with `chunked`.
            (Some(false), _) => Phase::Off,
            (None, Some(length)) if length > 0 => Phase::Fixed(length),
            (None, _) => Phase::Head(Head::START),
        }
    }

    /// Takes one byte of a header line (not CR or LF); false when the line is not
    /// understood.
    fn header_byte(&mut self, b: u8) -> bool {
        let lower = b.to_ascii_lowercase();
        match &mut self.line {
            Line::Skip => {}
            Line::Name {
                len,
                length,
                encoding,
            } => {
                let at = usize::from(*len);
                if b == b':' {
                    self.line = if *length && at == CONTENT_LENGTH.len() {
                        Line::Length(0)
                    } else if *encoding && at == TRANSFER_ENCODING.len() {
                        Line::Encoding {
                            matched: 0,
                            other: false,
                        }
                    } else {
                        Line::Skip
                    };
                } else {
                    *length &= CONTENT_LENGTH.get(at) == Some(&lower);
                    *encoding &= TRANSFER_ENCODING.get(at) == Some(&lower);
                    *len = len.saturating_add(1);
                    if !*length && !*encoding {
                        self.line = Line::Skip;
                    }
                }
            }
            Line::Length(value) => match b {
                b'0'..=b'9' => {
                    match value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    {
                        Some(longer) => *value = longer,
                        None => return false,
                    }
                }
                // A list of equal lengths (`4, 4`) is one length; hyper refuses others.
                b',' => *value = 0,
                b' ' | b'\t' => {}
                _ => return false,
            },
            Line::Encoding { matched, other } => match b {
                b',' => {
                    *matched = 0;
                    *other = false;
                }
                b' ' | b'\t' => {
                    if *matched > 0 {
                        // Whitespace after a token: only more whitespace or a comma
                        // may follow, which `other` enforces for anything else.
                        *other |= usize::from(*matched) != CHUNKED.len();
                    }
                }
                _ => {
                    let at = usize::from(*matched);
                    if !*other && CHUNKED.get(at) == Some(&lower) {
                        *matched += 1;
                    } else {
                        *other = true;
                    }
                }
            },
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `stream` in pieces of `step` bytes; the offset of a refused line in the
    /// whole stream.
    fn scan_in_steps(stream: &[u8], step: usize) -> Result<ChunkGuard, usize> {
        let mut guard = ChunkGuard::new();
        let mut offset = 0;
        for piece in stream.chunks(step) {
            guard
                .scan(piece)
                .map_err(|oversized| offset + oversized.before)?;
            offset += piece.len();
        }
        Ok(guard)
    }

    fn every_split(stream: &[u8]) -> Vec<Result<ChunkGuard, usize>> {
        (1..=stream.len())
            .map(|step| scan_in_steps(stream, step))
            .collect()
    }

    #[test]
    fn an_oversized_chunk_is_found_wherever_the_reads_split() {
        let head = "POST /u HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n";
        let stream = format!("{head}3\r\nabc\r\nffffffffffffffff\r\nx");
        let line = head.len() + "3\r\nabc\r\n".len();
        // 11 hex digits pass the bound: the line is refused at its start, or (read in
        // pieces) at the start of the read that brings the 11th digit.
        for (step, result) in every_split(stream.as_bytes()).into_iter().enumerate() {
            let refused = result.expect_err("refused");
            assert!(
                (line..=line + 10).contains(&refused),
                "step {}: {refused}",
                step + 1
            );
        }
        assert_eq!(
            scan_in_steps(stream.as_bytes(), stream.len()).err(),
            Some(line)
        );
    }

    #[test]
    fn sizes_up_to_the_bound_and_framing_headers_anywhere_pass() {
        let streams = [
            // A keep-alive connection: a length body that looks like chunking, then chunks
            // with extensions and trailers, then a request without a body.
            "POST /a HTTP/1.1\r\nContent-Length: 18\r\nHost: h\r\n\r\nffffffffffffffff\r\n\
             POST /b HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip, Chunked \r\n\r\n\
             3;ext=1\r\nabc\r\n0\r\nx-trailer: ffffffffffffffff\r\n\r\n\
             GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
            // Bare LF line ends, a repeated equal length, leading empty lines.
            "\r\nPOST /d HTTP/1.1\nContent-Length: 3, 3\n\nfffGET /e HTTP/1.1\n\n",
        ];
        for stream in streams {
            for result in every_split(stream.as_bytes()) {
                let guard = result.expect("nothing refused");
                assert!(!guard.is_off(), "gave up on {stream:?}");
            }
        }
        let at_bound =
            format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{MAX_CHUNK_SIZE:x}\r\n");
        assert!(scan_in_steps(at_bound.as_bytes(), 7).is_ok());
        let past = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_CHUNK_SIZE + 1
        );
        assert!(scan_in_steps(past.as_bytes(), 7).is_err());
    }

    #[test]
    fn line_feeds_are_found_at_every_offset() {
        for length in 0..40 {
            let mut bytes = vec![b'a'; length];
            assert_eq!(find_line_feed(&bytes), None);
            for at in 0..length {
                bytes[at] = b'\n';
                assert_eq!(find_line_feed(&bytes), Some(at), "{length} {at}");
                bytes[at] = 0x8a; // an LF with its top bit set
                assert_eq!(find_line_feed(&bytes), None, "{length} {at}");
                bytes[at] = b'a';
            }
        }
    }

    #[test]
    fn framing_hyper_refuses_turns_the_guard_off() {
        for stream in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nffffffffffffffff\r\n",
        ] {
            let guard = scan_in_steps(stream.as_bytes(), 5).expect("not refused");
            assert!(guard.is_off(), "{stream:?}");
        }
    }
}
