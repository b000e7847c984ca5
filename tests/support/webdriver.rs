//! A WebDriver client for the browser tests, std only: HTTP/1.1 over loopback (one request
//! per connection), chromedriver started on a free port with one headless Chromium session,
//! element helpers and screenshots. chromedriver and the service under test both listen on
//! loopback, and every command is one JSON request.
//! Use from a test file with `#[path = "support/webdriver.rs"] mod webdriver;`.

#![allow(dead_code)] // each test file uses the part it needs

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long any one thing the page does may take (a classification with explanations is well
/// under a second here; a cold Chromium start a few).
pub const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// HTTP/1.1 over loopback, std only: one request per connection
// ---------------------------------------------------------------------------------------

pub type Headers = Vec<(String, String)>;

pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, Headers, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(PATIENCE * 2))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes())?;
    // Read the head, then the body by its Content-Length (chromedriver keeps the connection
    // open whatever `Connection: close` says), by its chunks, or to the end.
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(bad("the connection closed before the end of the headers"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw.split_off(split + 4);
    let length = header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked =
        header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    loop {
        let complete = match length {
            Some(length) => body.len() >= length,
            None if chunked => dechunk(&body).is_some(),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            if length.is_some() || chunked {
                return Err(bad("the connection closed before the end of the body"));
            }
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if let Some(length) = length {
        body.truncate(length);
    } else if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// A chunked body, once it is complete (its last, empty chunk read).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------
// WebDriver: chromedriver and one headless Chromium session
// ---------------------------------------------------------------------------------------

/// The W3C WebDriver element reference key.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: SocketAddr,
    session: String,
    chromedriver: Child,
    profile: PathBuf,
}

impl Browser {
    pub fn start(out_dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = out_dir.join("chromedriver.log");
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} ({e}); run scripts/install-browser.sh")
            });
        let profile = std::env::temp_dir().join(format!(
            "tagbeez-demo-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile).expect("a profile dir");
        let driver = SocketAddr::from(([127, 0, 0, 1], port));
        let mut browser = Self {
            driver,
            session: String::new(),
            chromedriver,
            profile,
        };
        let started = Instant::now();
        loop {
            if let Ok((200, _, text)) = http(driver, "GET", "/status", None) {
                let status: Value = serde_json::from_str(&text).unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            if let Ok(Some(exit)) = browser.chromedriver.try_wait() {
                panic!("chromedriver exited ({exit}); see {}", log.display());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver not ready; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1200,900",
            &format!("--user-data-dir={}", browser.profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let (status, _, text) = http(driver, "POST", "/session", Some(&capabilities.to_string()))
            .expect("chromedriver answers");
        let reply: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            status,
            200,
            "no browser session: {text}; see {}",
            log.display()
        );
        browser.session = reply["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.command("POST", "/timeouts", Some(&json!({"script": 30_000})));
        browser
    }

    /// One command of this session; a WebDriver error fails the test with its message.
    pub fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let uri = format!("/session/{}{path}", self.session);
        let body = body.map(Value::to_string);
        let (status, _, text) = http(self.driver, method, &uri, body.as_deref())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path} -> {status}: {e}: {text}"));
        assert_eq!(
            status, 200,
            "WebDriver {method} {path}: {}: {}",
            reply["value"]["error"], reply["value"]["message"]
        );
        reply["value"].clone()
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        self.command("POST", path, Some(body))
    }

    pub fn get(&self, path: &str) -> Value {
        self.command("GET", path, None)
    }

    pub fn navigate(&self, url: &str) {
        self.post("/url", &json!({ "url": url }));
    }

    pub fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", &json!({"script": script, "args": args}))
    }

    fn ids(found: Value) -> Vec<String> {
        found
            .as_array()
            .expect("elements")
            .iter()
            .map(|e| e[ELEMENT].as_str().expect("an element id").to_owned())
            .collect()
    }

    pub fn all(&self, css: &str) -> Vec<String> {
        Self::ids(self.post("/elements", &json!({"using": "css selector", "value": css})))
    }

    pub fn all_in(&self, parent: &str, css: &str) -> Vec<String> {
        Self::ids(self.post(
            &format!("/element/{parent}/elements"),
            &json!({"using": "css selector", "value": css}),
        ))
    }

    #[track_caller]
    pub fn one(&self, css: &str) -> String {
        let mut found = self.all(css);
        assert_eq!(found.len(), 1, "{css}: {} elements", found.len());
        found.remove(0)
    }

    #[track_caller]
    pub fn one_in(&self, parent: &str, css: &str) -> String {
        let mut found = self.all_in(parent, css);
        assert_eq!(found.len(), 1, "{css}: {} elements", found.len());
        found.remove(0)
    }

    pub fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), &json!({}));
    }

    /// Clear a text field and type into it, key by key, as a person would. chromedriver types
    /// only the Basic Multilingual Plane, so a character beyond it (an emoji) is inserted at
    /// the caret as an input method would (`insertText`).
    pub fn type_into(&self, element: &str, text: &str) {
        self.post(&format!("/element/{element}/clear"), &json!({}));
        let mut run = String::new();
        for c in text.chars().map(Some).chain([None]) {
            if let Some(c) = c.filter(|c| c.len_utf16() == 1) {
                run.push(c);
                continue;
            }
            if !run.is_empty() {
                self.post(
                    &format!("/element/{element}/value"),
                    &json!({ "text": run }),
                );
                run.clear();
            }
            if let Some(c) = c {
                let inserted = self.script(
                    "arguments[0].focus(); \
                     return document.execCommand('insertText', false, arguments[1])",
                    json!([{ ELEMENT: element }, c.to_string()]),
                );
                assert_eq!(inserted, true, "insert {c:?}");
            }
        }
    }

    pub fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .expect("text")
            .to_owned()
    }

    pub fn displayed(&self, element: &str) -> bool {
        self.get(&format!("/element/{element}/displayed")) == true
    }

    pub fn attribute(&self, element: &str, name: &str) -> Value {
        self.get(&format!("/element/{element}/attribute/{name}"))
    }

    pub fn property(&self, element: &str, name: &str) -> Value {
        self.get(&format!("/element/{element}/property/{name}"))
    }

    pub fn set_window(&self, width: u64, height: u64) {
        self.post("/window/rect", &json!({"width": width, "height": height}));
    }

    /// The viewport as PNG bytes.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.get("/screenshot");
        base64_decode(encoded.as_str().expect("base64 text")).expect("valid base64")
    }

    /// A screenshot of the whole page: the window made as tall as the page (600 to 6000
    /// pixels), then the viewport as PNG bytes, written to `path` too.
    pub fn save_full_page_screenshot(&self, path: &Path) -> Vec<u8> {
        let sizes = self.script(
            "return [document.documentElement.scrollHeight, window.innerHeight, window.outerHeight]",
            json!([]),
        );
        let [page, inner, outer] = [0, 1, 2].map(|i| sizes[i].as_u64().unwrap());
        self.set_window(1200, (outer + page.saturating_sub(inner)).clamp(600, 6000));
        let png = self.screenshot();
        std::fs::write(path, &png).expect("write the screenshot");
        png
    }

    /// Poll `f` until it gives a value, for at most `PATIENCE`.
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = f() {
                return value;
            }
            assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends Chromium; chromedriver then goes with it.
            let _ = http(
                self.driver,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)?) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}
