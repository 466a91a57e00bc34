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

use std::collections::HashMap;
use std::ops::ControlFlow;

use keel_route::{MAX_HOST_LEN, RequestShape, normalize_host};

use super::classes::{header_dims, host_candidates, method_candidates, path_candidates};
use super::pred::{HostPred, Pred};

/// Most representative requests tried for one route before giving up on exactness.
pub(crate) const MAX_REPRESENTATIVES: usize = 20_000;

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
    methods: &[String],
    headers: &[(&str, Vec<Option<&str>>)],
    odometer: &[usize],
) {
    request.path.clear();
    request.path.push_str(&paths[odometer[0]]);
    request.method.clear();
    request.method.push_str(&methods[odometer[1]]);
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

#[cfg(test)]
mod tests {
    use super::super::pred::PathPred;
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
            listeners: Vec::new(),
            path: PathPred::Prefix("/api/v2"),
            methods: Some(vec!["GET"]),
            ..Pred::any()
        }];
        let b = Pred {
            listeners: Vec::new(),
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
            listeners: Vec::new(),
            headers: vec![("x-beta", "1")],
            ..Pred::any()
        }];
        let b = Pred {
            listeners: Vec::new(),
            host: HostPred::Exact("a"),
            path: PathPred::Exact("/"),
            ..Pred::any()
        };
        let (seen, _) = collect(&earlier, &b, &[0]);
        assert_eq!(seen, vec!["GET a/", "GET a/ [x-beta: 1]"]);
    }

    #[test]
    fn the_budget_makes_the_enumeration_inexact() {
        let earlier = vec![Pred {
            listeners: Vec::new(),
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
