//! Fixed answers: a route with `respond = { status, body, content_type }` has no pool,
//! and Keel writes its answer itself. The answer is built once per generation; each
//! request clones its bytes (a reference count) and gets the route's response header
//! rules, like a backend's answer. Counted in the route's `unassigned` outcomes by
//! status, as no backend took part.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::forward::Served;
use crate::generation::Generation;
use crate::stats::Outcome;

/// A route's fixed answer, ready to clone.
#[derive(Debug)]
pub(crate) struct CompiledAnswer {
    status: StatusCode,
    body: Bytes,
    content_type: HeaderValue,
}

impl CompiledAnswer {
    /// The answer of a config, or `None` when the route forwards. The parser validated
    /// the status and content type; one that still fails to convert gets the default.
    pub(crate) fn compile(route: &keel_config::Route) -> Option<Box<Self>> {
        let answer = &route.respond()?.value;
        Some(Box::new(Self {
            status: StatusCode::from_u16(answer.status.value).unwrap_or(StatusCode::OK),
            body: Bytes::from(answer.body.clone()),
            content_type: HeaderValue::from_str(&answer.content_type).unwrap_or(
                HeaderValue::from_static(keel_config::defaults::FIXED_ANSWER_CONTENT_TYPE),
            ),
        }))
    }

    fn response(&self) -> Response<ResponseBody> {
        let mut response = Response::new(ResponseBody::full(self.body.clone()));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, self.content_type.clone());
        response
    }
}

/// The fixed answer of `route_id`, or `None` when the route forwards.
pub(crate) fn fixed(
    generation: &Generation,
    route_id: usize,
) -> Option<(http::Response<ResponseBody>, Served)> {
    let runtime = &generation.routes[route_id];
    let answer = runtime.answer.as_ref()?;
    let mut response = answer.response();
    if let Some(rules) = &runtime.response_rules {
        rules.apply(response.headers_mut());
    }
    generation.stats.routes[route_id]
        .unassigned
        .record(Outcome::of_status(answer.status.as_u16()));
    Some((response, Served::default()))
}
