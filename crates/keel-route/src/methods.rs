//! A compact set of HTTP methods: a bit per standard method, a list for the rest.

/// The standard methods, in bit order.
const STANDARD: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Methods a route allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodSet {
    bits: u16,
    extension: Vec<String>,
}

impl MethodSet {
    /// The set of the given upper-case methods.
    pub fn new<'a>(methods: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Self::default();
        for method in methods {
            match STANDARD.iter().position(|m| *m == method) {
                Some(bit) => set.bits |= 1 << bit,
                None => set.extension.push(method.to_string()),
            }
        }
        set
    }

    /// True when `method` (as sent, case-sensitive per RFC 9110) is in the set.
    #[inline]
    pub fn contains(&self, method: &str) -> bool {
        match STANDARD.iter().position(|m| *m == method) {
            Some(bit) => self.bits & (1 << bit) != 0,
            None => self.extension.iter().any(|m| m == method),
        }
    }
}

/// Methods that RFC 9110 defines as idempotent: safe to retry.
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_extension_methods() {
        let set = MethodSet::new(["GET", "PURGE"]);
        assert!(set.contains("GET"));
        assert!(set.contains("PURGE"));
        assert!(!set.contains("POST"));
        assert!(!set.contains("get"));
    }
}
