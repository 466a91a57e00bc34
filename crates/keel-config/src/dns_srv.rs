//! SRV backends: `backends = [{ srv = "_http._tcp.web.internal", resolve = "30s" }]`, an
//! SRV record whose targets (their addresses, each with its record's port and weight)
//! are the pool's backends. This module owns the entry's parse and the name's form
//! (`_SERVICE._tcp.NAME`); the lookup itself is `keel-control`'s (`dns_srv`), and the
//! model and expansion are [`crate::dns`]'s.

use crate::dns::{DnsBackend, DnsRecord, is_dns_name, resolve_interval};
use crate::reader::{Sink, Table};

/// Longest service label of an SRV name, without its `_` (RFC 6335: 15 characters).
pub const MAX_SRV_SERVICE_LEN: usize = 15;

const SRV_EXAMPLE: &str = "write srv = \"_http._tcp.web.internal\"";

/// Reads `{ srv, resolve }` (`port` and `weight` come from the records).
pub(crate) fn parse_srv_backend(sink: &mut Sink, backend: &Table<'_, '_>) -> Option<DnsBackend> {
    for key in ["port", "weight"] {
        if let Some(value) = backend.get(key) {
            sink.invalid(
                crate::reader::span_of(value),
                format!("an SRV backend takes each target's {key} from its record"),
                format!("remove `{key}` (set it in the SRV records)"),
            );
        }
    }
    let name = backend.string(sink, "srv")?;
    if let Err(problem) = srv_name_problem(&name.value) {
        sink.invalid(
            name.span,
            format!("`{}` is not an SRV name: {problem}", name.value),
            SRV_EXAMPLE,
        );
        return None;
    }
    let resolve = resolve_interval(sink, backend);
    Some(DnsBackend {
        span: backend.span,
        record: DnsRecord::Srv,
        host: name,
        port: 0,
        resolve,
        weight: crate::defaults::BACKEND_WEIGHT,
    })
}

/// Why `name` is not `_SERVICE._tcp.DOMAIN`, if it is not.
pub fn srv_name_problem(name: &str) -> Result<(), String> {
    let mut labels = name.trim_end_matches('.').splitn(3, '.');
    let (service, protocol, domain) = (labels.next(), labels.next(), labels.next());
    let (Some(service), Some(protocol), Some(domain)) = (service, protocol, domain) else {
        return Err("it needs a service, a protocol and a domain".into());
    };
    let Some(service) = service.strip_prefix('_') else {
        return Err(format!("the service `{service}` must start with `_`"));
    };
    if service.is_empty()
        || service.len() > MAX_SRV_SERVICE_LEN
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "the service `_{service}` must be 1 to {MAX_SRV_SERVICE_LEN} letters, digits or `-`"
        ));
    }
    if !protocol.eq_ignore_ascii_case("_tcp") {
        return Err(format!(
            "the protocol is `{protocol}`, but Keel reaches backends over TCP (`_tcp`)"
        ));
    }
    if domain.parse::<std::net::IpAddr>().is_ok() || !is_dns_name(domain, true) {
        return Err(format!("`{domain}` is not a DNS domain"));
    }
    if name.len() > 253 {
        return Err("it is longer than 253 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::srv_name_problem;

    #[test]
    fn srv_names_have_a_service_tcp_and_a_domain() {
        for good in [
            "_http._tcp.web.internal",
            "_grpc._TCP.api.svc.cluster.local.",
            "_a-b._tcp.x",
        ] {
            assert_eq!(srv_name_problem(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("web.internal", "service, a protocol"),
            ("http._tcp.web.internal", "must start with `_`"),
            ("_._tcp.web.internal", "1 to 15"),
            ("_averyveryverylongname._tcp.web", "1 to 15"),
            ("_http._udp.web.internal", "over TCP"),
            ("_http._tcp.web internal", "not a DNS domain"),
            ("_http._tcp..internal", "not a DNS domain"),
            ("_http._tcp.10.0.0.1", "not a DNS domain"),
        ] {
            let problem = srv_name_problem(bad).expect_err(bad);
            assert!(problem.contains(why), "{bad}: {problem}");
        }
    }
}
