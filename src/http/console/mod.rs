//! The web console (DESIGN.md section 11): what `weir serve` shows a
//! browser at `/`. Every page is HTML rendered here, on the server, from
//! the same documents the CLI prints and the API returns ([`crate::views`]),
//! so the three cannot disagree; a little script (`assets/weir.js`) only
//! follows a running log and marks the local time, and every page works
//! without it.
//!
//! What it guarantees:
//! - Every value shown is escaped: pages are written with `maud`, which
//!   escapes whatever it interpolates, and nothing here writes raw HTML
//!   from data (a log line `<script>` is shown as text).
//! - No request leaves the page's origin: the stylesheet and the script are
//!   embedded in the binary and served from `/assets/`, and a strict
//!   Content-Security-Policy (no inline script or style, nothing from
//!   elsewhere, no framing) is sent with every page.
//! - With an API token configured every page needs a session, and every
//!   action a session, a confirmation and a CSRF token ([`session`]);
//!   without one the console reads and never acts, as the API.
//! - Each page has a stable URL (filters are query parameters), so a link
//!   can be pasted in a chat or a pull request.
//!
//! What it must not do: change the store other than as the API does (a run
//! through `engine::create`, a cancellation through
//! `views::request_cancel`, a backfill through `engine::backfill`); a
//! rollback changes the repository only (`reconcile::rollback`, the commit
//! `weir rollback` writes), never the store.

mod assets;
mod entities;
mod executions;
mod graph;
mod layout;
mod lineage;
mod overview;
mod plans;
pub mod session;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use super::Shared;
use layout::{Page, Section};
pub use session::Viewer;

/// The console's routes, behind its guard.
pub(super) fn routes(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::one))
        .route("/executions/{id}/log", get(executions::log))
        .route("/executions/{id}/log/follow", get(executions::follow))
        .route(
            "/executions/{id}/cancel",
            get(executions::confirm_cancel).post(executions::cancel),
        )
        .route(
            "/executions/{id}/approval",
            get(executions::confirm_approval).post(executions::approval),
        )
        .route("/entities", get(entities::list))
        .route("/entities/{project}/{kind}/{name}", get(entities::history))
        .route(
            "/entities/{project}/{kind}/{name}/diff",
            get(entities::diff),
        )
        .route(
            "/entities/{project}/{kind}/{name}/rollback",
            get(entities::confirm_rollback).post(entities::rollback),
        )
        .route(
            "/workflows/{project}/{name}/{version}",
            get(entities::workflow),
        )
        .route("/lineage/{target}", get(lineage::page))
        .route("/launchplans", get(plans::list))
        .route("/launchplans/{project}/{name}", get(plans::one))
        .route(
            "/launchplans/{project}/{name}/run",
            get(plans::confirm_run).post(plans::run),
        )
        .route(
            "/launchplans/{project}/{name}/backfill",
            get(plans::backfill_form).post(plans::backfill),
        )
        .route("/audit", get(overview::audit))
        .route_layer(middleware::from_fn_with_state(state, guard))
}

/// The Content-Security-Policy of every console response: only this
/// origin's script and stylesheet, no inline ones, no plugins, no framing,
/// forms posted here only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'";

/// Sets the security headers, works out the [`Viewer`], and with an API
/// token configured sends a request without a valid session to the login
/// page (the assets and the login page itself excepted). A write
/// (`POST`) must carry the session's CSRF token and come from this origin;
/// the handlers check the token ([`checked_form`]), this checks the origin.
async fn guard(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let open = path == "/login" || path.starts_with("/assets/");
    let viewer = match &state.secrets.api_token {
        None => Viewer {
            token_configured: false,
            csrf: None,
        },
        Some(token) => {
            let now = state.clock.now();
            match session::cookie(request.headers()) {
                Some(value) if session::valid(token, value, now) => Viewer {
                    token_configured: true,
                    csrf: Some(session::csrf(token, value)),
                },
                _ if open => Viewer {
                    token_configured: true,
                    csrf: None,
                },
                _ => {
                    let next = request
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    let to = format!("/login?next={}", encode(&next));
                    return secure(Redirect::to(&to).into_response());
                }
            }
        }
    };
    if request.method() == Method::POST && !session::same_origin(request.headers()) {
        return secure((StatusCode::FORBIDDEN, "a form from another origin").into_response());
    }
    request.extensions_mut().insert(viewer);
    secure(next.run(request).await)
}

/// Adds the headers every console response carries.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Percent-encodes a query parameter's value or a path segment.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a viewer cannot act (without a token configured, or a session).
const NEEDS_A_SESSION: &str = "Acting from the console needs a session under the API token (weir serve --api-token-file): sign in first.";

/// A form that changes something: its fields, once its CSRF token was
/// checked against the session's.
#[derive(Debug, Deserialize)]
pub struct Posted<T> {
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

/// The page a request gets instead of the one it asked for (boxed: a
/// response is large, and most reads succeed).
pub struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(response: Response) -> Refusal {
        Refusal(Box::new(response))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The fields of `form`, or the page that refuses it: 403 without a
/// session that may act or with a CSRF token not the session's.
fn checked_form<T>(
    state: &Shared,
    viewer: &Viewer,
    headers: &axum::http::HeaderMap,
    form: Posted<T>,
) -> Result<T, Refusal> {
    let (Some(token), Some(cookie)) = (&state.secrets.api_token, session::cookie(headers)) else {
        return Err(refused(StatusCode::FORBIDDEN, NEEDS_A_SESSION, viewer).into());
    };
    if !session::csrf_matches(token, cookie, &form.csrf) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "This form is not from your session (its CSRF token does not match): reload the page and try again.",
            viewer,
        )
        .into());
    }
    Ok(form.fields)
}

/// A page saying why a request cannot be served.
fn refused(status: StatusCode, message: &str, viewer: &Viewer) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (message) }
        p { a href="/" { "Back to the overview" } }
    };
    (status, Page::new(title, Section::None, viewer).render(body)).into_response()
}

/// A store failure: 500 with its message (logged here).
fn store_failed(e: &impl std::fmt::Display, viewer: &Viewer) -> Response {
    tracing::warn!(error = %e, "console: store error");
    refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), viewer)
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    failed: Option<bool>,
}

/// `GET /login`: asks for the API token.
async fn login_form(
    axum::Extension(viewer): axum::Extension<Viewer>,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if !viewer.token_configured {
        return Redirect::to("/").into_response();
    }
    let next = query.next.unwrap_or_else(|| "/".into());
    let body = html! {
        h1 { "Sign in" }
        p { "This weir asks for its API token (the contents of the file given to "
            code { "--api-token-file" } ") once; the console then keeps a session for "
            (session::SESSION_HOURS) " hours." }
        @if query.failed == Some(true) {
            p.error role="alert" { "That is not this server's API token." }
        }
        form.stack method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
    };
    Page::new("Sign in", Section::None, &viewer)
        .render(body)
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: the token presented starts a session; a wrong one is
/// sent back to the form (and logged, without the value).
async fn login(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(token) = &state.secrets.api_token else {
        return Redirect::to("/").into_response();
    };
    // Only a path of this site: never an open redirect.
    let next = form
        .next
        .filter(|n| local_path(n))
        .unwrap_or_else(|| "/".into());
    if !super::auth::token_matches(form.token.trim(), token) {
        tracing::info!("console: sign-in refused (wrong token)");
        let to = format!("/login?failed=true&next={}", encode(&next));
        return Redirect::to(&to).into_response();
    }
    let value = session::issue(token, state.clock.now());
    let mut response = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(Some(&value), &headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether `next` is a path of this site and nothing else: it starts with
/// one `/` (not `//` nor `/\`, which browsers read as another host) and
/// holds no whitespace or control character (which browsers drop before
/// reading it, so `/\t/evil` would become `//evil`).
fn local_path(next: &str) -> bool {
    let mut chars = next.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
}

/// `POST /logout`: ends the session (the cookie is cleared).
async fn logout(headers: axum::http::HeaderMap) -> Response {
    let mut response = Redirect::to("/login").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(None, &headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn after_sign_in_only_a_path_of_this_site_is_followed() {
        for good in [
            "/",
            "/executions?status=failed",
            "/entities/etl/Task/load%20x",
        ] {
            assert!(local_path(good), "{good}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "evil",
            "",
        ] {
            assert!(!local_path(bad), "{bad:?}");
        }
    }
}
