//! Who is looking at the console, and whether a form was sent from it.
//!
//! With an API token configured (`weir serve --api-token-file`), the
//! console asks for the token once ([`super::login`]) and then keeps a
//! session in a cookie: `HttpOnly` (no script reads it), `SameSite=Strict`
//! (no other site's page sends it), for [`SESSION_HOURS`]. The cookie
//! holds when it was issued and an HMAC of that under the token, so it
//! proves the token was presented without containing it, every replica
//! sharing the token accepts it, and changing the token ends every session.
//!
//! Every form that changes something carries a CSRF token, an HMAC under
//! the API token of the session's cookie: a page of another origin can
//! neither read it nor send the cookie. A write also refuses an `Origin`
//! header that names another host.
//!
//! Without an API token the console reads freely, as the API does, and
//! acts on nothing (the API's writes need a token too).

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub const COOKIE: &str = "weir_session";

/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;

/// What the console knows of the person asking, put in each request's
/// extensions by the console's guard.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Whether an API token is configured (then every page needs a
    /// session, and actions are possible).
    pub token_configured: bool,
    /// The CSRF token of this session's forms; `None` without a session.
    pub csrf: Option<String>,
}

impl Viewer {
    /// Whether this viewer may act (run, cancel): a session under a
    /// configured token.
    pub fn can_act(&self) -> bool {
        self.token_configured && self.csrf.is_some()
    }
}

fn mac(token: &str, purpose: &str, data: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(data.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new session's cookie value, issued `now`.
pub fn issue(token: &str, now: DateTime<Utc>) -> String {
    let issued = now.timestamp().to_string();
    let proof = mac(token, "session", &issued);
    format!("{issued}.{proof}")
}

/// How far in the future a session's issue may be: another replica's
/// clock may run a little ahead of this one's.
const SKEW_SECONDS: i64 = 60;

/// Whether `value` is a session issued under `token` that has not expired
/// at `now`. The proof is compared in constant time.
pub fn valid(token: &str, value: &str, now: DateTime<Utc>) -> bool {
    let Some((issued, proof)) = value.split_once('.') else {
        return false;
    };
    let Ok(at) = issued.parse::<i64>() else {
        return false;
    };
    let age = now.timestamp() - at;
    if !(-SKEW_SECONDS..SESSION_HOURS * 3600).contains(&age) {
        return false;
    }
    let expected = mac(token, "session", issued);
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), proof.as_bytes()).into()
}

/// The CSRF token of the session `cookie`.
pub fn csrf(token: &str, cookie: &str) -> String {
    mac(token, "csrf", cookie)
}

/// Whether a form's `presented` CSRF token is the session's.
pub fn csrf_matches(token: &str, cookie: &str, presented: &str) -> bool {
    let expected = csrf(token, cookie);
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), presented.as_bytes()).into()
}

/// The value of the session cookie in `headers`, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that starts a session (`value`), or ends one
/// (`None`). `Secure` when the request came over HTTPS (a proxy in front
/// says so with `X-Forwarded-Proto`).
pub fn set_cookie(value: Option<&str>, headers: &HeaderMap) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let (value, age) = match value {
        Some(value) => (value, SESSION_HOURS * 3600),
        None => ("", 0),
    };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a write's `Origin` (when the browser sent one) is this host,
/// as the browser reached it: `X-Forwarded-Host` when a proxy in front
/// says so, else `Host`.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use chrono::TimeZone as _;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0)
            .single()
            .expect("an instant")
    }

    #[test]
    fn a_session_holds_for_its_hours_under_its_token_only() {
        let value = issue("s3cret", at(0));
        assert!(valid("s3cret", &value, at(0)));
        assert!(valid("s3cret", &value, at(SESSION_HOURS * 3600 - 1)));
        assert!(!valid("s3cret", &value, at(SESSION_HOURS * 3600)));
        assert!(
            valid("s3cret", &value, at(-1)),
            "a replica's clock a second behind"
        );
        assert!(!valid("s3cret", &value, at(-61)), "issued in the future");
        assert!(!valid("other", &value, at(1)), "the token changed");
        let (issued, proof) = value.split_once('.').expect("two parts");
        let later = format!("{}.{proof}", issued.parse::<i64>().expect("a number") + 60);
        assert!(!valid("s3cret", &later, at(61)), "the instant is signed");
        assert!(!valid("s3cret", "garbage", at(0)));
        assert!(!value.contains("s3cret"));
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let one = issue("s3cret", at(0));
        let two = issue("s3cret", at(1));
        let token = csrf("s3cret", &one);
        assert!(csrf_matches("s3cret", &one, &token));
        assert!(!csrf_matches("s3cret", &two, &token));
        assert!(!csrf_matches("s3cret", &one, ""));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; weir_session=1.abc; x=y"),
        );
        assert_eq!(cookie(&headers), Some("1.abc"));
        let set = set_cookie(Some("1.abc"), &headers);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie(None, &headers).ends_with("Max-Age=0; Secure"));
    }

    #[test]
    fn writes_from_another_origin_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&headers),
            "no Origin: not a browser's cross-site form"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("weir.acme.dev"),
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://weir.acme.dev"),
        );
        assert!(
            same_origin(&headers),
            "behind a proxy, the host it was reached at"
        );
    }
}
