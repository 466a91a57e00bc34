//! Handshake failures: the error jump's test (Wald's SPRT, `errors.rs`) on the share of
//! TLS handshakes that failed, per listener, for the generation whose certificates the
//! clients got.
//!
//! A certificate the clients refuse (a name it does not cover, an issuer they do not
//! trust, a key type they cannot use) fails every new connection before a single request
//! reaches Keel: the request detectors see nothing, and the watch of the change waits for
//! evidence that never comes. Handshakes are that evidence. With `n` handshakes attempted
//! in the window (completed + failed) and `x` failed:
//!
//! ```text
//! p0 = clamp(baseline failure ratio, 0.002, 0.45)   (fewer than MIN_HANDSHAKES before: error_rate / 5)
//! p1 = max(error_rate, 2·p0)
//! fire when  n ≥ MIN_HANDSHAKES  and  LLR(x, n) ≥ ln((1−β)/α)  and  x/n ≥ error_rate
//! ```
//!
//! The baseline is the same listener in the baseline generation's window. During an
//! apply every reason counts (a jump of any kind follows the change; steady noise such as
//! port scanners or TCP health checks closing mid-handshake is in the baseline too).
//! Watched on its own (no baseline), a generation is judged only on the reasons that
//! blame its certificate (`no_certificate`, `certificate_refused`), so that steady noise
//! does not page anyone.

use serde_json::json;

use super::errors::{Rate, SPRT_ALPHA, SPRT_BETA, hypotheses, log_likelihood_ratio};
use super::{Alarm, Detector, Thresholds, round4};
use crate::handshake_window::Handshakes;
use keel_proxy::tls::HandshakeFailure;

/// Fewest handshakes attempted in a window before the detector may fire (20): a
/// certificate every client refuses is decided after 20 new connections, and a clean
/// baseline needs as many before its ratio is used.
pub const MIN_HANDSHAKES: u64 = 20;

/// Which failures a judgement counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Every reason: a candidate compared with its baseline.
    Every,
    /// Only reasons that blame the certificate: a generation watched on its own.
    CertificateOnly,
}

impl Counted {
    fn rate(self, handshakes: &Handshakes) -> Rate {
        let failures = match self {
            Counted::Every => handshakes.failures(),
            Counted::CertificateOnly => handshakes.certificate_failures(),
        };
        Rate {
            requests: handshakes.attempts(),
            failures,
        }
    }
}

/// Runs the test on a listener's candidate window against its baseline, if any; the
/// alarm when the failure ratio jumped.
pub fn handshake_jump(
    subject: &str,
    baseline: Option<&Handshakes>,
    candidate: &Handshakes,
    counted: Counted,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let candidate_rate = counted.rate(candidate);
    if candidate_rate.requests < MIN_HANDSHAKES {
        return None;
    }
    let judged = Thresholds {
        min_requests: MIN_HANDSHAKES,
        ..thresholds.clone()
    };
    let baseline_rate = baseline.map(|b| counted.rate(b));
    let (p0, p1) = hypotheses(baseline_rate, &judged);
    let llr = log_likelihood_ratio(candidate_rate, p0, p1);
    let upper = ((1.0 - SPRT_BETA) / SPRT_ALPHA).ln();
    let observed = candidate_rate.ratio();
    if llr < upper || observed < thresholds.error_rate {
        return None;
    }
    let by_reason: serde_json::Map<String, serde_json::Value> = HandshakeFailure::ALL
        .iter()
        .filter(|r| candidate.failed(**r) > 0)
        .map(|r| (r.as_str().to_string(), json!(candidate.failed(*r))))
        .collect();
    let reasons = by_reason
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect::<Vec<_>>()
        .join(", ");
    let baseline_text = match baseline_rate {
        Some(b) if b.requests > 0 => {
            format!("{:.1}% of {} before", b.ratio() * 100.0, b.requests)
        }
        _ => "no baseline".to_string(),
    };
    Some(Alarm {
        detector: Detector::Handshakes,
        subject: subject.to_string(),
        summary: format!(
            "{subject}: {} of {} TLS handshakes failed ({:.1}%; {baseline_text}): {reasons}; SPRT log-likelihood ratio {:.1} ≥ {:.1}",
            candidate_rate.failures,
            candidate_rate.requests,
            observed * 100.0,
            llr,
            upper
        ),
        numbers: json!({
            "listener": &*candidate.listener,
            "handshakes": candidate_rate.requests,
            "failures": candidate_rate.failures,
            "failure_rate": round4(observed),
            "by_reason": by_reason,
            "resumed": candidate.resumed,
            "counted": match counted {
                Counted::Every => "every_reason",
                Counted::CertificateOnly => "certificate_reasons",
            },
            "baseline_handshakes": baseline_rate.map(|b| b.requests),
            "baseline_failures": baseline_rate.map(|b| b.failures),
            "p0": round4(p0),
            "p1": round4(p1),
            "llr": round4(llr),
            "threshold_llr": round4(upper),
            "error_rate": thresholds.error_rate,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(completed: u64, reason: HandshakeFailure, failed: u64) -> Handshakes {
        let mut handshakes = Handshakes::empty("https");
        handshakes.completed = completed;
        handshakes.failed[reason as usize] = failed;
        handshakes
    }

    fn clean() -> Handshakes {
        window(400, HandshakeFailure::Io, 1)
    }

    #[test]
    fn a_refused_certificate_is_decided_at_the_minimum_evidence() {
        let t = Thresholds::default();
        let refused = |n| window(0, HandshakeFailure::CertificateRefused, n);
        assert!(
            handshake_jump(
                "l",
                Some(&clean()),
                &refused(MIN_HANDSHAKES - 1),
                Counted::Every,
                &t
            )
            .is_none()
        );
        let alarm = handshake_jump(
            "listener https",
            Some(&clean()),
            &refused(MIN_HANDSHAKES),
            Counted::Every,
            &t,
        )
        .expect("alarm");
        assert_eq!(alarm.detector, Detector::Handshakes);
        assert_eq!(alarm.numbers["by_reason"]["certificate_refused"], 20);
        assert!(
            alarm.summary.contains("20 of 20 TLS handshakes failed"),
            "{}",
            alarm.summary
        );
        assert!(
            alarm.summary.contains("20 certificate_refused"),
            "{}",
            alarm.summary
        );
    }

    #[test]
    fn steady_noise_in_the_baseline_is_no_jump_but_doubling_it_is() {
        let t = Thresholds::default();
        // 10% of handshakes closed mid-way before and after: as before.
        let before = window(900, HandshakeFailure::Io, 100);
        let same = window(180, HandshakeFailure::Io, 20);
        assert!(handshake_jump("l", Some(&before), &same, Counted::Every, &t).is_none());
        // 60% failing now: jumped.
        let worse = window(40, HandshakeFailure::Protocol, 60);
        assert!(handshake_jump("l", Some(&before), &worse, Counted::Every, &t).is_some());
    }

    #[test]
    fn watched_alone_only_certificate_reasons_count() {
        let t = Thresholds::default();
        let scanners = window(50, HandshakeFailure::Protocol, 50);
        assert!(handshake_jump("l", None, &scanners, Counted::CertificateOnly, &t).is_none());
        assert!(handshake_jump("l", None, &scanners, Counted::Every, &t).is_some());
        let refused = window(50, HandshakeFailure::CertificateRefused, 50);
        assert!(handshake_jump("l", None, &refused, Counted::CertificateOnly, &t).is_some());
    }

    #[test]
    fn a_failure_ratio_under_error_rate_never_fires() {
        // 2% against 0.1%: significant on 10,000 handshakes, but under error_rate (5%).
        let t = Thresholds::default();
        let before = window(10_000, HandshakeFailure::CertificateRefused, 10);
        let now = window(9_800, HandshakeFailure::CertificateRefused, 200);
        assert!(handshake_jump("l", Some(&before), &now, Counted::Every, &t).is_none());
    }
}
