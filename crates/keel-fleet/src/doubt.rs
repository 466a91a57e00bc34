//! [`InDoubt`]: how a store call that is run again on another etcd endpoint (`etcd.rs`)
//! stays exactly-once. A transaction whose answer was lost (the member died, the request
//! timed out, "leader changed") may have committed. Every fleet transaction writes a new
//! event under a key of its own (`P/events/<ms>-<node>-<nonce>`), and an etcd transaction
//! is atomic, so that key is the transaction's receipt: before a call writes again it
//! reads the receipts of its earlier attempts. Found: the earlier attempt committed, and
//! the call returns what that attempt would have returned, with the transaction's revision
//! (the receipt's mod revision). Not found: it did not commit (etcd's reads are
//! linearizable, so a new leader has settled its log before it answers), and the call goes
//! on and reads everything afresh.
//!
//! An earlier attempt still in flight on a live member is fenced by the retry's own
//! transaction, which compares and writes the same keys (the id counter for an apply, the
//! records for a transition); a retry that then loses a race looks for the receipts once
//! more before it reports the conflict (`FleetStore::settle`).

use std::sync::{Arc, Mutex, PoisonError};

use etcd_client::{Client, Txn};
use keel_store::StoreError;

use crate::etcd::unavailable;
use crate::ops::commit;

/// The transactions of one store call whose answers were lost, each with its receipt key
/// and what the call returns if it committed.
pub(crate) struct InDoubt<P> {
    sent: Arc<Mutex<Vec<(String, P)>>>,
}

impl<P> Clone for InDoubt<P> {
    fn clone(&self) -> Self {
        InDoubt {
            sent: self.sent.clone(),
        }
    }
}

impl<P: Clone + Send + 'static> InDoubt<P> {
    pub(crate) fn new() -> Self {
        InDoubt {
            sent: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, Vec<(String, P)>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an earlier attempt's answer was lost.
    pub(crate) fn any(&self) -> bool {
        !self.sent().is_empty()
    }

    /// Looks for the receipts of earlier attempts: `Some((what it returns, revision))` when
    /// one committed. Receipts not found stay in doubt (their attempt may still be in flight)
    /// until this call ends.
    pub(crate) async fn committed(
        &self,
        client: &mut Client,
    ) -> Result<Option<(P, i64)>, StoreError> {
        let pending: Vec<(String, P)> = self.sent().clone();
        for (receipt, payload) in pending {
            let response = client
                .get(receipt.as_str(), None)
                .await
                .map_err(unavailable)?;
            if let Some(kv) = response.kvs().first() {
                tracing::info!(%receipt, "an etcd transaction whose answer was lost had committed; not writing it again");
                return Ok(Some((payload, kv.mod_revision())));
            }
        }
        Ok(None)
    }

    /// Commits `txn`, whose receipt (the event key it writes) is `receipt`; `payload` is what
    /// the call returns if it committed. Until an answer arrives the transaction is in
    /// doubt; an answer of any kind (committed or compares failed) settles it.
    pub(crate) async fn commit(
        &self,
        client: &mut Client,
        txn: Txn,
        receipt: String,
        payload: P,
    ) -> Result<Option<i64>, StoreError> {
        self.sent().push((receipt.clone(), payload));
        let answer = commit(client, txn).await?;
        self.sent().retain(|(r, _)| *r != receipt);
        Ok(answer)
    }
}
