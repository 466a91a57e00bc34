//! The policy keys of a `[[routes]]` entry: `allow = [..]` / `deny = [..]` (client
//! address blocks). Types live in [`crate::policy`].

use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::policy::{Access, AccessMode, Cidr};
use crate::reader::{Sink, Table, span_of, wrong_type};
use crate::span::Located;

/// The route keys this module reads.
pub(super) const POLICY_KEYS: &[&str] = &["allow", "deny"];

/// `Some(None)`: no address rule; `None`: an error was reported.
pub(super) fn access(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Option<Located<Access>>> {
    let (mode, key) = match (table.get("allow"), table.get("deny")) {
        (Some(_), Some(deny)) => {
            sink.push(
                Diagnostic::error(
                    codes::CONFLICTING_KEYS,
                    format!("{} has both `allow` and `deny`", table.what),
                )
                .at(span_of(deny), "second address rule")
                .with_help(
                    "keep one list: allow = [...] serves only those clients, deny = [...] refuses only those",
                ),
            );
            return None;
        }
        (Some(_), None) => (AccessMode::Allow, "allow"),
        (None, Some(_)) => (AccessMode::Deny, "deny"),
        (None, None) => return Some(None),
    };
    let (items, span) = table.array(sink, key)?;
    let mut blocks: Vec<Located<Cidr>> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Some(text) = item.get_ref().as_str() else {
            wrong_type(sink, item, key, "an address block such as \"10.0.0.0/8\"");
            ok = false;
            continue;
        };
        match Cidr::parse(text) {
            Ok(block) => {
                if !blocks.iter().any(|b| b.value == block) {
                    blocks.push(Located::new(block, span_of(item)));
                }
            }
            Err(reason) => {
                sink.invalid(
                    span_of(item),
                    format!("bad address block in `{key}`: {reason}"),
                    "write an address block such as \"10.0.0.0/8\", \"2001:db8::/32\" or one address \"192.0.2.7\"",
                );
                ok = false;
            }
        }
    }
    ok.then_some(Some(Located::new(Access { mode, blocks }, span)))
}
