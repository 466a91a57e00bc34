//! Small async reads and the transaction builder the etcd store is made of.

use etcd_client::{Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use keel_store::transition::StateUpdate;
use keel_store::{EventRecord, GenerationId, GenerationRecord, NewEvent, StoreError};

use crate::etcd::unavailable;

/// A decimal pointer key (`P/active`, `P/seq`): its value and its mod revision (0: absent).
pub(crate) async fn pointer(
    client: &mut Client,
    key: &str,
) -> Result<(Option<GenerationId>, i64), StoreError> {
    let response = client.get(key, None).await.map_err(unavailable)?;
    let Some(kv) = response.kvs().first() else {
        return Ok((None, 0));
    };
    let value = kv
        .value_str()
        .ok()
        .and_then(|v| v.parse::<GenerationId>().ok())
        .ok_or_else(|| corrupt(key, "not a generation number"))?;
    Ok((Some(value), kv.mod_revision()))
}

/// One generation record and its mod revision.
pub(crate) async fn record(
    client: &mut Client,
    key: &str,
) -> Result<Option<(GenerationRecord, i64)>, StoreError> {
    let response = client.get(key, None).await.map_err(unavailable)?;
    let Some(kv) = response.kvs().first() else {
        return Ok(None);
    };
    let record = serde_json::from_slice(kv.value()).map_err(|e| corrupt(key, &e.to_string()))?;
    Ok(Some((record, kv.mod_revision())))
}

/// Every record under `prefix` (generations), newest key first, at most `limit` (0: all).
pub(crate) async fn records(
    client: &mut Client,
    prefix: &str,
    limit: usize,
) -> Result<Vec<GenerationRecord>, StoreError> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Key, SortOrder::Descend)
        .with_limit(i64::try_from(limit).unwrap_or(0));
    let response = client
        .get(prefix, Some(options))
        .await
        .map_err(unavailable)?;
    response
        .kvs()
        .iter()
        .map(|kv| {
            serde_json::from_slice(kv.value())
                .map_err(|e| corrupt(&String::from_utf8_lossy(kv.key()), &e.to_string()))
        })
        .collect()
}

/// Every event under `prefix`, with etcd's create revision as its id.
pub(crate) async fn events(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<EventRecord>, StoreError> {
    let response = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(unavailable)?;
    response
        .kvs()
        .iter()
        .map(|kv| {
            let event: NewEvent = serde_json::from_slice(kv.value())
                .map_err(|e| corrupt(&String::from_utf8_lossy(kv.key()), &e.to_string()))?;
            Ok(EventRecord {
                id: u64::try_from(kv.create_revision()).unwrap_or(0),
                time_ms: event.time_ms,
                kind: event.kind,
                generation: event.generation,
                summary: event.summary,
                details: event.details,
            })
        })
        .collect()
}

/// `key` still has mod revision `revision` (0: still absent).
pub(crate) fn unchanged(key: &str, revision: i64) -> Compare {
    if revision == 0 {
        Compare::version(key, CompareOp::Equal, 0)
    } else {
        Compare::mod_revision(key, CompareOp::Equal, revision)
    }
}

/// A put of `value` as JSON.
pub(crate) fn put_json(key: &str, value: &impl serde::Serialize) -> Result<TxnOp, StoreError> {
    Ok(TxnOp::put(key, serde_json::to_vec(value)?, None))
}

/// Runs `txn`; `Ok(Some(revision))` when its comparisons held and it was written.
pub(crate) async fn commit(client: &mut Client, txn: Txn) -> Result<Option<i64>, StoreError> {
    let response = client.txn(txn).await.map_err(unavailable)?;
    if !response.succeeded() {
        return Ok(None);
    }
    Ok(Some(response.header().map_or(0, |h| h.revision())))
}

/// Applies plan updates to records (as `SqliteStore` and `MemoryStore` apply them to rows).
pub(crate) fn apply_updates(
    records: &mut [GenerationRecord],
    updates: &[StateUpdate],
    now_ms: i64,
) {
    for update in updates {
        let Some(record) = records.iter_mut().find(|r| r.id == update.id) else {
            continue;
        };
        record.state = update.state;
        if update.stamp_activated {
            record.activated_at_ms = Some(now_ms);
        }
        match update.known_good {
            Some(true) => {
                record.known_good = true;
                record.known_good_at_ms = Some(now_ms);
            }
            Some(false) => {
                record.known_good = false;
                record.known_good_at_ms = None;
            }
            None => {}
        }
    }
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table: "etcd",
        id: 0,
        reason: format!("{key}: {reason}"),
    }
}

/// The node canary's record (`P/rollout`) and its mod revision (0: absent).
pub(crate) async fn rollout(
    client: &mut Client,
    key: &str,
) -> Result<(Option<crate::rollout::RolloutState>, i64), StoreError> {
    let response = client.get(key, None).await.map_err(unavailable)?;
    let Some(kv) = response.kvs().first() else {
        return Ok((None, 0));
    };
    let state = serde_json::from_slice(kv.value()).map_err(|e| corrupt(key, &e.to_string()))?;
    Ok((Some(state), kv.mod_revision()))
}

/// The names of the nodes that hold a lease under `prefix` (`P/nodes/`), sorted.
pub(crate) async fn live_nodes(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let response = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .map_err(unavailable)?;
    let mut names: Vec<String> = response
        .kvs()
        .iter()
        .filter_map(|kv| kv.key_str().ok()?.strip_prefix(prefix).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}
