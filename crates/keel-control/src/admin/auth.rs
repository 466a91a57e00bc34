//! Bearer-token authentication for every admin route except `GET /healthz`:
//! 401 (with `WWW-Authenticate: Bearer`) when no usable `Authorization: Bearer` header
//! is sent, 403 when the token is wrong. Compared in constant time; never logged.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::AdminState;
use super::handlers::failure;

pub(super) async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()));
    match presented {
        None => {
            let mut response = failure(
                StatusCode::UNAUTHORIZED,
                "this route needs the admin token".to_string(),
                Some("send `Authorization: Bearer <token>`; the token is in the state directory's admin.token file or KEEL_ADMIN_TOKEN".to_string()),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Some(token) if state.token.matches(token) => next.run(request).await,
        Some(_) => {
            failure(StatusCode::FORBIDDEN, "wrong admin token".to_string(), None).into_response()
        }
    }
}

/// The token of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_values_parse() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
