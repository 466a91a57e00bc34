//! The candidate values of each request dimension for one host group: the hosts,
//! paths, methods and header combinations that separate the equivalence classes of the
//! conditions of a route B and its earlier routes C (see `space` for the list). Each
//! generator also says whether its candidates are complete (no regex guess, no fresh
//! value that could not be made).

use std::collections::{HashMap, HashSet};

use keel_route::MAX_HOST_LEN;

use super::pred::{HostPred, PathPred, Pred};

/// Labels tried for a host under a wildcard suffix, most readable first.
const FRESH_LABELS: [&str; 3] = ["keel-witness", "w", "x0"];
/// Hosts tried for "a host no route names".
const OTHER_HOSTS: [&str; 3] = ["keel-witness.invalid", "keel-witness.test", "keel-witness"];
/// Path extensions tried for "under this prefix but under no longer one".
const FRESH_SEGMENTS: [&str; 4] = ["/keel-witness", "keel-witness", "-keel-witness", "~k"];
/// Methods tried for "a method no route names", most common first.
const UNNAMED_METHODS: [&str; 8] = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "HEAD",
    "OPTIONS",
    "KEEL-WITNESS",
];

/// Strings kept once each, in insertion order.
#[derive(Default)]
struct Unique {
    items: Vec<String>,
    seen: HashSet<String>,
}

impl Unique {
    fn push(&mut self, value: String) {
        if !self.seen.contains(&value) {
            self.seen.insert(value.clone());
            self.items.push(value);
        }
    }
}

/// True when `host` ends with one of `suffixes` with something before it.
fn under_any_suffix(host: &str, suffixes: &HashSet<&str>) -> bool {
    host.match_indices('.')
        .any(|(at, _)| at > 0 && suffixes.contains(&host[at..]))
}

/// Hosts of B's host space, one per class; the "other host" first (it settles
/// catch-alls at once).
pub(super) fn host_candidates(
    preds: &[Pred<'_>],
    b: &Pred<'_>,
    c: &[usize],
) -> (Vec<String>, bool) {
    let mut exact_hosts: Vec<&str> = Vec::new();
    let mut suffixes: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut seen_suffixes: HashSet<&str> = HashSet::new();
    for id in c {
        match preds[*id].host {
            HostPred::Exact(h) if seen.insert(h) => exact_hosts.push(h),
            HostPred::Suffix(s) if seen_suffixes.insert(s) => suffixes.push(s),
            _ => {}
        }
    }
    let mut exact = true;
    let mut out = Unique::default();
    // False when no fresh host could be made (the class is then not represented).
    let fresh_under = |suffix: &str, out: &mut Unique| match fresh_host(suffix, &seen) {
        Some(host) => {
            out.push(host);
            true
        }
        None => false,
    };
    match b.host {
        HostPred::Exact(h) => out.push(h.to_string()),
        HostPred::Suffix(s) => {
            exact &= fresh_under(s, &mut out);
            for sx in &suffixes {
                if sx.len() > s.len() && sx.ends_with(s) {
                    exact &= fresh_under(sx, &mut out);
                }
            }
            for h in &exact_hosts {
                if h.len() > s.len() && h.ends_with(s) {
                    out.push((*h).to_string());
                }
            }
        }
        HostPred::Any => {
            match other_host(&seen, &seen_suffixes) {
                Some(host) => out.push(host),
                None => exact = false,
            }
            for sx in &suffixes {
                exact &= fresh_under(sx, &mut out);
            }
            for h in &exact_hosts {
                out.push((*h).to_string());
            }
        }
    }
    (out.items, exact)
}

fn fresh_host(suffix: &str, exact_hosts: &HashSet<&str>) -> Option<String> {
    FRESH_LABELS
        .iter()
        .map(|label| format!("{label}{suffix}"))
        .chain((0..64).map(|n| format!("w{n}{suffix}")))
        .find(|host| host.len() <= MAX_HOST_LEN && !exact_hosts.contains(host.as_str()))
}

fn other_host(exact_hosts: &HashSet<&str>, suffixes: &HashSet<&str>) -> Option<String> {
    OTHER_HOSTS
        .iter()
        .map(|h| (*h).to_string())
        .chain((0..64).map(|n| format!("keel-witness-{n}")))
        .find(|host| !exact_hosts.contains(host.as_str()) && !under_any_suffix(host, suffixes))
}

/// `base` plus a segment that keeps it under no longer prefix of `prefixes` and equal to
/// no path of `exacts`.
fn fresh_path(base: &str, prefixes: &HashSet<&str>, exacts: &HashSet<&str>) -> Option<String> {
    FRESH_SEGMENTS
        .iter()
        .filter(|segment| !(base.ends_with('/') && segment.starts_with('/')))
        .map(|segment| format!("{base}{segment}"))
        .chain((0..64).map(|n| format!("{base}~{n}")))
        .find(|path| {
            // The prefixes a path is under are among its own leading substrings.
            !exacts.contains(path.as_str())
                && !(base.len() + 1..=path.len())
                    .any(|end| path.is_char_boundary(end) && prefixes.contains(&path[..end]))
        })
}

/// Paths of B's path space, one per class of the group's path conditions.
pub(super) fn path_candidates(b: &Pred<'_>, group: &[&Pred<'_>]) -> (Vec<String>, bool) {
    let mut prefixes: HashSet<&str> = HashSet::new();
    let mut exacts: HashSet<&str> = HashSet::new();
    for a in group {
        match &a.path {
            PathPred::Prefix(p) => {
                prefixes.insert(p);
            }
            PathPred::Exact(e) => {
                exacts.insert(e);
            }
            PathPred::Any | PathPred::Regex(_) => {}
        }
    }
    let mut out = Unique::default();
    let mut exact = true;
    // Adds `base` and `base` plus a fresh segment; false when no fresh segment exists.
    let with_fresh = |base: &str, out: &mut Unique| {
        if b.path_matches(base) {
            out.push(base.to_string());
        }
        match fresh_path(base, &prefixes, &exacts) {
            Some(path) => {
                if b.path_matches(&path) {
                    out.push(path);
                }
                true
            }
            None => false,
        }
    };
    match &b.path {
        PathPred::Exact(p) => return (vec![(*p).to_string()], true),
        PathPred::Any | PathPred::Prefix(_) => {
            let base = match &b.path {
                PathPred::Prefix(q) => q,
                _ => "/",
            };
            exact &= with_fresh(base, &mut out);
            for a in group {
                match &a.path {
                    PathPred::Exact(e) if b.path_matches(e) => out.push((*e).into()),
                    PathPred::Prefix(p) if p.len() > base.len() && p.starts_with(base) => {
                        exact &= with_fresh(p, &mut out);
                    }
                    PathPred::Regex(x) => {
                        exact = false;
                        for sample in x.samples.iter().filter(|s| b.path_matches(s)) {
                            out.push(sample.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        PathPred::Regex(r) => {
            for sample in &r.samples {
                out.push(sample.clone());
            }
            exact &= !out.items.is_empty();
            let mut named_exacts: Vec<&str> = Vec::new();
            for a in group {
                match &a.path {
                    PathPred::Any => {}
                    PathPred::Exact(e) => {
                        if r.regex.is_match(e) {
                            out.push((*e).to_string());
                            named_exacts.push(e);
                        }
                    }
                    PathPred::Prefix(p) => {
                        let all = r.prefix.starts_with(p);
                        let none = !p.starts_with(&r.prefix);
                        exact &= all || none;
                        exact &= with_fresh(p, &mut out);
                    }
                    PathPred::Regex(x) => {
                        exact &= x.source == r.source;
                        for sample in x.samples.iter().filter(|s| r.regex.is_match(s)) {
                            out.push(sample.clone());
                        }
                    }
                }
            }
            // The class "matches the regex but none of those exact paths" needs a sample.
            if !named_exacts.is_empty() && r.samples.iter().all(|s| named_exacts.contains(&&**s)) {
                exact = false;
            }
        }
    }
    (out.items, exact)
}

/// B's methods, or every method the group names plus one it does not.
pub(super) fn method_candidates(b: &Pred<'_>, group: &[&Pred<'_>]) -> Vec<String> {
    if let Some(methods) = &b.methods {
        return methods.iter().map(|m| (*m).to_string()).collect();
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for a in group {
        for m in a.methods.iter().flatten() {
            if seen.insert(m) {
                out.push((*m).to_string());
            }
        }
    }
    // The named methods are finite, so a numbered one is always free.
    let unnamed = UNNAMED_METHODS
        .iter()
        .map(|m| (*m).to_string())
        .chain((2..).map(|n| format!("KEEL-WITNESS-{n}")))
        .find(|m| !seen.contains(m.as_str()));
    out.extend(unnamed);
    out
}

/// Per header: the values to try (`None`: absent). B's required headers have one value.
pub(super) fn header_dims<'c>(
    b: &Pred<'c>,
    group: &[&Pred<'c>],
    variants: bool,
) -> Vec<(&'c str, Vec<Option<&'c str>>)> {
    let mut dims: Vec<(&'c str, Vec<Option<&'c str>>)> = b
        .headers
        .iter()
        .map(|(n, v)| (*n, vec![Some(*v)]))
        .collect();
    if !variants {
        return dims;
    }
    let fixed: HashSet<&str> = b.headers.iter().map(|(n, _)| *n).collect();
    let mut index: HashMap<&'c str, usize> = HashMap::new();
    for a in group {
        for (name, value) in &a.headers {
            if fixed.contains(name) {
                continue;
            }
            match index.get(name) {
                Some(at) => {
                    let values = &mut dims[*at].1;
                    if !values.contains(&Some(*value)) {
                        values.push(Some(value));
                    }
                }
                None => {
                    index.insert(name, dims.len());
                    dims.push((name, vec![None, Some(value)]));
                }
            }
        }
    }
    dims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_paths_avoid_longer_prefixes() {
        let prefixes = HashSet::from(["/a/keel-witness", "/akeel-witness"]);
        let path = fresh_path("/a", &prefixes, &HashSet::new());
        assert_eq!(path.as_deref(), Some("/a-keel-witness"));
    }

    #[test]
    fn an_unnamed_method_always_exists() {
        let all = Pred {
            listeners: Vec::new(),
            methods: Some(UNNAMED_METHODS.to_vec()),
            ..Pred::any()
        };
        let methods = method_candidates(&Pred::any(), &[&all]);
        assert_eq!(methods.len(), UNNAMED_METHODS.len() + 1);
        assert_eq!(methods.last().map(String::as_str), Some("KEEL-WITNESS-2"));
    }
}
