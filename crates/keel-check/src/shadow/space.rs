//! Representative requests: for a route B and the earlier routes C that may take its
//! requests, one concrete request per equivalence class of the conditions involved.
//!
//! Two requests are equivalent when every condition of B and of C says the same about
//! both. Per dimension the classes are finite and known:
//!
//! - host: B's exact host; or, under B's wildcard or any host, a fresh label under each
//!   wildcard suffix of C, every exact host of C that B allows, and a host no route of C
//!   names (an absent host behaves like such a host);
//! - path (paths start with `/`): B's exact path; or B's prefix (or `/`) and that prefix
//!   plus a fresh segment, and every exact path, prefix and prefix-plus-fresh-segment of
//!   C that falls inside B; path regexes contribute sample paths;
//! - method: B's methods, or every method C names plus one it does not name;
//! - headers: B's required values, and for each header C requires: absent, or each value
//!   C requires.
//!
//! The classes are enumerated host by host, with only the routes of C that match that
//! host, so a route with 10,000 predecessors on other hosts costs little. Regexes make
//! the class set incomplete (a sample is a guess), and enumeration stops at a budget: in
//! both cases the enumeration says it is not exact, and the caller must not claim a
//! universal verdict.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use keel_route::{MAX_HOST_LEN, RequestShape, normalize_host};

use super::pred::{HostPred, PathPred, Pred};

/// Most representative requests tried for one route before giving up on exactness.
pub(crate) const MAX_REPRESENTATIVES: usize = 20_000;

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

/// What to enumerate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Vary the headers earlier routes require (off for plain-traffic spaces).
    pub(crate) header_variants: bool,
    /// Stop after this many representatives.
    pub(crate) limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            header_variants: true,
            limit: MAX_REPRESENTATIVES,
        }
    }
}

/// How an enumeration went.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Enumeration {
    /// Representatives visited.
    pub(crate) visited: usize,
    /// True when the representatives cover every equivalence class (no regex guess,
    /// no budget cut). Meaningless when the visitor stopped early.
    pub(crate) exact: bool,
}

/// Calls `visit` with one request per equivalence class that `b` matches, until it
/// breaks. `c` are the earlier routes (ids into `preds`) that may take `b`'s requests.
pub(crate) fn for_each_representative(
    preds: &[Pred<'_>],
    b: &Pred<'_>,
    c: &[usize],
    options: Options,
    mut visit: impl FnMut(&RequestShape) -> ControlFlow<()>,
) -> Enumeration {
    let (hosts, mut exact) = host_candidates(preds, b, c);
    // Exact-host routes of `c` by host, so each host's group costs its own size.
    let mut by_host: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut others = Vec::new();
    for id in c {
        match preds[*id].host {
            HostPred::Exact(h) => by_host.entry(h).or_default().push(*id),
            HostPred::Suffix(_) | HostPred::Any => others.push(*id),
        }
    }
    let mut visited = 0;
    let mut request = RequestShape::default();
    for host in hosts {
        let mut buffer = [0u8; MAX_HOST_LEN];
        let normalized = normalize_host(&host, &mut buffer);
        let mut ids: Vec<usize> = normalized
            .and_then(|h| by_host.get(h))
            .cloned()
            .unwrap_or_default();
        ids.extend(
            others
                .iter()
                .copied()
                .filter(|id| preds[*id].host_matches(normalized)),
        );
        ids.sort_unstable();
        let group: Vec<&Pred<'_>> = ids.iter().map(|id| &preds[*id]).collect();
        let (paths, paths_exact) = path_candidates(b, &group);
        exact &= paths_exact;
        let methods = method_candidates(b, &group);
        let headers = header_dims(b, &group, options.header_variants);
        request.host.clear();
        request.host.push_str(&host);

        let mut dims: Vec<usize> = vec![paths.len(), methods.len()];
        dims.extend(headers.iter().map(|(_, values)| values.len()));
        if dims.contains(&0) {
            continue;
        }
        let mut odometer = vec![0usize; dims.len()];
        loop {
            if visited >= options.limit {
                return Enumeration {
                    visited,
                    exact: false,
                };
            }
            fill(&mut request, &paths, &methods, &headers, &odometer);
            if b.matches(&request) {
                visited += 1;
                if visit(&request).is_break() {
                    return Enumeration { visited, exact };
                }
            }
            if !advance(&mut odometer, &dims) {
                break;
            }
        }
    }
    Enumeration { visited, exact }
}

fn fill(
    request: &mut RequestShape,
    paths: &[String],
    methods: &[&str],
    headers: &[(&str, Vec<Option<&str>>)],
    odometer: &[usize],
) {
    request.path.clear();
    request.path.push_str(&paths[odometer[0]]);
    request.method.clear();
    request.method.push_str(methods[odometer[1]]);
    request.headers.clear();
    for ((name, values), index) in headers.iter().zip(&odometer[2..]) {
        if let Some(value) = values[*index] {
            request
                .headers
                .push(((*name).to_string(), value.to_string()));
        }
    }
}

/// Steps the odometer; false when it wrapped around (every combination seen).
fn advance(odometer: &mut [usize], dims: &[usize]) -> bool {
    for (digit, size) in odometer.iter_mut().zip(dims).rev() {
        *digit += 1;
        if *digit < *size {
            return true;
        }
        *digit = 0;
    }
    false
}

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

fn host_candidates(preds: &[Pred<'_>], b: &Pred<'_>, c: &[usize]) -> (Vec<String>, bool) {
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

fn path_candidates(b: &Pred<'_>, group: &[&Pred<'_>]) -> (Vec<String>, bool) {
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

fn method_candidates<'c>(b: &Pred<'c>, group: &[&Pred<'c>]) -> Vec<&'c str> {
    if let Some(methods) = &b.methods {
        return methods.clone();
    }
    let mut named: Vec<&'c str> = Vec::new();
    for a in group {
        for m in a.methods.iter().flatten() {
            if !named.contains(m) {
                named.push(m);
            }
        }
    }
    if let Some(unnamed) = UNNAMED_METHODS.iter().find(|m| !named.contains(m)) {
        named.push(unnamed);
    }
    named
}

fn header_dims<'c>(
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

    fn collect(preds: &[Pred<'_>], b: &Pred<'_>, c: &[usize]) -> (Vec<String>, bool) {
        let mut seen = Vec::new();
        let e = for_each_representative(preds, b, c, Options::default(), |r| {
            seen.push(r.to_string());
            ControlFlow::Continue(())
        });
        (seen, e.exact)
    }

    #[test]
    fn prefixes_split_the_path_space() {
        let earlier = vec![Pred {
            path: PathPred::Prefix("/api/v2"),
            methods: Some(vec!["GET"]),
            ..Pred::any()
        }];
        let b = Pred {
            host: HostPred::Exact("a.example.com"),
            path: PathPred::Prefix("/api"),
            ..Pred::any()
        };
        let (seen, exact) = collect(&earlier, &b, &[0]);
        assert!(exact);
        for expected in [
            "GET a.example.com/api",
            "POST a.example.com/api",
            "GET a.example.com/api/keel-witness",
            "GET a.example.com/api/v2",
            "POST a.example.com/api/v2/keel-witness",
        ] {
            assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
        }
    }

    #[test]
    fn headers_vary_between_absent_and_required_values() {
        let earlier = vec![Pred {
            headers: vec![("x-beta", "1")],
            ..Pred::any()
        }];
        let b = Pred {
            host: HostPred::Exact("a"),
            path: PathPred::Exact("/"),
            ..Pred::any()
        };
        let (seen, _) = collect(&earlier, &b, &[0]);
        assert_eq!(seen, vec!["GET a/", "GET a/ [x-beta: 1]"]);
    }

    #[test]
    fn fresh_paths_avoid_longer_prefixes() {
        let prefixes = HashSet::from(["/a/keel-witness", "/akeel-witness"]);
        let path = fresh_path("/a", &prefixes, &HashSet::new());
        assert_eq!(path.as_deref(), Some("/a-keel-witness"));
    }

    #[test]
    fn the_budget_makes_the_enumeration_inexact() {
        let earlier = vec![Pred {
            methods: Some(vec!["GET", "POST", "PUT"]),
            ..Pred::any()
        }];
        let b = Pred::any();
        let e = for_each_representative(
            &earlier,
            &b,
            &[0],
            Options {
                header_variants: true,
                limit: 2,
            },
            |_| ControlFlow::Continue(()),
        );
        assert_eq!(e.visited, 2);
        assert!(!e.exact);
    }
}
