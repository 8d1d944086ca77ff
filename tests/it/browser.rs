//! A real browser for the console's tests: Debian's headless Chromium
//! (`/usr/bin/chromium`), driven over WebDriver by chromedriver on a free
//! loopback port, through fantoccini. `scripts/test-env` installs both.
//!
//! Chromium is started as this machine's closed network needs (no
//! background networking, sync or component updates), with a fresh
//! profile, and with its console log kept so that a test can assert that
//! a page logged no error (a script error, a refused Content-Security-
//! Policy, a failed request are all logged as errors).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{eventually, free_addr};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// chromedriver's log of the page's console (`POST /se/log`, which
/// WebDriver itself does not define).
#[derive(Debug)]
struct ConsoleLog;

impl WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// A Chrome DevTools command through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct DevTools(Value);

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session of `width` ×
    /// `height` pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let addr = free_addr();
        let port = addr.rsplit(':').next().expect("a port");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/test-env installs Debian's chromium-driver)");
        tokio::task::block_in_place(|| {
            eventually("chromedriver listens", || {
                std::net::TcpStream::connect(&addr).is_ok()
            })
        });
        let profile = tempfile::tempdir().expect("a profile folder");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{addr}/"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url` and checks the page logged no error.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
        self.assert_no_console_errors(url).await;
    }

    /// The errors the pages' console logged since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(ConsoleLog)
            .await
            .expect("the console log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn assert_no_console_errors(&self, page: &str) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "{page} logged errors: {errors:#?}");
    }

    /// Makes pages see `prefers-color-scheme: dark` (or light).
    pub async fn prefer_dark(&self, dark: bool) {
        let scheme = if dark { "dark" } else { "light" };
        let command = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": { "features": [{ "name": "prefers-color-scheme", "value": scheme }] },
        });
        self.client
            .issue_cmd(DevTools(command))
            .await
            .expect("the color scheme is emulated");
    }

    /// The text of the first element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .text()
            .await
            .expect("its text")
    }

    /// An attribute of the first element `css` selects.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .attr(name)
            .await
            .expect("its attribute")
    }

    /// Clicks the first element `css` selects.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .click()
            .await
            .expect("a click");
    }

    /// Clicks the first element `css` selects (a link, a form's button)
    /// and waits until the browser has moved to another URL.
    pub async fn follow(&self, css: &str) {
        // The page shown is marked; the next one is the page without it.
        self.client
            .execute("document.documentElement.dataset.left = 'yes'", vec![])
            .await
            .expect("the page is marked");
        self.click(css).await;
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("html:not([data-left])"))
            .await
            .unwrap_or_else(|e| panic!("`{css}` leads to another page: {e}"));
    }

    /// Waits (fantoccini polls the page) until `xpath` selects an element
    /// of the page as it changes, without reloading it.
    pub async fn wait_for(&self, xpath: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("`{xpath}` never appeared: {e}"));
    }

    /// Types `text` into the first element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .send_keys(text)
            .await
            .expect("typed");
    }

    /// The path of the page shown.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("a URL")
            .path()
            .to_owned()
    }

    /// A PNG of the whole window, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        client.close().await.expect("the session ends");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
