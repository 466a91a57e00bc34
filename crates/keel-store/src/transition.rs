//! The generation state machine, as pure functions: given the current state of the generations
//! involved, decide the row updates and the event an operation produces, or refuse it. Both
//! stores and keel-fleet's etcd store execute these plans, so they cannot disagree on the rules.

use serde_json::json;

use crate::event::{first_line, kind};
use crate::{GenerationId, GenerationRecord, GenerationState, NewEvent, StoreError};

/// What a plan needs to know about one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The generation.
    pub id: GenerationId,
    /// Its lifecycle state.
    pub state: GenerationState,
    /// It has an activation time (it served traffic).
    pub has_served: bool,
    /// It carries the known-good mark.
    pub known_good: bool,
}

impl From<&GenerationRecord> for Snapshot {
    fn from(record: &GenerationRecord) -> Self {
        Snapshot {
            id: record.id,
            state: record.state,
            has_served: record.activated_at_ms.is_some(),
            known_good: record.known_good,
        }
    }
}

/// One row change. A plan's updates are applied in order; demotions of the active generation
/// always come before the promotion, so at no point are two rows active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateUpdate {
    /// The generation to change.
    pub id: GenerationId,
    /// Its new state.
    pub state: GenerationState,
    /// Set `activated_at_ms` to the operation's time.
    pub stamp_activated: bool,
    /// `Some(true)`: mark known-good now; `Some(false)`: withdraw the mark.
    pub known_good: Option<bool>,
}

impl StateUpdate {
    fn to(id: GenerationId, state: GenerationState) -> Self {
        StateUpdate {
            id,
            state,
            stamp_activated: false,
            known_good: None,
        }
    }
}

/// Row updates plus the one event that records them, to be written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Row changes, in order.
    pub updates: Vec<StateUpdate>,
    /// The one event recording them.
    pub event: NewEvent,
}

/// State a newly recorded generation starts in.
pub fn applied_state(activate: bool) -> GenerationState {
    if activate {
        GenerationState::Active
    } else {
        GenerationState::Pending
    }
}

/// Updates that must precede inserting an applied generation: the active one is superseded.
pub fn apply_demotions(activate: bool, active: Option<GenerationId>) -> Vec<StateUpdate> {
    match active {
        Some(previous) if activate => vec![StateUpdate::to(previous, GenerationState::Superseded)],
        _ => Vec::new(),
    }
}

/// The "apply" event for a freshly inserted generation.
pub fn apply_event(record: &GenerationRecord, previous_active: Option<GenerationId>) -> NewEvent {
    let activated = record.state == GenerationState::Active;
    let verb = if activated {
        "applied"
    } else {
        "recorded as pending"
    };
    let forced = if record.forced { " (forced)" } else { "" };
    let summary = with_reason(
        format!(
            "generation {} {verb} by {} via {}{forced}",
            record.id, record.author, record.origin
        ),
        &record.message,
    );
    NewEvent::new(kind::APPLY, summary)
        .at(record.created_at_ms)
        .generation(record.id)
        .details(json!({
            "activated": activated,
            "previous_active": previous_active,
            "origin": record.origin,
            "forced": record.forced,
            "author": record.author,
            "message": record.message,
            "content_hash": record.content_hash,
        }))
}

/// The "reject" event for a generation recorded as rejected.
pub fn reject_event(record: &GenerationRecord) -> NewEvent {
    let forced = if record.forced { ", forced" } else { "" };
    let summary = with_reason(
        format!(
            "generation {} rejected ({} via {}{forced})",
            record.id, record.author, record.origin
        ),
        &record.message,
    );
    NewEvent::new(kind::REJECT, summary)
        .at(record.created_at_ms)
        .generation(record.id)
        .details(json!({
            "origin": record.origin,
            "forced": record.forced,
            "author": record.author,
            "message": record.message,
            "content_hash": record.content_hash,
            "check_report": record.check_report,
        }))
}

/// Make `target` active; the active generation (if any) becomes superseded.
pub fn plan_activate(
    target: Snapshot,
    active: Option<Snapshot>,
    origin: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Plan, StoreError> {
    match target.state {
        GenerationState::Active => return Err(refuse(target, "activate it: it is already active")),
        GenerationState::Rejected => {
            return Err(refuse(
                target,
                "activate it: it failed its checks; apply a fixed config",
            ));
        }
        GenerationState::Pending | GenerationState::Superseded | GenerationState::RolledBack => {}
    }
    let mut updates = Vec::with_capacity(2);
    if let Some(active) = active {
        updates.push(StateUpdate::to(active.id, GenerationState::Superseded));
    }
    updates.push(StateUpdate {
        stamp_activated: true,
        ..StateUpdate::to(target.id, GenerationState::Active)
    });
    let previous = active.map(|a| a.id);
    let (event_kind, head) = if target.state == GenerationState::Pending {
        (
            kind::PROMOTE,
            format!("generation {} promoted to active via {origin}", target.id),
        )
    } else {
        (
            kind::ACTIVATE,
            format!("generation {} re-activated via {origin}", target.id),
        )
    };
    let event = NewEvent::new(event_kind, with_reason(head, reason))
        .at(now_ms)
        .generation(target.id)
        .details(json!({ "previous_active": previous, "origin": origin, "reason": reason }));
    Ok(Plan { updates, event })
}

/// Take `from` out of service, judged bad, and serve `to`.
///
/// * `from` active: `to` must have served before (superseded or rolled back); `from` becomes
///   rolled-back, `to` becomes active. `from` keeps its known-good mark: leaving a generation
///   is not evidence against it (only an alarm or an operator's [`plan_mark_bad`] is).
/// * `from` pending (an aborted canary): `to` must be the active generation, which stays active.
pub fn plan_rollback(
    from: Snapshot,
    to: Snapshot,
    origin: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Plan, StoreError> {
    if from.id == to.id {
        return Err(StoreError::InvalidInput(format!(
            "cannot roll generation {} back to itself",
            from.id
        )));
    }
    let mut updates = Vec::with_capacity(2);
    match from.state {
        GenerationState::Active => {
            match to.state {
                GenerationState::Superseded | GenerationState::RolledBack if to.has_served => {}
                GenerationState::Superseded | GenerationState::RolledBack => {
                    return Err(refuse(to, "roll back to it: it never served traffic"));
                }
                _ => {
                    return Err(refuse(
                        to,
                        "roll back to it: only a generation that served before can be",
                    ));
                }
            }
            updates.push(StateUpdate::to(from.id, GenerationState::RolledBack));
            updates.push(StateUpdate {
                stamp_activated: true,
                ..StateUpdate::to(to.id, GenerationState::Active)
            });
        }
        GenerationState::Pending => {
            if to.state != GenerationState::Active {
                return Err(refuse(
                    to,
                    "fall back to it from a canary: a canary falls back to the active generation",
                ));
            }
            updates.push(StateUpdate::to(from.id, GenerationState::RolledBack));
        }
        _ => return Err(refuse(from, "roll back from it: it is not serving traffic")),
    }
    let summary = with_reason(
        format!(
            "rolled back from generation {} to {} via {origin}",
            from.id, to.id
        ),
        reason,
    );
    let event = NewEvent::new(kind::ROLLBACK, summary)
        .at(now_ms)
        .generation(to.id)
        .details(json!({
            "from": from.id,
            "to": to.id,
            "from_state": from.state,
            "origin": origin,
            "reason": reason,
        }));
    Ok(Plan { updates, event })
}

/// Mark `target` known-good. `Ok(None)` when it already is: marking is idempotent and does not
/// repeat the event.
pub fn plan_known_good(target: Snapshot, now_ms: i64) -> Result<Option<Plan>, StoreError> {
    if target.state == GenerationState::Rejected {
        return Err(refuse(target, "mark it known-good: it failed its checks"));
    }
    if !target.has_served {
        return Err(refuse(
            target,
            "mark it known-good: it never served traffic",
        ));
    }
    if target.known_good {
        return Ok(None);
    }
    let update = StateUpdate {
        known_good: Some(true),
        ..StateUpdate::to(target.id, target.state)
    };
    let event = NewEvent::new(
        kind::KNOWN_GOOD,
        format!("generation {} marked known-good", target.id),
    )
    .at(now_ms)
    .generation(target.id)
    .details(json!({ "state": target.state }));
    Ok(Some(Plan {
        updates: vec![update],
        event,
    }))
}

/// Judge `target` bad: its known-good mark (if any) is withdrawn, so no rollback picks it
/// without `--force`, and the event says who judged it and why. Always writes the event (a
/// generation that was never known-good can still be judged bad: the reason is the record).
pub fn plan_mark_bad(
    target: Snapshot,
    origin: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Plan, StoreError> {
    if target.state == GenerationState::Rejected {
        return Err(refuse(
            target,
            "mark it bad: it was refused and never served, so nothing can roll back to it",
        ));
    }
    let update = StateUpdate {
        known_good: target.known_good.then_some(false),
        ..StateUpdate::to(target.id, target.state)
    };
    let event = NewEvent::new(
        kind::MARK_BAD,
        with_reason(
            format!("generation {} marked bad via {origin}", target.id),
            reason,
        ),
    )
    .at(now_ms)
    .generation(target.id)
    .details(json!({
        "state": target.state,
        "origin": origin,
        "reason": reason,
        "withdrew_known_good": target.known_good,
    }));
    Ok(Plan {
        updates: vec![update],
        event,
    })
}

fn refuse(target: Snapshot, action: &str) -> StoreError {
    StoreError::InvalidTransition {
        id: target.id,
        state: target.state,
        action: action.to_owned(),
    }
}

fn with_reason(head: String, reason: &str) -> String {
    let reason = first_line(reason);
    if reason.is_empty() {
        head
    } else {
        format!("{head}: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: GenerationId, state: GenerationState, has_served: bool) -> Snapshot {
        Snapshot {
            id,
            state,
            has_served,
            known_good: false,
        }
    }

    #[test]
    fn rollback_demotes_before_promoting_and_keeps_known_good() {
        let from = Snapshot {
            known_good: true,
            ..snap(5, GenerationState::Active, true)
        };
        let to = snap(3, GenerationState::Superseded, true);
        let plan = plan_rollback(from, to, "cli", "5xx jump", 7);
        let plan = plan.map_err(|e| e.to_string());
        let updates = plan.as_ref().map(|p| p.updates.clone());
        assert_eq!(
            updates,
            Ok(vec![
                StateUpdate::to(5, GenerationState::RolledBack),
                StateUpdate {
                    stamp_activated: true,
                    ..StateUpdate::to(3, GenerationState::Active)
                },
            ])
        );
        let summary = plan.map(|p| p.event.summary);
        assert_eq!(
            summary,
            Ok("rolled back from generation 5 to 3 via cli: 5xx jump".to_owned())
        );
    }

    #[test]
    fn rollback_refuses_targets_that_never_served() {
        let from = snap(5, GenerationState::Active, true);
        for to in [
            snap(4, GenerationState::Rejected, false),
            snap(4, GenerationState::Pending, false),
            snap(4, GenerationState::RolledBack, false),
        ] {
            assert!(matches!(
                plan_rollback(from, to, "cli", "", 0),
                Err(StoreError::InvalidTransition { id: 4, .. })
            ));
        }
        let superseded = snap(4, GenerationState::Superseded, true);
        assert!(matches!(
            plan_rollback(superseded, from, "cli", "", 0),
            Err(StoreError::InvalidTransition { id: 4, .. })
        ));
    }

    #[test]
    fn aborted_canary_falls_back_to_the_active_generation_only() {
        let canary = snap(6, GenerationState::Pending, false);
        let active = snap(5, GenerationState::Active, true);
        let plan = plan_rollback(canary, active, "guard", "alert", 0).ok();
        assert_eq!(
            plan.map(|p| p.updates),
            Some(vec![StateUpdate::to(6, GenerationState::RolledBack)])
        );
        let old = snap(4, GenerationState::Superseded, true);
        assert!(plan_rollback(canary, old, "guard", "alert", 0).is_err());
    }

    #[test]
    fn activate_names_promotions_and_refuses_rejected() {
        let active = Some(snap(5, GenerationState::Active, true));
        let promote = plan_activate(
            snap(6, GenerationState::Pending, false),
            active,
            "cli",
            "",
            0,
        );
        assert_eq!(
            promote.map(|p| p.event.kind).ok().as_deref(),
            Some(kind::PROMOTE)
        );
        let again = plan_activate(
            snap(4, GenerationState::RolledBack, true),
            active,
            "cli",
            "",
            0,
        );
        assert_eq!(
            again.map(|p| p.event.kind).ok().as_deref(),
            Some(kind::ACTIVATE)
        );
        assert!(
            plan_activate(
                snap(4, GenerationState::Rejected, false),
                active,
                "cli",
                "",
                0
            )
            .is_err()
        );
    }

    #[test]
    fn mark_bad_withdraws_known_good_and_always_records_why() {
        let good = Snapshot {
            known_good: true,
            ..snap(5, GenerationState::Superseded, true)
        };
        let plan = plan_mark_bad(good, "cli", "served stale prices", 3).ok();
        assert_eq!(
            plan.as_ref().map(|p| p.updates.clone()),
            Some(vec![StateUpdate {
                known_good: Some(false),
                ..StateUpdate::to(5, GenerationState::Superseded)
            }])
        );
        assert_eq!(
            plan.map(|p| p.event.summary),
            Some("generation 5 marked bad via cli: served stale prices".to_owned())
        );
        let never_good = snap(4, GenerationState::RolledBack, true);
        let plan = plan_mark_bad(never_good, "guard", "identity alert", 3).ok();
        assert_eq!(
            plan.map(|p| p.updates),
            Some(vec![StateUpdate::to(4, GenerationState::RolledBack)])
        );
        assert!(plan_mark_bad(snap(3, GenerationState::Rejected, false), "cli", "", 0).is_err());
    }

    #[test]
    fn known_good_is_idempotent_and_needs_traffic() {
        let served = snap(5, GenerationState::Superseded, true);
        assert!(matches!(plan_known_good(served, 0), Ok(Some(_))));
        let marked = Snapshot {
            known_good: true,
            ..served
        };
        assert!(matches!(plan_known_good(marked, 0), Ok(None)));
        assert!(plan_known_good(snap(6, GenerationState::Pending, false), 0).is_err());
    }
}
