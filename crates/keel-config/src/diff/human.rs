//! How the semantic diff writes a value for people: the way a config would say it
//! (`10s`, `consistent hash on cookie:cart_id`, `none`), never a Rust `Debug` form such
//! as `Some(10s)` or `ConsistentHash(Cookie("cart_id"))`.

use std::path::PathBuf;
use std::time::Duration;

use crate::format_duration;
use crate::model::{Balance, HealthCheck, Outlier};

/// A value as a config would write it.
pub(super) trait Human {
    /// The text.
    fn human(&self) -> String;
}

impl Human for Duration {
    fn human(&self) -> String {
        format_duration(*self)
    }
}

impl Human for Balance {
    fn human(&self) -> String {
        match self {
            Balance::RoundRobin => "round robin".to_string(),
            Balance::LeastRequest => "least request".to_string(),
            Balance::ConsistentHash(key) => format!("consistent hash on {key}"),
        }
    }
}

impl Human for HealthCheck {
    fn human(&self) -> String {
        let probe = match &self.grpc_service {
            Some(service) if service.is_empty() => "gRPC Health/Check of the server".to_string(),
            Some(service) => format!("gRPC Health/Check of `{service}`"),
            None => format!("GET {}", self.path),
        };
        format!(
            "{probe} every {} (timeout {}, healthy after {}, unhealthy after {})",
            format_duration(self.interval),
            format_duration(self.timeout),
            self.healthy_after,
            self.unhealthy_after
        )
    }
}

impl Human for Outlier {
    fn human(&self) -> String {
        format!(
            "eject after {} consecutive failures for {} (up to {})",
            self.consecutive_failures,
            format_duration(self.base_ejection),
            format_duration(self.max_ejection)
        )
    }
}

impl<T: Human> Human for Option<T> {
    fn human(&self) -> String {
        self.as_ref()
            .map_or_else(|| "none".to_string(), Human::human)
    }
}

impl<T: Human> Human for crate::Located<T> {
    fn human(&self) -> String {
        self.value.human()
    }
}

impl<T: std::fmt::Display> Human for Vec<T> {
    fn human(&self) -> String {
        if self.is_empty() {
            "none".to_string()
        } else {
            self.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

impl Human for PathBuf {
    fn human(&self) -> String {
        self.display().to_string()
    }
}

macro_rules! displayed {
    ($($t:ty),*) => {
        $(impl Human for $t {
            fn human(&self) -> String {
                self.to_string()
            }
        })*
    };
}

displayed!(bool, u32, u64, usize, f64, String);

/// The human form of a value.
pub(super) fn human<T: Human>(value: &T) -> String {
    value.human()
}

impl Human for crate::RolledBackTunnels {
    fn human(&self) -> String {
        self.name().to_string()
    }
}
