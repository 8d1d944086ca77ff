//! The console's stylesheet, script and icon, embedded in the binary (nothing
//! to install, nothing fetched from elsewhere). Their URLs carry a digest
//! of their content, so a browser may keep them for a year and still sees
//! a new build's at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/weir.css");
const JS: &str = include_str!("assets/weir.js");
const ICON: &str = include_str!("assets/weir.svg");

/// `weir-<12 hex of its digest>.css`.
fn name(stem: &str, content: &str, extension: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{stem}-{hex}.{extension}")
}

static CSS_NAME: LazyLock<String> = LazyLock::new(|| name("weir", CSS, "css"));
static JS_NAME: LazyLock<String> = LazyLock::new(|| name("weir", JS, "js"));
static ICON_NAME: LazyLock<String> = LazyLock::new(|| name("weir", ICON, "svg"));

/// The stylesheet's URL.
pub static STYLESHEET: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", *CSS_NAME));
/// The script's URL.
pub static SCRIPT: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", *JS_NAME));
/// The icon's URL (a page without one makes browsers ask for
/// `/favicon.ico`, which is not there).
pub static ICON_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", *ICON_NAME));

/// `GET /assets/{name}`: the stylesheet, the script or the icon, 404
/// otherwise.
pub async fn serve(Path(requested): Path<String>) -> Response {
    let (content, kind) = if requested == *CSS_NAME {
        (CSS, "text/css; charset=utf-8")
    } else if requested == *JS_NAME {
        (JS, "text/javascript; charset=utf-8")
    } else if requested == *ICON_NAME {
        (ICON, "image/svg+xml")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, kind)], content).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
