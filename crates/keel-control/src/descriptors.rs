//! The process's file descriptors: raising the soft `RLIMIT_NOFILE` to the hard limit
//! at start (as nginx's `worker_rlimit_nofile` and HAProxy do), and the limit and use
//! that `GET /status` and `keel status` report.
//!
//! Every client connection, backend connection and admin connection takes a
//! descriptor, and a distribution's default soft limit (often 1,024) is far below what
//! an edge proxy holds. The `rlimit` crate makes the two system calls behind a safe
//! API (the workspace forbids `unsafe`).

use serde::{Deserialize, Serialize};

/// Where Linux says how high a hard `RLIMIT_NOFILE` may go; an infinite hard limit is
/// raised only to this.
const NR_OPEN_PATH: &str = "/proc/sys/fs/nr_open";
/// Where Linux lists the process's open descriptors.
const OPEN_FDS_PATH: &str = "/proc/self/fd";

/// The process's descriptor limit and how many it has open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptors {
    /// The soft limit: the most descriptors the process can have open.
    pub limit: u64,
    /// The hard limit: how far the soft limit could be raised.
    pub hard_limit: u64,
    /// Descriptors open now (`None` where the system does not say).
    pub open: Option<u64>,
}

/// Raises the soft descriptor limit to the hard limit and returns the new soft limit.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let ceiling = std::fs::read_to_string(NR_OPEN_PATH)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    rlimit::increase_nofile_limit(ceiling)
}

/// The descriptor limit and use now; `None` when the limit cannot be read.
pub fn descriptors() -> Option<Descriptors> {
    let (limit, hard_limit) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let open = std::fs::read_dir(OPEN_FDS_PATH)
        .ok()
        .map(|entries| entries.count() as u64);
    Some(Descriptors {
        limit,
        hard_limit,
        open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_to_the_hard_one_and_reported() {
        let raised = raise_descriptor_limit().expect("raise");
        let now = descriptors().expect("descriptors");
        assert_eq!(now.limit, raised);
        assert!(now.limit <= now.hard_limit);
        if cfg!(target_os = "linux") {
            assert!(now.open.is_some_and(|open| open > 0 && open <= now.limit));
        }
    }
}
