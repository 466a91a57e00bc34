//! A response body compressed as it streams (see [`crate::compress`] for when).
//!
//! Each data frame of the source body goes through the encoder (async-compression's
//! gzip and brotli codecs, driven directly: no reader or writer adapters) into one
//! output buffer of [`OUTPUT_CHUNK_BYTES`]; a full buffer goes out as a frame. Nothing
//! holds more than that buffer and the encoder's own window, whatever the body's size.
//!
//! When the source has nothing ready (the backend is still working), whatever input the
//! encoder holds is flushed (a gzip sync flush, a brotli flush) and sent: a client of a
//! slow or streaming backend gets each piece as soon as the backend sent it, not when a
//! buffer fills. A backend that streams without pausing gets full buffers, and the
//! compression ratio of a body compressed in one go. At the end of the source the
//! encoder's trailer is written, then the source's trailers, if any, pass.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::codecs::{BrotliEncoder, Encode, GzipEncoder};
use async_compression::core::util::PartialBuffer;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use keel_config::ContentCoding;

use crate::body::ResponseBody;

/// Bytes of compressed output gathered before they go out as one frame (16 KiB, the
/// size of a TLS record's payload).
pub(crate) const OUTPUT_CHUNK_BYTES: usize = 16 * 1024;

/// gzip's level: 1, the fastest, as nginx's `gzip_comp_level` default. Text compresses
/// to about a quarter at this level already; higher levels cost much more CPU for a few
/// percent.
pub(crate) const GZIP_LEVEL: i32 = 1;

/// Brotli's quality: 4 (of 0–11), fast enough for answers compressed as they stream
/// (the higher qualities are for files compressed once ahead of time), and smaller than
/// gzip at level 1.
pub(crate) const BROTLI_QUALITY: i32 = 4;

/// Brotli's window: 2^19 bytes (512 KiB) instead of the library's 4 MiB, which bounds
/// the memory each compressed answer holds.
pub(crate) const BROTLI_WINDOW_BITS: i32 = 19;

/// What a body's `poll_frame` returns.
type Polled = Poll<Option<Result<Frame<Bytes>, hyper::Error>>>;

/// One of the codecs, ready to encode one body.
enum Encoder {
    Gzip(Box<GzipEncoder>),
    Brotli(Box<BrotliEncoder>),
}

impl Encoder {
    fn new(coding: ContentCoding) -> Self {
        let level = async_compression::Level::Precise;
        match coding {
            ContentCoding::Gzip => {
                Encoder::Gzip(Box::new(GzipEncoder::new(level(GZIP_LEVEL).into())))
            }
            ContentCoding::Brotli => Encoder::Brotli(Box::new(BrotliEncoder::new(
                async_compression::brotli::EncoderParams::default()
                    .quality(level(BROTLI_QUALITY))
                    .window_size(BROTLI_WINDOW_BITS),
            ))),
        }
    }

    fn encode(
        &mut self,
        input: &mut PartialBuffer<&[u8]>,
        output: &mut PartialBuffer<Vec<u8>>,
    ) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => Encode::encode(&mut **e, input, output),
            Encoder::Brotli(e) => Encode::encode(&mut **e, input, output),
        }
    }

    /// True when everything it held is written out.
    fn flush(&mut self, output: &mut PartialBuffer<Vec<u8>>) -> std::io::Result<bool> {
        match self {
            Encoder::Gzip(e) => Encode::flush(&mut **e, output),
            Encoder::Brotli(e) => Encode::flush(&mut **e, output),
        }
    }

    /// True when the end of the stream is written out.
    fn finish(&mut self, output: &mut PartialBuffer<Vec<u8>>) -> std::io::Result<bool> {
        match self {
            Encoder::Gzip(e) => Encode::finish(&mut **e, output),
            Encoder::Brotli(e) => Encode::finish(&mut **e, output),
        }
    }
}

/// Where the compressed body is.
enum Stage {
    /// Reading the source.
    Reading,
    /// The source ended: writing the encoder's end of stream.
    Finishing,
    /// Compressed output all sent: the source's trailers, if any, go next.
    Trailers,
    Done,
}

/// The source body and its encoder.
pub(crate) struct Compressing {
    source: ResponseBody,
    encoder: Encoder,
    /// A source frame not yet all taken by the encoder, and how much of it was.
    input: Option<(Bytes, usize)>,
    output: PartialBuffer<Vec<u8>>,
    /// Input went into the encoder since its last flush.
    unflushed: bool,
    stage: Stage,
    trailers: Option<HeaderMap>,
}

impl Compressing {
    pub(crate) fn new(source: ResponseBody, coding: ContentCoding) -> Self {
        Self {
            source,
            encoder: Encoder::new(coding),
            input: None,
            output: PartialBuffer::new(vec![0; OUTPUT_CHUNK_BYTES]),
            unflushed: false,
            stage: Stage::Reading,
            trailers: None,
        }
    }

    /// The output gathered so far, as a frame; the buffer is reused.
    fn take_output(&mut self) -> Frame<Bytes> {
        let written = Bytes::copy_from_slice(self.output.written());
        self.output.reset();
        Frame::data(written)
    }

    fn output_full(&self) -> bool {
        self.output.unwritten().is_empty()
    }

    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Polled {
        match self.step(cx) {
            Ok(polled) => polled,
            Err(error) => {
                // In-memory encoders do not fail on any input; were one to, the body
                // ends here and the client's decoder reports a truncated stream.
                tracing::warn!(%error, "compressing an answer failed");
                self.stage = Stage::Done;
                Poll::Ready(None)
            }
        }
    }

    fn step(&mut self, cx: &mut Context<'_>) -> std::io::Result<Polled> {
        loop {
            if let Some((bytes, taken)) = &mut self.input {
                let mut input = PartialBuffer::new(&bytes[*taken..]);
                self.encoder.encode(&mut input, &mut self.output)?;
                *taken += input.written().len();
                if *taken >= bytes.len() {
                    self.input = None;
                }
                if self.output_full() {
                    return Ok(Poll::Ready(Some(Ok(self.take_output()))));
                }
                continue;
            }
            match self.stage {
                Stage::Reading => match Pin::new(&mut self.source).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if data.is_empty() => {}
                        Ok(data) => {
                            self.input = Some((data, 0));
                            self.unflushed = true;
                        }
                        Err(frame) => {
                            self.trailers = frame.into_trailers().ok();
                            self.stage = Stage::Finishing;
                        }
                    },
                    Poll::Ready(None) => self.stage = Stage::Finishing,
                    Poll::Ready(Some(Err(error))) => {
                        self.stage = Stage::Done;
                        return Ok(Poll::Ready(Some(Err(error))));
                    }
                    Poll::Pending if self.unflushed => {
                        // The backend paused: send what it sent so far.
                        let done = self.encoder.flush(&mut self.output)?;
                        self.unflushed = !done;
                        if !self.output.written().is_empty() {
                            return Ok(Poll::Ready(Some(Ok(self.take_output()))));
                        }
                        if done {
                            return Ok(Poll::Pending);
                        }
                    }
                    Poll::Pending => return Ok(Poll::Pending),
                },
                Stage::Finishing => {
                    let done = self.encoder.finish(&mut self.output)?;
                    if done {
                        self.stage = Stage::Trailers;
                    }
                    if (done || self.output_full()) && !self.output.written().is_empty() {
                        return Ok(Poll::Ready(Some(Ok(self.take_output()))));
                    }
                }
                Stage::Trailers => {
                    self.stage = Stage::Done;
                    if let Some(trailers) = self.trailers.take() {
                        return Ok(Poll::Ready(Some(Ok(Frame::trailers(trailers)))));
                    }
                }
                Stage::Done => return Ok(Poll::Ready(None)),
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;

    async fn decode(coding: ContentCoding, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            ContentCoding::Gzip => {
                async_compression::tokio::bufread::GzipDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .await
            }
            ContentCoding::Brotli => {
                async_compression::tokio::bufread::BrotliDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .await
            }
        }
        .expect("decodes");
        out
    }

    #[tokio::test]
    async fn bodies_round_trip_in_bounded_frames() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"n\":{}}}", i % 7).into_bytes())
            .collect();
        for coding in ContentCoding::ALL {
            for source in [ResponseBody::full(text.clone()), ResponseBody::empty()] {
                let expected = if source.is_end_stream() {
                    Vec::new()
                } else {
                    text.clone()
                };
                let mut body = source.compressed(coding);
                let mut compressed = Vec::new();
                while let Some(frame) = body.frame().await {
                    let data = frame.expect("frame").into_data().expect("data");
                    assert!(data.len() <= OUTPUT_CHUNK_BYTES, "{}", data.len());
                    compressed.extend_from_slice(&data);
                }
                assert!(body.is_end_stream());
                assert_eq!(decode(coding, &compressed).await, expected, "{coding:?}");
                if !expected.is_empty() {
                    assert!(
                        compressed.len() < expected.len() / 4,
                        "{coding:?}: {}",
                        compressed.len()
                    );
                }
            }
        }
    }
}
