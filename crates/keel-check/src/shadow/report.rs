//! Shadow findings as diagnostics: K201 (fully shadowed or matching nothing), K202
//! (partly shadowed), K203 (may be fully shadowed), K208 (no catch-all), K214 (a
//! fixed answer takes requests of a later route) and K217 (a redirect does), each with
//! its witness requests in the text and in `data` for the JSON report.

use keel_config::{Config, Diagnostic, codes};
use keel_route::RequestShape;
use serde_json::{Value, json};

use super::{CatchAll, ShadowAnalysis, ShadowFinding, ShadowKind, Witness};

/// Witnesses written out in full per finding; the rest are counted.
const MAX_WITNESSES_SHOWN: usize = 5;
/// Earlier routes named in a finding's one-line message.
const MAX_NAMES_IN_MESSAGE: usize = 3;

/// A request as JSON: `{"method", "host", "path", "headers": {name: value}}`.
pub fn request_json(request: &RequestShape) -> Value {
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "method": request.method,
        "host": request.host,
        "path": request.path,
        "headers": headers,
    })
}

fn route_name(config: &Config, id: usize) -> &str {
    config.routes.get(id).map_or("?", |r| r.name.value.as_str())
}

/// The diagnostics of a shadow analysis (and a K302 note if its budget ran out).
pub fn diagnostics(config: &Config, analysis: &ShadowAnalysis) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = analysis
        .findings
        .iter()
        .filter_map(|f| diagnostic(config, f))
        .collect();
    out.extend(
        analysis
            .findings
            .iter()
            .flat_map(|f| fixed_answer_shadows(config, f)),
    );
    if let Some(route) = analysis
        .budget_ran_out_at
        .and_then(|id| config.routes.get(id))
    {
        let skipped: Vec<String> = analysis
            .skipped
            .iter()
            .take(10)
            .filter_map(|id| config.routes.get(*id))
            .map(|r| format!("`{}`", r.name))
            .collect();
        let mut note = Diagnostic::note(
            codes::SKIPPED,
            format!(
                "shadow analysis budget ran out at route `{}`: later routes were checked with {} representative requests each, and {} entangled routes not at all",
                route.name,
                super::REPRESENTATIVES_AFTER_BUDGET,
                analysis.skipped.len()
            ),
        )
        .at(route.name.span, "analysed on a reduced budget from here on")
        .with_note("a route whose check was cut short can be reported as possibly shadowed (K203), never as fully shadowed (K201)")
        .with_help("the table is unusually entangled (many overlapping routes); splitting it by host or path keeps the analysis complete");
        if !skipped.is_empty() {
            note = note.with_note(format!("not analysed: {}", skipped.join(", ")));
        }
        out.push(note);
    }
    out
}

fn diagnostic(config: &Config, finding: &ShadowFinding) -> Option<Diagnostic> {
    let route = config.routes.get(finding.route)?;
    let name = &route.name.value;
    let mut winners: Vec<String> = finding
        .witnesses
        .iter()
        .take(MAX_NAMES_IN_MESSAGE)
        .map(|w| format!("`{}`", route_name(config, w.winner)))
        .collect();
    let count = finding.witnesses.len();
    if count > MAX_NAMES_IN_MESSAGE {
        winners.push(format!("{} more", count - MAX_NAMES_IN_MESSAGE));
    }
    let mut diagnostic = match finding.kind {
        ShadowKind::MatchesNothing => Diagnostic::warning(
            codes::FULLY_SHADOWED,
            format!("route `{name}` can match no request"),
        )
        .at(route.name.span, "no request satisfies all of its conditions")
        .with_note(
            "its conditions contradict each other (the same header required with two values, \
             or a host longer than 255 characters, which no request can carry)",
        )
        .with_help("fix the conditions of this route, or delete it"),
        ShadowKind::FullyShadowed => Diagnostic::warning(
            codes::FULLY_SHADOWED,
            format!(
                "route `{name}` is never reached: earlier route{} {} take{} every request it matches",
                plural(count),
                winners.join(", "),
                if count == 1 { "s" } else { "" },
            ),
        )
        .at(route.name.span, "unreachable route")
        .with_note(format!(
            "checked over {} representative request{} covering every combination of the conditions involved",
            finding.representatives,
            plural(finding.representatives)
        ))
        .with_help(format!(
            "move `{name}` above the routes that shadow it, narrow them, or delete `{name}`"
        )),
        ShadowKind::MayBeFullyShadowed => Diagnostic::warning(
            codes::MAY_SHADOW,
            format!(
                "route `{name}` may never be reached: every request tried goes to earlier route{} {}",
                plural(count),
                winners.join(", ")
            ),
        )
        .at(route.name.span, "possibly unreachable route")
        .with_note(format!(
            "{} representative request{} tried; path regexes (or the enumeration budget) make the full answer undecidable, so untried paths might still reach it",
            finding.representatives,
            plural(finding.representatives)
        ))
        .with_help(format!(
            "if `{name}` should get these requests, move it above the routes named here, or make their path regexes narrower"
        )),
        ShadowKind::PartlyShadowed => Diagnostic::warning(
            codes::PARTLY_SHADOWED,
            format!(
                "route `{name}` is partly shadowed: some requests it matches go to earlier route{} {}",
                plural(count),
                winners.join(", ")
            ),
        )
        .at(route.name.span, "some of its requests never reach it")
        .with_note(
            "the earlier route overlaps this one without being a narrower exception inside it",
        )
        .with_help(format!(
            "if `{name}` should get the witness requests, move it above the earlier route or narrow that route (methods, headers, path); if the earlier route should keep them, narrow `{name}` so the two do not overlap"
        )),
    };
    for witness in finding.witnesses.iter().take(MAX_WITNESSES_SHOWN) {
        diagnostic = with_witness(diagnostic, config, witness, name);
    }
    if finding.witnesses.len() > MAX_WITNESSES_SHOWN {
        diagnostic = diagnostic.with_note(format!(
            "… and {} more earlier routes (all listed in the JSON report)",
            finding.witnesses.len() - MAX_WITNESSES_SHOWN
        ));
    }
    let witnesses: Vec<Value> = finding
        .witnesses
        .iter()
        .map(|w| json!({ "request": request_json(&w.request), "route": route_name(config, w.winner) }))
        .collect();
    Some(diagnostic.with_data(json!({
        "route": name,
        "witnesses": witnesses,
        "representatives": finding.representatives,
    })))
}

/// K214 and K217: per fixed-answer (`respond`) or redirect route among a finding's
/// winners, a warning that requests the shadowed route would forward get Keel's own
/// answer instead. (Redirect witnesses that bring the request back to the shadowed
/// route were dropped before, see [`crate::redirects::forgive_shadows`].)
fn fixed_answer_shadows(config: &Config, finding: &ShadowFinding) -> Vec<Diagnostic> {
    let Some(route) = config.routes.get(finding.route) else {
        return Vec::new();
    };
    if route.answers_itself() {
        return Vec::new();
    }
    let name = &route.name.value;
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    for witness in &finding.witnesses {
        let Some(answer) = config.routes.get(witness.winner) else {
            continue;
        };
        if seen.contains(&witness.winner) {
            continue;
        }
        let how = match finding.kind {
            ShadowKind::FullyShadowed => "every request",
            _ => "requests",
        };
        if let Some(redirect) = answer.redirect() {
            seen.push(witness.winner);
            out.push(redirect_shadows(
                route,
                answer,
                &redirect.value,
                redirect.span,
                how,
                witness,
            ));
            continue;
        }
        let Some(fixed) = answer.respond() else {
            continue;
        };
        seen.push(witness.winner);
        let winner = &answer.name.value;
        out.push(
            Diagnostic::warning(
                codes::FIXED_ANSWER_SHADOWS,
                format!(
                    "fixed answer `{winner}` ({}) takes {how} route `{name}` would forward",
                    fixed.value.status.value
                ),
            )
            .at(fixed.span, "answered by Keel, never forwarded")
            .with_related(route.name.span, format!("`{name}` loses these requests"))
            .with_note(format!(
                "witness: `{}` matches `{name}` but gets the fixed answer of `{winner}`",
                witness.request
            ))
            .with_help(format!(
                "narrow `{winner}` (path, host, methods) or move it below `{name}`; if the fixed answer is a planned maintenance page, a route test with expect = {{ route = \"{winner}\" }} states it"
            ))
            .with_data(json!({
                "route": name,
                "fixed_answer": winner,
                "request": request_json(&witness.request),
            })),
        );
    }
    out
}

/// K217: redirect `answer` takes `how` requests `route` would forward.
fn redirect_shadows(
    route: &keel_config::Route,
    answer: &keel_config::Route,
    redirect: &keel_config::Redirect,
    span: keel_config::Span,
    how: &str,
    witness: &Witness,
) -> Diagnostic {
    let name = &route.name.value;
    let winner = &answer.name.value;
    Diagnostic::warning(
        codes::REDIRECT_SHADOWS,
        format!(
            "redirect `{winner}` ({}) takes {how} route `{name}` would forward",
            redirect.describe()
        ),
    )
    .at(span, "redirected by Keel, never forwarded")
    .with_related(route.name.span, format!("`{name}` loses these requests"))
    .with_note(format!(
        "witness: `{}` matches `{name}` but is redirected by `{winner}`, and the new URL does not reach `{name}`",
        witness.request
    ))
    .with_help(format!(
        "narrow `{winner}` (listener, host, path) or move it below `{name}`; if the move is planned, a route test with expect = {{ route = \"{winner}\" }} states it"
    ))
    .with_data(json!({
        "route": name,
        "redirect": winner,
        "request": request_json(&witness.request),
    }))
}

fn with_witness(
    diagnostic: Diagnostic,
    config: &Config,
    witness: &Witness,
    shadowed: &str,
) -> Diagnostic {
    let winner = route_name(config, witness.winner);
    let diagnostic = diagnostic.with_note(format!(
        "witness: `{}` matches `{shadowed}` but goes to `{winner}`",
        witness.request
    ));
    match config.routes.get(witness.winner) {
        Some(route) => diagnostic.with_related(route.name.span, format!("`{winner}` wins first")),
        None => diagnostic,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The K208 warning, if the verdict calls for one.
pub fn catch_all_diagnostic(config: &Config, verdict: &CatchAll) -> Option<Diagnostic> {
    let span = config.routes.last().map(|r| r.span);
    let base = |message: &str| {
        let d = Diagnostic::warning(codes::NO_CATCH_ALL, message);
        match span {
            Some(span) => d.at(span, "after the last route, requests get 404"),
            None => d,
        }
    };
    let help = "add a last route without host, path, methods or headers (or with path_prefix = \"/\") that sends unmatched requests where they belong, or accept the 404s";
    match verdict {
        CatchAll::Route(_) | CatchAll::Covered => None,
        CatchAll::Missing(request) => Some(
            base("no catch-all route: some requests match no route")
                .with_note(format!(
                    "witness: `{request}` matches no route; Keel answers it with 404 and `keel-error: no-route`"
                ))
                .with_help(help)
                .with_data(json!({ "witness": request_json(request) })),
        ),
        CatchAll::Unknown => Some(
            base("no catch-all route, and regexes make it undecidable whether every request has one")
                .with_note("a request that matches no route gets 404 and `keel-error: no-route`")
                .with_help(help),
        ),
    }
}
