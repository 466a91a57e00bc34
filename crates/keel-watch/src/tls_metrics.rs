//! TLS at scrape time: handshakes completed (per certificate, full or resumed), resumed
//! and failed (by reason) per generation and TLS listener (the generation whose
//! certificates the client got: counters each generation keeps), and when each
//! certificate of the primary generation expires.

use std::sync::Arc;

use keel_proxy::tls::{HandshakeFailure, HandshakeKind};
use keel_proxy::{DataPlane, Generation};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::names;

/// Encodes the TLS metrics of the exported `generations`; nothing when none has a TLS
/// listener or certificate.
pub(crate) fn encode(
    encoder: &mut DescriptorEncoder,
    plane: Option<&DataPlane>,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let served: Vec<(String, &Arc<keel_proxy::tls::HandshakeCounters>)> = generations
        .iter()
        .flat_map(|g| {
            let id = g.id.to_string();
            g.tls
                .all_handshakes()
                .iter()
                .map(move |counters| (id.clone(), counters))
        })
        .collect();
    if !served.is_empty() {
        let mut metric = encoder.encode_descriptor(
            names::TLS_HANDSHAKES,
            "TLS handshakes completed, by the generation that served them, listener, certificate (the one the client's SNI name picked), kind (full or resumed), protocol version and ALPN protocol.",
            None,
            MetricType::Counter,
        )?;
        for (generation, counters) in &served {
            for (c, certificate) in counters.certificates().iter().enumerate() {
                for kind in HandshakeKind::ALL {
                    for version in ["1.2", "1.3"] {
                        for (alpn, h2) in [("h2", true), ("http/1.1", false)] {
                            let labels = [
                                ("generation", generation.as_str()),
                                ("listener", counters.listener.as_str()),
                                ("certificate", certificate.as_str()),
                                ("kind", kind.as_str()),
                                ("version", version),
                                ("alpn", alpn),
                            ];
                            let count = counters.completed_for(c, kind, version, h2);
                            metric
                                .encode_family(&labels)?
                                .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
                        }
                    }
                }
            }
        }
        let mut metric = encoder.encode_descriptor(
            names::TLS_RESUMPTIONS,
            "TLS handshakes completed by resuming an earlier session, by generation and listener (also counted in the handshakes).",
            None,
            MetricType::Counter,
        )?;
        for (generation, counters) in &served {
            let labels = [
                ("generation", generation.as_str()),
                ("listener", counters.listener.as_str()),
            ];
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&counters.resumed(), None)?;
        }
        let mut metric = encoder.encode_descriptor(
            names::TLS_HANDSHAKE_FAILURES,
            "TLS handshakes that failed, by generation, listener and reason (timeout, no_certificate, certificate_refused, protocol, io).",
            None,
            MetricType::Counter,
        )?;
        for (generation, counters) in &served {
            for reason in HandshakeFailure::ALL {
                let labels = [
                    ("generation", generation.as_str()),
                    ("listener", counters.listener.as_str()),
                    ("reason", reason.as_str()),
                ];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&counters.failed(reason), None)?;
            }
        }
    }
    let Some(plane) = plane else { return Ok(()) };
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
