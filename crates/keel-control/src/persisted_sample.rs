//! The traffic sample persisted in the state dir, so the gate after a restart has
//! evidence. No evidence is not good evidence: the live sample is empty after a start,
//! and a quiet host may be absent from it; the gate then judges those hosts on the
//! requests sampled before (`traffic-sample.jsonl`, the `GET /traffic/sample` format).
//!
//! ```text
//! every SAMPLE_SAVE_EVERY: live sample non-empty ─▶ write FILE.tmp ─▶ rename to FILE
//! start: read FILE (bounded) ─▶ Controller keeps it ─▶ gate / --adopt-config use it for
//!        hosts the live sample has no request of
//! ```
//!
//! Bounded: at most the data plane's `[traffic] sample_size` shapes are written, and a
//! file larger than [`MAX_SAMPLE_FILE_BYTES`] is not read (it is reported and ignored).
//! A shape holds no bodies, query strings or other headers (`docs/blast-radius.md`).

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keel_route::RequestShape;

use crate::Controller;
use crate::controller::lock;

/// The file's name in the state dir.
pub const SAMPLE_FILE_NAME: &str = "traffic-sample.jsonl";
/// How often the live sample is written (10 seconds).
pub const SAMPLE_SAVE_EVERY: Duration = Duration::from_secs(10);
/// Largest persisted sample read back at start (16 MiB; 10,000 shapes take about 1 MiB).
pub const MAX_SAMPLE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The sample persisted before this start, and where to persist the live one.
#[derive(Debug, Default)]
pub(crate) struct PersistedSample {
    pub(crate) file: Option<PathBuf>,
    pub(crate) shapes: Arc<Vec<RequestShape>>,
}

/// Reads a persisted sample: at most `capacity` shapes from a file no larger than
/// [`MAX_SAMPLE_FILE_BYTES`]. A missing file is an empty sample.
pub(crate) fn read_persisted(path: &Path, capacity: usize) -> Result<Vec<RequestShape>, String> {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        Ok(meta) if meta.len() > MAX_SAMPLE_FILE_BYTES => {
            return Err(format!(
                "{} is {} bytes, more than the {MAX_SAMPLE_FILE_BYTES} a sample may take",
                path.display(),
                meta.len()
            ));
        }
        Ok(_) => {}
    }
    let mut traffic = keel_impact::read_traffic(path).map_err(|e| e.to_string())?;
    traffic.requests.truncate(capacity);
    Ok(traffic.requests)
}

/// Writes `shapes` as JSON lines beside `path`, then renames over it: a crash leaves
/// the previous file whole.
pub(crate) fn write_persisted(path: &Path, shapes: &[RequestShape]) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for shape in shapes {
            serde_json::to_writer(&mut out, shape)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The sample to judge a change on: the live one, plus the persisted shapes of every
/// host the live one has no request of. Returns the sample and how many persisted
/// shapes it took.
pub(crate) fn with_persisted(
    live: Vec<RequestShape>,
    persisted: &[RequestShape],
) -> (Vec<RequestShape>, usize) {
    let live_hosts: HashSet<&str> = live.iter().map(|s| s.host.as_str()).collect();
    let added: Vec<RequestShape> = persisted
        .iter()
        .filter(|s| !live_hosts.contains(s.host.as_str()))
        .cloned()
        .collect();
    let count = added.len();
    let mut sample = live;
    sample.extend(added);
    (sample, count)
}

impl Controller {
    /// Where the live sample is persisted (`STATE_DIR/traffic-sample.jsonl`), and the
    /// sample persisted there before this start, kept for the gate. Returns a note when
    /// the file could not be read.
    pub(crate) fn use_sample_file(&self, file: PathBuf) -> Option<String> {
        let capacity = self.inner.plane.sample().capacity();
        let (shapes, note) = match read_persisted(&file, capacity) {
            Ok(shapes) => (shapes, None),
            Err(error) => (
                Vec::new(),
                Some(format!("persisted traffic sample not used: {error}")),
            ),
        };
        *lock(&self.inner.persisted_sample) = PersistedSample {
            file: Some(file),
            shapes: Arc::new(shapes),
        };
        note
    }

    /// The traffic sample persisted before this start.
    pub(crate) fn persisted_shapes(&self) -> Arc<Vec<RequestShape>> {
        lock(&self.inner.persisted_sample).shapes.clone()
    }

    /// Writes the live sample to the state dir, if it has one and the sample is not
    /// empty (an empty sample would erase the evidence of before).
    pub async fn save_sample(&self) -> std::io::Result<()> {
        let Some(file) = lock(&self.inner.persisted_sample).file.clone() else {
            return Ok(());
        };
        let plane = self.inner.plane.clone();
        tokio::task::spawn_blocking(move || {
            let shapes = plane.sample().snapshot();
            if shapes.is_empty() {
                return Ok(());
            }
            write_persisted(&file, &shapes)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Persists the live sample every [`SAMPLE_SAVE_EVERY`], and once more at shutdown.
pub async fn run_sample_saver(controller: Controller, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(SAMPLE_SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        if let Err(error) = controller.save_sample().await {
            tracing::warn!(%error, "cannot persist the traffic sample");
        }
    }
    if let Err(error) = controller.save_sample().await {
        tracing::warn!(%error, "cannot persist the traffic sample");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(host: &str, path: &str) -> RequestShape {
        RequestShape {
            method: "GET".into(),
            host: host.into(),
            path: path.into(),
            headers: Vec::new(),
            hash_key: None,
            ..RequestShape::default()
        }
    }

    #[test]
    fn a_persisted_sample_reads_back_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(SAMPLE_FILE_NAME);
        assert!(
            read_persisted(&file, 10)
                .expect("missing is empty")
                .is_empty()
        );
        let shapes = vec![shape("a.example", "/1"), shape("b.example", "/2")];
        write_persisted(&file, &shapes).expect("write");
        assert_eq!(read_persisted(&file, 10).expect("read"), shapes);
        assert_eq!(read_persisted(&file, 1).expect("read").len(), 1);
    }

    #[test]
    fn persisted_shapes_fill_in_only_hosts_the_live_sample_lacks() {
        let live = vec![shape("a.example", "/live")];
        let persisted = vec![shape("a.example", "/old"), shape("b.example", "/old")];
        let (sample, added) = with_persisted(live, &persisted);
        assert_eq!(added, 1);
        assert_eq!(sample[1], shape("b.example", "/old"));
    }
}
