//! `tagbeez serve` as a process: on a pipe, or on a real pseudo-terminal through util-linux's
//! `script` (in every Debian, package `bsdutils`), which runs the binary with its stdio on one and
//! copies what it prints to a pipe. The server binds port 0; the real port comes from what it
//! prints.

#[path = "dynamodb.rs"]
mod dynamodb;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const START: Duration = Duration::from_secs(90);

/// A running server and the lines it prints, killed when dropped.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Server {
    /// The binary under `script`, so that its stdin, stdout and stderr are a terminal.
    pub fn on_terminal(log_format: Option<&str>) -> Self {
        let bin = env!("CARGO_BIN_EXE_tagbeez");
        let mut command = Command::new("script");
        command.args(["-qfec", &format!("'{bin}' serve"), "/dev/null"]);
        Self::spawn(command, log_format, true)
    }

    /// The binary with its stderr on a pipe, as under CI or in a container.
    pub fn on_pipe() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tagbeez"));
        command.arg("serve");
        Self::spawn(command, None, false)
    }

    fn spawn(mut command: Command, log_format: Option<&str>, terminal: bool) -> Self {
        command
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_LEVEL", "info")
            .env_remove("LOG_FORMAT")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("TABLE_NAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(format) = log_format {
            command.env("LOG_FORMAT", format);
        }
        let mut child = command
            .spawn()
            .expect("the server starts (is `script` installed?)");
        // Under `script` everything arrives on stdout; on a pipe the logs are on stderr.
        let out = if terminal {
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>
        } else {
            Box::new(child.stderr.take().unwrap())
        };
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if send.send(line.trim_end_matches('\r').to_owned()).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Read lines until one matches, within `START`.
    pub fn until(&mut self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + START;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if found(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no {what} within {START:?}; printed:\n{}",
            self.seen.join("\n")
        );
    }

    /// The port of the JSON `tagbeez listening` log line, read within `START`.
    pub fn port(&mut self) -> u16 {
        let line = self.until("listening log line", |l| listening_port(l).is_some());
        listening_port(&line).unwrap()
    }

    /// Whatever else arrives within `wait`.
    pub fn drain(&mut self, wait: Duration) {
        while let Ok(line) = self.lines.recv_timeout(wait) {
            self.seen.push(line);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a JSON `tagbeez listening` line (`"addr":"127.0.0.1:PORT"`).
pub fn listening_port(line: &str) -> Option<u16> {
    let log: Value = serde_json::from_str(line).ok()?;
    let fields = log.get("fields").unwrap_or(&log);
    if fields.get("message")?.as_str()? != "tagbeez listening" {
        return None;
    }
    fields
        .get("addr")?
        .as_str()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

pub fn get(port: u16, path: &str) -> u16 {
    dynamodb::http(port, "GET", path, None, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("GET {path} answered"))
        .status
}
