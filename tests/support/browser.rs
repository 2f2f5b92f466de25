//! A real Chromium, headless, driven over the W3C WebDriver protocol by Debian's
//! `chromium-driver` (`./scripts/test.sh` installs both). The browser reaches 127.0.0.1 and
//! nothing else: every other host goes to a proxy that does not exist, and its own
//! background traffic is off. Its log of the page's requests shows what the page asked for.
//!
//! `CHROMIUM` and `CHROMEDRIVER` name other binaries than `/usr/bin/chromium` and
//! `/usr/bin/chromedriver`. A missing browser fails the test: it never passes by skipping.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::process::{eventually, free_port, try_request};

/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for the page lasts.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    /// Where screenshots go.
    pub shots: PathBuf,
}

fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: the admin page tests need Debian's chromium and chromium-driver \
         (./scripts/test.sh installs them; {var} names another binary)"
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a fresh profile.
    pub fn start() -> Browser {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(30), || {
            try_request("GET", &format!("{base}/status"), None, None)
                .is_ok_and(|a| a.status == 200 && a.body.contains("\"ready\":true"))
        });
        assert!(up, "chromedriver did not start on port {port}");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    // Only the node answers: any other host goes to a closed port.
                    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-extensions",
                ],
            },
            "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"},
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
            shots: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/admin-screenshots"),
        };
        let created = browser.command("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// A WebDriver call; its `value`, or the error it answered.
    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let answer = try_request(method, &url, None, body.as_ref())?;
        let value: Value = serde_json::from_str(&answer.body).map_err(|e| format!("{e}: {}", answer.body))?;
        let value = value["value"].clone();
        if answer.status != 200 {
            return Err(format!("{}: {}", value["error"], value["message"]));
        }
        Ok(value)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn element_path(&self, el: &Element, rest: &str) -> String {
        self.session_path(&format!("/element/{}{rest}", el.0))
    }

    /// What a GET of the element's `rest` answers, if it answers.
    fn element_get(&self, el: &Element, rest: &str) -> Option<Value> {
        self.try_command("GET", &self.element_path(el, rest), None).ok()
    }

    /// Opens `url` and waits for the document to load.
    pub fn goto(&self, url: &str) {
        self.command("POST", &self.session_path("/url"), Some(json!({"url": url})));
    }

    /// The first element matching `css`, if any now.
    pub fn find(&self, css: &str) -> Option<Element> {
        self.try_command(
            "POST",
            &self.session_path("/element"),
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(|id| Element(id.to_owned())))
    }

    /// Every element matching `css` now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.command(
            "POST",
            &self.session_path("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|v| v[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits up to `limit` for an element matching `css`; panics with the page's text and a
    /// screenshot when none comes.
    pub fn wait_for(&self, css: &str, limit: Duration) -> Element {
        let start = Instant::now();
        loop {
            if let Some(el) = self.find(css) {
                return el;
            }
            if start.elapsed() > limit {
                self.screenshot("failure");
                panic!(
                    "no {css} on the page within {limit:?}; the page says:\n{}",
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `limit` until `check` holds.
    pub fn wait_until(&self, limit: Duration, what: &str, mut check: impl FnMut(&Browser) -> bool) {
        if !eventually(limit, || check(self)) {
            self.screenshot("failure");
            panic!(
                "{what} not within {limit:?}; the page says:\n{}",
                self.page_text()
            );
        }
    }

    /// The visible text of the whole page.
    pub fn page_text(&self) -> String {
        self.find("body").map(|b| self.text(&b)).unwrap_or_default()
    }

    pub fn click(&self, el: &Element) {
        self.command("POST", &self.element_path(el, "/click"), None);
    }

    /// Clicks the first element matching `css`, waiting for it; found again when the page
    /// redrew it between the search and the click.
    pub fn click_on(&self, css: &str) {
        self.on_element(css, "/click", json!({}));
    }

    /// Types `text` into the first input matching `css`, as [`Browser::click_on`] finds it.
    pub fn type_on(&self, css: &str, text: &str) {
        self.on_element(css, "/value", json!({"text": text}));
    }

    fn on_element(&self, css: &str, action: &str, body: Value) {
        let start = Instant::now();
        loop {
            let el = self.wait_for(css, PAGE_WAIT);
            let path = self.element_path(&el, action);
            match self.try_command("POST", &path, Some(body.clone())) {
                Ok(_) => return,
                Err(e) if e.contains("stale element") && start.elapsed() < PAGE_WAIT => {}
                Err(e) => panic!("{action} on {css}: {e}"),
            }
        }
    }

    /// Types `text` into an input.
    pub fn type_into(&self, el: &Element, text: &str) {
        self.command(
            "POST",
            &self.element_path(el, "/value"),
            Some(json!({"text": text})),
        );
    }

    /// Empties an input.
    pub fn clear(&self, el: &Element) {
        self.command("POST", &self.element_path(el, "/clear"), None);
    }

    pub fn text(&self, el: &Element) -> String {
        self.element_get(el, "/text")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        self.element_get(el, &format!("/attribute/{name}"))
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Whether the element is shown.
    pub fn displayed(&self, el: &Element) -> bool {
        self.element_get(el, "/displayed")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// Runs `script` in the page (its `return` value comes back).
    pub fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Saves a PNG of the viewport as `target/admin-screenshots/{name}.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let Ok(png) = self.try_command("GET", &self.session_path("/screenshot"), None) else {
            return PathBuf::new();
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_default();
        std::fs::create_dir_all(&self.shots).unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The network requests (http, https, ws, wss) the browser's pages made since the last
    /// call, from Chromium's performance log; its own `chrome://` pages are not the network.
    pub fn requests(&self) -> Vec<String> {
        let log = self
            .try_command(
                "POST",
                &self.session_path("/se/log"),
                Some(json!({"type": "performance"})),
            )
            .or_else(|_| {
                self.try_command(
                    "POST",
                    &self.session_path("/log"),
                    Some(json!({"type": "performance"})),
                )
            })
            .unwrap_or_else(|e| panic!("the browser's request log cannot be read: {e}"));
        let mut urls = Vec::new();
        for entry in log.as_array().into_iter().flatten() {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            if message["message"]["method"] == "Network.requestWillBeSent"
                && let Some(url) = message["message"]["params"]["request"]["url"].as_str()
                && ["http:", "https:", "ws:", "wss:"]
                    .iter()
                    .any(|s| url.starts_with(s))
            {
                urls.push(url.to_owned());
            }
        }
        urls
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_command("DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
