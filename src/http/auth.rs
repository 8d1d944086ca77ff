//! Checking the secrets a request presents: a bearer token, or a GitHub
//! webhook signature. Both comparisons take the same time whatever the
//! presented value, so a caller cannot learn the secret byte by byte.
//! (Signing a body, which weir's notifications do, is
//! [`crate::outbound::sign`].)

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `headers` carry `Authorization: Bearer <expected>`.
///
/// Both tokens are hashed first, so the comparison is constant-time in
/// their length too.
pub fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    bearer(headers).is_some_and(|presented| token_matches(presented, expected))
}

/// Whether `presented` is the token `expected` (the console's sign-in
/// form presents it), compared as [`bearer_matches`] does.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.as_slice().ct_eq(expected.as_slice()).into()
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in
/// any case, as RFC 9110 allows).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Whether `signature` (the `X-Hub-Signature-256` header,
/// `sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(mac) = signature.strip_prefix("sha256=").and_then(decode_hex) else {
        return false;
    };
    let mut expected =
        Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    expected.update(body);
    // `verify_slice` compares in constant time.
    expected.verify_slice(&mac).is_ok()
}

/// The bytes of a hex string (either case); `None` when it is not hex.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::sign;
    use axum::http::HeaderValue;

    /// GitHub's documented example: secret `It's a Secret to Everybody`,
    /// body `Hello, World!`.
    #[test]
    fn github_documented_signature_verifies() {
        let secret = b"It's a Secret to Everybody";
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_valid(secret, b"Hello, World!", signature));
        assert_eq!(sign(secret, b"Hello, World!"), signature);
        assert!(github_signature_valid(
            secret,
            b"Hello, World!",
            &signature.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!github_signature_valid(secret, b"Hello, World?", signature));
        assert!(!github_signature_valid(
            b"other",
            b"Hello, World!",
            signature
        ));
        assert!(!github_signature_valid(
            secret,
            b"Hello, World!",
            "sha256=zz"
        ));
        assert!(!github_signature_valid(
            secret,
            b"Hello, World!",
            &signature[7..]
        ));
    }

    #[test]
    fn bearer_needs_the_exact_token() {
        let mut headers = HeaderMap::new();
        assert!(!bearer_matches(&headers, "s3cret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(bearer_matches(&headers, "s3cret"));
        assert!(!bearer_matches(&headers, "s3cre"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert!(bearer_matches(&headers, "s3cret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!bearer_matches(&headers, "s3cret"));
    }
}
