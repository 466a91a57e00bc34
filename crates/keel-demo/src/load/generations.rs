//! Which config generation routed each response, counted without locks.
//!
//! The proxy names the generation in `x-keel-generation`. The first
//! [`GENERATION_SLOTS`] distinct ids each get a counter slot, claimed by compare-and-swap
//! on first sight; responses without the header, with an unreadable one, or past the
//! slots are counted apart so no response goes uncounted.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// Distinct generation ids counted one by one (16); a demo run applies a handful.
pub const GENERATION_SLOTS: usize = 16;
/// Counter positions: one per slot, then "missing", then "other".
pub(crate) const GENERATION_COUNTERS: usize = GENERATION_SLOTS + 2;
const MISSING: usize = GENERATION_SLOTS;
const OTHER: usize = GENERATION_SLOTS + 1;
/// Slot value of a slot not yet claimed; claimed slots hold `id + 1`.
const EMPTY: u64 = 0;

/// The generation a response named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GenerationLabel {
    /// `x-keel-generation: N`.
    Id(u64),
    /// No `x-keel-generation` header (for example, the request never reached the proxy).
    Missing,
    /// An unreadable header value, or more distinct generations than there are slots.
    Other,
}

/// What the header said, before it has a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GenerationSeen {
    Id(u64),
    Missing,
    Unreadable,
}

impl GenerationSeen {
    pub(crate) fn from_header(value: Option<&HeaderValue>) -> GenerationSeen {
        match value {
            None => GenerationSeen::Missing,
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map_or(GenerationSeen::Unreadable, GenerationSeen::Id),
        }
    }
}

/// The slot table shared by every counter array of one load.
#[derive(Debug, Default)]
pub(crate) struct GenerationTable {
    ids: [AtomicU64; GENERATION_SLOTS],
}

impl GenerationTable {
    /// The counter position of `seen`, claiming a slot for a new id.
    pub(crate) fn position(&self, seen: GenerationSeen) -> usize {
        let id = match seen {
            GenerationSeen::Missing => return MISSING,
            GenerationSeen::Unreadable => return OTHER,
            GenerationSeen::Id(id) => id,
        };
        let Some(key) = id.checked_add(1) else {
            return OTHER;
        };
        for (position, slot) in self.ids.iter().enumerate() {
            let current = slot.load(Ordering::Acquire);
            if current == key {
                return position;
            }
            if current == EMPTY {
                match slot.compare_exchange(EMPTY, key, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return position,
                    // Another response claimed this slot first, maybe for the same id.
                    Err(claimed) if claimed == key => return position,
                    Err(_) => continue,
                }
            }
        }
        OTHER
    }

    /// The label of counter position `position`, or `None` for an unclaimed slot.
    pub(crate) fn label(&self, position: usize) -> Option<GenerationLabel> {
        match position {
            MISSING => Some(GenerationLabel::Missing),
            OTHER => Some(GenerationLabel::Other),
            _ => match self.ids.get(position)?.load(Ordering::Acquire) {
                EMPTY => None,
                key => Some(GenerationLabel::Id(key - 1)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_get_stable_slots_and_the_rest_is_counted_apart() {
        let table = GenerationTable::default();
        let first = table.position(GenerationSeen::Id(3));
        let second = table.position(GenerationSeen::Id(4));
        assert_ne!(first, second);
        assert_eq!(table.position(GenerationSeen::Id(3)), first);
        assert_eq!(table.label(first), Some(GenerationLabel::Id(3)));
        assert_eq!(table.label(second), Some(GenerationLabel::Id(4)));
        assert_eq!(table.position(GenerationSeen::Missing), MISSING);
        assert_eq!(table.position(GenerationSeen::Unreadable), OTHER);
        assert_eq!(table.position(GenerationSeen::Id(u64::MAX)), OTHER);
        assert_eq!(table.label(5), None);
        for id in 100..100 + GENERATION_SLOTS as u64 {
            table.position(GenerationSeen::Id(id));
        }
        assert_eq!(table.position(GenerationSeen::Id(9_999)), OTHER);
    }

    #[test]
    fn header_values_parse_to_ids() {
        let seen =
            |v: &'static str| GenerationSeen::from_header(Some(&HeaderValue::from_static(v)));
        assert_eq!(seen("12"), GenerationSeen::Id(12));
        assert_eq!(seen("x"), GenerationSeen::Unreadable);
        assert_eq!(GenerationSeen::from_header(None), GenerationSeen::Missing);
    }
}
