//! One route's match conditions as the checker reasons about them: matching a concrete
//! request, and the two set relations the shadow analysis needs: "may these two
//! routes match a common request?" (pruning) and "is every request of one a request of
//! the other?" (carve-outs).
//!
//! Matching mirrors `keel_route::CompiledRoute::matches` condition by condition; the
//! analysis still confirms every verdict with `RouteTable::find`, so a drift between the
//! two shows up as a failing property test, never as a wrong witness.

use keel_config::{HostMatch, PathMatch, Route};
use keel_route::{MAX_HOST_LEN, RequestShape, RequestView, normalize_host};

use super::regex_sample::{literal_prefix, samples};

/// A host condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostPred<'c> {
    /// Any host, and requests without one.
    Any,
    /// Exactly this host.
    Exact(&'c str),
    /// Hosts ending in this suffix (which starts with `.`) with something before it.
    Suffix(&'c str),
}

/// A path regex with what the analysis derives from it.
#[derive(Clone, Debug)]
pub(crate) struct RegexPred<'c> {
    /// The compiled, fully anchored regex.
    pub(crate) regex: &'c regex::Regex,
    /// The regex as written.
    pub(crate) source: &'c str,
    /// A literal every matching path starts with (may be empty).
    pub(crate) prefix: String,
    /// Paths the regex matches (may be empty if sampling found none).
    pub(crate) samples: Vec<String>,
}

/// A path condition.
#[derive(Clone, Debug)]
pub(crate) enum PathPred<'c> {
    /// Any path.
    Any,
    /// The path equals this.
    Exact(&'c str),
    /// The path starts with this.
    Prefix(&'c str),
    /// The whole path matches this regex.
    Regex(RegexPred<'c>),
}

/// The conditions of one route (or of a virtual one, such as "every request").
#[derive(Clone, Debug)]
pub(crate) struct Pred<'c> {
    pub(crate) host: HostPred<'c>,
    pub(crate) path: PathPred<'c>,
    /// `None` allows every method.
    pub(crate) methods: Option<Vec<&'c str>>,
    /// Required headers: lower-case name, exact value.
    pub(crate) headers: Vec<(&'c str, &'c str)>,
    /// The listeners the route is limited to; empty: any.
    pub(crate) listeners: Vec<&'c str>,
}

impl<'c> Pred<'c> {
    /// The conditions of a config route.
    pub(crate) fn from_route(route: &'c Route) -> Self {
        let host = match route.host.as_ref().map(|h| &h.value) {
            None => HostPred::Any,
            Some(HostMatch::Exact(h)) => HostPred::Exact(h),
            Some(HostMatch::Suffix(s)) => HostPred::Suffix(s),
        };
        let path = match route.path.as_ref().map(|p| &p.value) {
            None => PathPred::Any,
            Some(PathMatch::Exact(p)) => PathPred::Exact(p),
            Some(PathMatch::Prefix(p)) => PathPred::Prefix(p),
            Some(PathMatch::Regex(r)) => PathPred::Regex(RegexPred {
                regex: &r.regex,
                source: &r.source,
                prefix: literal_prefix(&r.source),
                samples: samples(&r.source)
                    .into_iter()
                    .filter(|s| s.starts_with('/') && r.is_match(s))
                    .collect(),
            }),
        };
        Self {
            host,
            path,
            methods: route
                .methods
                .as_ref()
                .map(|m| m.value.iter().map(String::as_str).collect()),
            listeners: route.listeners.iter().map(|l| l.value.as_str()).collect(),
            headers: route
                .headers
                .iter()
                .map(|h| (h.value.0.as_str(), h.value.1.as_str()))
                .collect(),
        }
    }

    /// Matches every request.
    pub(crate) fn any() -> Self {
        Self {
            host: HostPred::Any,
            path: PathPred::Any,
            methods: None,
            headers: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// True when the route matches every request (paths start with `/`).
    pub(crate) fn is_catch_all(&self) -> bool {
        self.host == HostPred::Any
            && matches!(self.path, PathPred::Any | PathPred::Prefix("/"))
            && self.methods.is_none()
            && self.headers.is_empty()
            && self.listeners.is_empty()
    }

    /// True when the request satisfies every condition.
    pub(crate) fn matches(&self, request: &RequestShape) -> bool {
        let mut buffer = [0u8; MAX_HOST_LEN];
        let host = request.host().and_then(|h| normalize_host(h, &mut buffer));
        self.matches_with_host(request, host)
    }

    /// [`Pred::matches`] with the request's host already normalized.
    pub(crate) fn matches_with_host(&self, request: &RequestShape, host: Option<&str>) -> bool {
        self.host_matches(host)
            && self
                .methods
                .as_ref()
                .is_none_or(|m| m.contains(&request.method()))
            && self.path_matches(request.path())
            && self
                .headers
                .iter()
                .all(|(name, value)| request.header(name) == Some(*value))
    }

    /// The host condition against an already normalized host.
    pub(crate) fn host_matches(&self, host: Option<&str>) -> bool {
        match self.host {
            HostPred::Any => true,
            HostPred::Exact(exact) => host == Some(exact),
            HostPred::Suffix(suffix) => {
                host.is_some_and(|h| h.len() > suffix.len() && h.ends_with(suffix))
            }
        }
    }

    /// The path condition.
    pub(crate) fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathPred::Any => true,
            PathPred::Exact(exact) => path == *exact,
            PathPred::Prefix(prefix) => path.starts_with(prefix),
            PathPred::Regex(r) => r.regex.is_match(path),
        }
    }

    /// False only when no request can match both routes; true when unsure.
    pub(crate) fn may_intersect(&self, other: &Pred<'_>) -> bool {
        let listeners_meet = self.listeners.is_empty()
            || other.listeners.is_empty()
            || self.listeners.iter().any(|l| other.listeners.contains(l));
        listeners_meet
            && hosts_intersect(self.host, other.host)
            && paths_may_intersect(&self.path, &other.path)
            && match (&self.methods, &other.methods) {
                (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                _ => true,
            }
            && self
                .headers
                .iter()
                .all(|(name, value)| other.headers.iter().all(|(n, v)| n != name || v == value))
    }

    /// True when every request `inner` matches, `self` matches too (a carve-out).
    /// False when it does not hold or cannot be decided.
    pub(crate) fn contains(&self, inner: &Pred<'_>) -> bool {
        let listeners_within = self.listeners.is_empty()
            || (!inner.listeners.is_empty()
                && inner.listeners.iter().all(|l| self.listeners.contains(l)));
        listeners_within
            && host_contains(self.host, inner.host)
            && path_contains(&self.path, &inner.path)
            && match (&self.methods, &inner.methods) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(outer), Some(inner)) => inner.iter().all(|m| outer.contains(m)),
            }
            && self.headers.iter().all(|h| inner.headers.contains(h))
    }
}

fn host_matches_pred(pred: HostPred<'_>, host: &str) -> bool {
    match pred {
        HostPred::Any => true,
        HostPred::Exact(exact) => host == exact,
        HostPred::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
    }
}

fn hosts_intersect(a: HostPred<'_>, b: HostPred<'_>) -> bool {
    match (a, b) {
        (HostPred::Any, _) | (_, HostPred::Any) => true,
        (HostPred::Exact(x), other) | (other, HostPred::Exact(x)) => host_matches_pred(other, x),
        (HostPred::Suffix(x), HostPred::Suffix(y)) => x.ends_with(y) || y.ends_with(x),
    }
}

fn host_contains(outer: HostPred<'_>, inner: HostPred<'_>) -> bool {
    match (outer, inner) {
        (HostPred::Any, _) => true,
        (_, HostPred::Any) => false,
        (outer, HostPred::Exact(h)) => host_matches_pred(outer, h),
        (HostPred::Exact(_), HostPred::Suffix(_)) => false,
        (HostPred::Suffix(o), HostPred::Suffix(i)) => i.ends_with(o),
    }
}

/// Whether two literal prefixes leave room for a common string.
fn prefixes_compatible(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn paths_may_intersect(a: &PathPred<'_>, b: &PathPred<'_>) -> bool {
    use PathPred::*;
    match (a, b) {
        (Any, _) | (_, Any) => true,
        (Exact(x), Exact(y)) => x == y,
        (Exact(x), Prefix(p)) | (Prefix(p), Exact(x)) => x.starts_with(p),
        (Exact(x), Regex(r)) | (Regex(r), Exact(x)) => r.regex.is_match(x),
        (Prefix(p), Prefix(q)) => prefixes_compatible(p, q),
        (Prefix(p), Regex(r)) | (Regex(r), Prefix(p)) => prefixes_compatible(p, &r.prefix),
        (Regex(r), Regex(s)) => prefixes_compatible(&r.prefix, &s.prefix),
    }
}

fn path_contains(outer: &PathPred<'_>, inner: &PathPred<'_>) -> bool {
    use PathPred::*;
    match (outer, inner) {
        (Any, _) | (Prefix("/"), _) => true,
        (_, Any) => false,
        (outer, Exact(x)) => {
            let probe = Pred {
                listeners: Vec::new(),
                path: outer.clone(),
                ..Pred::any()
            };
            probe.path_matches(x)
        }
        (Exact(_), _) => false,
        (Prefix(p), Prefix(q)) => q.starts_with(p),
        (Prefix(p), Regex(r)) => r.prefix.starts_with(p),
        (Regex(r), Regex(s)) => r.source == s.source,
        (Regex(_), Prefix(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred<'a>(host: HostPred<'a>, path: PathPred<'a>) -> Pred<'a> {
        Pred {
            listeners: Vec::new(),
            host,
            path,
            ..Pred::any()
        }
    }

    #[test]
    fn wildcard_hosts_need_a_label_before_the_suffix() {
        let p = pred(HostPred::Suffix(".example.com"), PathPred::Any);
        assert!(p.host_matches(Some("a.example.com")));
        assert!(!p.host_matches(Some(".example.com")));
        assert!(!p.host_matches(Some("example.com")));
        assert!(!p.host_matches(None));
    }

    #[test]
    fn intersection_follows_the_match_language() {
        let api = pred(HostPred::Exact("a.example.com"), PathPred::Prefix("/api"));
        let wild = pred(HostPred::Suffix(".example.com"), PathPred::Prefix("/"));
        let other = pred(HostPred::Exact("b.example.com"), PathPred::Prefix("/api"));
        let static_ = pred(HostPred::Any, PathPred::Prefix("/static"));
        assert!(api.may_intersect(&wild));
        assert!(!api.may_intersect(&other));
        assert!(!api.may_intersect(&static_));
        let mut get = Pred::any();
        get.methods = Some(vec!["GET"]);
        let mut post = Pred::any();
        post.methods = Some(vec!["POST"]);
        assert!(!get.may_intersect(&post));
        let mut beta = Pred::any();
        beta.headers = vec![("x-beta", "1")];
        let mut alpha = Pred::any();
        alpha.headers = vec![("x-beta", "0")];
        assert!(!beta.may_intersect(&alpha));
    }

    #[test]
    fn containment_is_per_condition() {
        let wide = pred(HostPred::Suffix(".example.com"), PathPred::Prefix("/api"));
        let narrow = pred(
            HostPred::Exact("a.example.com"),
            PathPred::Prefix("/api/v2"),
        );
        assert!(wide.contains(&narrow));
        assert!(!narrow.contains(&wide));
        let mut get_only = narrow.clone();
        get_only.methods = Some(vec!["GET"]);
        assert!(narrow.contains(&get_only));
        assert!(!get_only.contains(&narrow));
        assert!(Pred::any().contains(&wide));
    }
}
