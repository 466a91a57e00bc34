//! TLS at scrape time: handshakes and failures per TLS listener (counters the data
//! plane keeps per listener, across generations), and when each certificate of the
//! primary generation expires.

use keel_proxy::DataPlane;
use keel_proxy::tls::HandshakeFailure;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::names;

/// Encodes the TLS metrics; nothing when the plane has no TLS listener or certificate.
pub(crate) fn encode(
    encoder: &mut DescriptorEncoder,
    plane: Option<&DataPlane>,
) -> Result<(), std::fmt::Error> {
    let Some(plane) = plane else { return Ok(()) };
    let listeners = plane.tls_counters();
    if !listeners.is_empty() {
        let mut metric = encoder.encode_descriptor(
            names::TLS_HANDSHAKES,
            "TLS handshakes completed, by listener, protocol version and ALPN protocol.",
            None,
            MetricType::Counter,
        )?;
        for counters in &listeners {
            for version in ["1.2", "1.3"] {
                for (alpn, h2) in [("h2", true), ("http/1.1", false)] {
                    let labels = [
                        ("listener", counters.listener.as_str()),
                        ("version", version),
                        ("alpn", alpn),
                    ];
                    let count = counters.completed_with(version, h2);
                    metric
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
                }
            }
        }
        let mut metric = encoder.encode_descriptor(
            names::TLS_HANDSHAKE_FAILURES,
            "TLS handshakes that failed, by listener and reason (timeout, no_certificate, protocol, io).",
            None,
            MetricType::Counter,
        )?;
        for counters in &listeners {
            for reason in HandshakeFailure::ALL {
                let labels = [
                    ("listener", counters.listener.as_str()),
                    ("reason", reason.as_str()),
                ];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&counters.failed(reason), None)?;
            }
        }
    }
    let Some(active) = plane.active() else {
        return Ok(());
    };
    let certificates = active.primary.tls.certificates();
    if certificates.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(
        names::CERTIFICATE_EXPIRY,
        "When each certificate of the primary generation expires (its not-after), in seconds since the Unix epoch.",
        None,
        MetricType::Gauge,
    )?;
    for (name, leaf) in certificates {
        metric
            .encode_family(&[("certificate", name.as_str())])?
            .encode_gauge(&leaf.not_after)?;
    }
    Ok(())
}
