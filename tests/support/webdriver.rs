//! A small W3C WebDriver client over HTTP, enough to drive headless
//! Chromium through `chromedriver`: open a page, find elements (waiting up
//! to the session's implicit timeout for them to appear), type, click, read
//! text, take screenshots.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver` on a port it chose itself.
pub struct Driver {
    child: Child,
    pub base: String,
}

impl Driver {
    /// Starts `chromedriver --port=0` and reads the port it reports.
    pub fn start() -> Self {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("chromedriver could not start (apt-get install chromium chromium-driver): {error}")
            });
        let stdout = child.stdout.take().expect("chromedriver's output");
        let mut port = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("chromedriver's output");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                break;
            }
        }
        let port = port.expect("chromedriver says which port it listens on");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium window of `width` × `height` CSS pixels.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                format!("--window-size={width},{height}"), "--lang=zh-CN",
            ],
            // Chromium's windows are at least 500 pixels wide: a phone's
            // viewport is emulated.
            "mobileEmulation": {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}},
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let created = ask(http.post(format!("{}/session", self.base)).json(
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options,
            }}}),
        ))
        .await;
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_string();
        let browser = Browser {
            http,
            url: format!("{}/session/{id}", self.base),
        };
        browser
            .call("POST", "/timeouts", json!({"implicit": 30_000}))
            .await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromedriver's answer to `request`.
async fn ask(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("chromedriver answers")
        .json()
        .await
        .unwrap()
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    url: String,
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let answer = ask(request).await;
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    pub async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    /// The first element `css` selects, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        Element {
            browser: self,
            id: found[ELEMENT].as_str().expect("an element").to_string(),
        }
    }

    /// How many elements `css` selects now (no waiting).
    pub async fn count(&self, css: &str) -> usize {
        self.script(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )
        .await
        .as_u64()
        .unwrap_or(0) as usize
    }

    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Saves a PNG of the window as `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub async fn close(self) {
        self.call("DELETE", "", Value::Null).await;
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}/{what}", self.id)
    }

    pub async fn click(&self) {
        self.browser
            .call("POST", &self.path("click"), json!({}))
            .await;
    }

    pub async fn clear(&self) {
        self.browser
            .call("POST", &self.path("clear"), json!({}))
            .await;
    }

    pub async fn type_text(&self, text: &str) {
        self.browser
            .call("POST", &self.path("value"), json!({ "text": text }))
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .call("GET", &self.path("text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}
