//! A fault-injecting HTTP/1.1 proxy for tests, between a DynamoDB client and a local
//! DynamoDB-compatible server (moto, tests/support/dynamodb.rs). Use from a test file with
//! `#[path = "support/fault_proxy.rs"] mod fault_proxy;`.
//!
//! Why a proxy rather than a fake store: the faults then reach the real `DynamoStore`, through
//! the real SDK with its own retries, timeouts and error classification, exactly as a flaky
//! network or an overloaded DynamoDB would present them.
//!
//! One request per client connection: read the request (head up to `\r\n\r\n`, then
//! `Content-Length` bytes: the AWS SDK always sends one), pick a fault, act, close. Every
//! answer carries `Connection: close`, so the SDK never reuses a connection the proxy is about
//! to close and a fault can never leak into the next request; the SDK simply reconnects.
//!
//! The faults, each counted (`FaultProxy::counts`):
//! - delay: sleep 20-400 ms, then forward (a delay past the client's operation timeout makes
//!   the client give up while the request is still on its way: the write may land later);
//! - drop before forwarding: close without answering; the store never saw the request;
//! - drop after forwarding: the store handled the request (a write happened) but its answer is
//!   lost, the case idempotent writes (`message_id`) exist for;
//! - 500 `InternalServerError`, 400 `ProvisionedThroughputExceededException`, 400
//!   `ThrottlingException`: DynamoDB's retryable error answers, as its JSON protocol sends them;
//! - pass.
//!
//! Faults are drawn from a seeded xorshift generator, one draw per accepted connection in
//! accept order, so a seed gives the same sequence of faults (which request gets which one
//! still depends on scheduling). `set_faults(false)` makes every request pass, without
//! shifting the sequence.
//!
//! In front of EventBridge instead (`FaultProxy::start_events`, an `EventsFaultPlan`), the
//! proxy injects whole-call failures into `AWSEvents.PutEvents` (500 `InternalException`, 400
//! `ThrottlingException`, drops before and after forwarding) and partial failures: the request
//! forwarded with one entry taken out of `Entries`, and moto's answer returned with a failed
//! entry (`InternalFailure`) put back at that position and `FailedEntryCount` raised by one,
//! exactly what a real partial failure looks like to the client. Counted apart
//! (`FaultProxy::events_counts`). Other EventBridge calls pass.
//!
//! Only 127.0.0.1 is ever bound or contacted; every read and every exchange with the upstream
//! is bounded by a timeout; the proxy (its accept loop and every connection it is serving)
//! stops when the `FaultProxy` is dropped.

#![allow(dead_code)] // each test file uses the part it needs

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The longest the proxy waits for a client to send its whole request.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one exchange with the upstream may take (connect, send, whole answer).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the proxy spends writing an answer back to a client.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Larger heads or bodies are refused (closed): DynamoDB items are at most 400 KB.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Sleep this long, then forward.
    Delay(Duration),
    DropBeforeForwarding,
    DropAfterForwarding,
    /// 500 `com.amazonaws.dynamodb.v20120810#InternalServerError`.
    InternalError,
    /// 400 `com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException`.
    ThroughputExceeded,
    /// 400 `com.amazon.coral.availability#ThrottlingException`.
    Throttling,
}

/// The probability of each fault per request; the rest pass. Delays are uniform in
/// `delay_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    pub delay: f64,
    pub drop_before: f64,
    pub drop_after: f64,
    pub internal_error: f64,
    pub throughput_exceeded: f64,
    pub throttling: f64,
    pub delay_ms: (u64, u64),
}

impl FaultPlan {
    /// Every request passes.
    pub const NONE: Self = Self {
        delay: 0.0,
        drop_before: 0.0,
        drop_after: 0.0,
        internal_error: 0.0,
        throughput_exceeded: 0.0,
        throttling: 0.0,
        delay_ms: (20, 400),
    };

    /// Every kind of fault, about 30% of requests in all.
    pub const MIXED: Self = Self {
        delay: 0.08,
        drop_before: 0.04,
        drop_after: 0.05,
        internal_error: 0.05,
        throughput_exceeded: 0.04,
        throttling: 0.04,
        delay_ms: (20, 400),
    };

    /// Every request gets `fault` (`Delay`'s duration sets the range to exactly it).
    pub fn only(fault: Fault) -> Self {
        let mut plan = Self::NONE;
        match fault {
            Fault::Pass => {}
            Fault::Delay(d) => {
                plan.delay = 1.0;
                let ms = d.as_millis() as u64;
                plan.delay_ms = (ms, ms);
            }
            Fault::DropBeforeForwarding => plan.drop_before = 1.0,
            Fault::DropAfterForwarding => plan.drop_after = 1.0,
            Fault::InternalError => plan.internal_error = 1.0,
            Fault::ThroughputExceeded => plan.throughput_exceeded = 1.0,
            Fault::Throttling => plan.throttling = 1.0,
        }
        plan
    }

    /// The probability that a request is faulted.
    pub fn total(&self) -> f64 {
        self.delay
            + self.drop_before
            + self.drop_after
            + self.internal_error
            + self.throughput_exceeded
            + self.throttling
    }

    fn choose(&self, rng: &mut XorShift) -> Fault {
        let u = rng.unit();
        let (low, high) = self.delay_ms;
        // Drawn whatever the choice, so every connection consumes the same two draws.
        let delay = Duration::from_millis(low + rng.below(high.saturating_sub(low) + 1));
        let mut edge = 0.0;
        for (p, fault) in [
            (self.delay, Fault::Delay(delay)),
            (self.drop_before, Fault::DropBeforeForwarding),
            (self.drop_after, Fault::DropAfterForwarding),
            (self.internal_error, Fault::InternalError),
            (self.throughput_exceeded, Fault::ThroughputExceeded),
            (self.throttling, Fault::Throttling),
        ] {
            edge += p;
            if u < edge {
                return fault;
            }
        }
        Fault::Pass
    }
}

/// xorshift64 seeded through splitmix64: small, deterministic, good enough to pick faults.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Live counters, updated as the proxy acts.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    passed: AtomicU64,
    delayed: AtomicU64,
    delayed_past_client: AtomicU64,
    dropped_before: AtomicU64,
    dropped_after: AtomicU64,
    write_answers_lost: AtomicU64,
    internal_errors: AtomicU64,
    throughput_exceeded: AtomicU64,
    throttled: AtomicU64,
    incomplete: AtomicU64,
    unreadable: AtomicU64,
    upstream_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted.
    pub connections: u64,
    /// Requests read whole: each is counted once as `passed` or as one of the faults.
    pub requests: u64,
    /// Forwarded untouched, the answer returned.
    pub passed: u64,
    /// Forwarded after a delay, the answer returned (if the client still listened).
    pub delayed: u64,
    /// Of `delayed`: the client had already closed the connection when the delay ended (it
    /// gave up); the request was forwarded all the same, as a slow network would.
    pub delayed_past_client: u64,
    pub dropped_before: u64,
    pub dropped_after: u64,
    /// Of `dropped_after`: PutItem, UpdateItem or DeleteItem requests the upstream answered
    /// (the write was handled, its answer lost).
    pub write_answers_lost: u64,
    pub internal_errors: u64,
    pub throughput_exceeded: u64,
    pub throttled: u64,
    /// Connections the client closed (or left silent past `CLIENT_READ_TIMEOUT`) before a
    /// whole request arrived, e.g. a connection the SDK opened and then did not use, or a
    /// request it gave up on at its timeout before sending; nothing was forwarded.
    pub incomplete: u64,
    /// Requests the proxy cannot read (chunked, oversized, not UTF-8 in the head); closed
    /// unanswered, nothing forwarded. The AWS SDK never sends one.
    pub unreadable: u64,
    /// Forwards the upstream did not answer within `UPSTREAM_TIMEOUT` (that client got no
    /// answer); any of `passed`, `delayed` or `dropped_after`.
    pub upstream_errors: u64,
}

impl Counts {
    /// Requests that got an injected fault.
    pub fn faulted(&self) -> u64 {
        self.delayed
            + self.dropped_before
            + self.dropped_after
            + self.internal_errors
            + self.throughput_exceeded
            + self.throttled
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests ({} connections): {} passed, {} faulted ({:.1}%): {} delayed ({} past \
             the client's patience), {} dropped before forwarding, {} dropped after forwarding \
             ({} of them writes), {} InternalServerError, {} ProvisionedThroughputExceeded, {} \
             Throttling; {} connections without a request, {} unreadable, {} upstream errors",
            self.requests,
            self.connections,
            self.passed,
            self.faulted(),
            100.0 * self.faulted() as f64 / self.requests.max(1) as f64,
            self.delayed,
            self.delayed_past_client,
            self.dropped_before,
            self.dropped_after,
            self.write_answers_lost,
            self.internal_errors,
            self.throughput_exceeded,
            self.throttled,
            self.incomplete,
            self.unreadable,
            self.upstream_errors,
        )
    }
}

struct Shared {
    upstream: SocketAddr,
    plan: FaultPlan,
    faults_on: AtomicBool,
    counters: Counters,
    /// `Some` for a proxy in front of EventBridge (`FaultProxy::start_events`): its faults
    /// are drawn from this plan instead of `plan`.
    events: Option<EventsFaultPlan>,
    events_counters: EventsCounters,
}

/// A running proxy on 127.0.0.1; stops when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to 127.0.0.1:`upstream_port`, faults on.
    /// Must be called within a tokio runtime (the proxy runs on it).
    pub async fn start(upstream_port: u16, plan: FaultPlan, seed: u64) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a loopback port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)),
            plan,
            faults_on: AtomicBool::new(true),
            counters: Counters::default(),
            events: None,
            events_counters: EventsCounters::default(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), seed));
        Self { port, shared, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: the `DYNAMODB_ENDPOINT` that goes through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Turn faults on or off; off, every request passes (requests already being delayed or
    /// faulted finish as they were chosen).
    pub fn set_faults(&self, on: bool) {
        self.shared.faults_on.store(on, Ordering::SeqCst);
    }

    pub fn counts(&self) -> Counts {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            connections: get(&c.connections),
            requests: get(&c.requests),
            passed: get(&c.passed),
            delayed: get(&c.delayed),
            delayed_past_client: get(&c.delayed_past_client),
            dropped_before: get(&c.dropped_before),
            dropped_after: get(&c.dropped_after),
            write_answers_lost: get(&c.write_answers_lost),
            internal_errors: get(&c.internal_errors),
            throughput_exceeded: get(&c.throughput_exceeded),
            throttled: get(&c.throttled),
            incomplete: get(&c.incomplete),
            unreadable: get(&c.unreadable),
            upstream_errors: get(&c.upstream_errors),
        }
    }
}

impl Drop for FaultProxy {
    /// Aborting the accept loop drops its `JoinSet`, which aborts every connection task.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, seed: u64) {
    let mut rng = XorShift::new(seed);
    let mut connections = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // E.g. out of file descriptors for a moment: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        bump(&shared.counters.connections);
        if let Some(plan) = &shared.events {
            let drawn = plan.choose(&mut rng);
            let fault = if shared.faults_on.load(Ordering::SeqCst) {
                drawn
            } else {
                EventsFault::Pass
            };
            connections.spawn(serve_events(client, fault, Arc::clone(&shared)));
            continue;
        }
        let drawn = shared.plan.choose(&mut rng);
        let fault = if shared.faults_on.load(Ordering::SeqCst) {
            drawn
        } else {
            Fault::Pass
        };
        connections.spawn(serve(client, fault, Arc::clone(&shared)));
    }
}

/// A request as read from the client.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    /// The DynamoDB operation (`X-Amz-Target: DynamoDB_20120810.PutItem` -> `PutItem`).
    fn operation(&self) -> &str {
        header(&self.head, "x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("")
    }

    /// The request as sent upstream: `Connection: close` (one exchange per connection, so the
    /// answer ends at EOF at the latest) and no `Expect` (the body follows at once).
    fn upstream_bytes(&self) -> Vec<u8> {
        let mut out = with_connection_close(&self.head, &["expect"]).into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

async fn serve(mut client: TcpStream, fault: Fault, shared: Arc<Shared>) {
    let counters = &shared.counters;
    let _ = client.set_nodelay(true);
    let read = tokio::time::timeout(CLIENT_READ_TIMEOUT, read_message(&mut client, true)).await;
    let request = match read {
        Ok(Ok((head, body))) => Request { head, body },
        Ok(Err(ReadError::Unreadable)) => {
            bump(&counters.unreadable);
            return;
        }
        Ok(Err(ReadError::Closed)) | Err(_) => {
            bump(&counters.incomplete);
            return;
        }
    };
    bump(&counters.requests);
    let answer = match fault {
        Fault::Pass => {
            bump(&counters.passed);
            forward(&request, &shared).await
        }
        Fault::Delay(delay) => {
            bump(&counters.delayed);
            tokio::time::sleep(delay).await;
            if client_has_left(&mut client).await {
                bump(&counters.delayed_past_client);
            }
            forward(&request, &shared).await
        }
        Fault::DropBeforeForwarding => {
            bump(&counters.dropped_before);
            None
        }
        Fault::DropAfterForwarding => {
            bump(&counters.dropped_after);
            let handled = forward(&request, &shared).await.is_some();
            if handled && matches!(request.operation(), "PutItem" | "UpdateItem" | "DeleteItem") {
                bump(&counters.write_answers_lost);
            }
            None
        }
        Fault::InternalError => {
            bump(&counters.internal_errors);
            Some(injected(
                "500 Internal Server Error",
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
            ))
        }
        Fault::ThroughputExceeded => {
            bump(&counters.throughput_exceeded);
            Some(injected(
                "400 Bad Request",
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            ))
        }
        Fault::Throttling => {
            bump(&counters.throttled);
            Some(injected(
                "400 Bad Request",
                "com.amazon.coral.availability#ThrottlingException",
            ))
        }
    };
    if let Some(answer) = answer {
        let _ = tokio::time::timeout(CLIENT_WRITE_TIMEOUT, async {
            client.write_all(&answer).await?;
            client.shutdown().await
        })
        .await;
    }
    // Dropping `client` closes the connection, answered or not.
}

/// Whether the client closed its side (it gave up waiting). A client that is still waiting
/// sends nothing more (one request per connection), so a short read either sees EOF or times
/// out.
async fn client_has_left(client: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(1), client.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// One exchange with the upstream on a fresh connection: the whole answer, rewritten to
/// `Connection: close`; `None` (counted) if it did not complete within `UPSTREAM_TIMEOUT`.
async fn forward(request: &Request, shared: &Shared) -> Option<Vec<u8>> {
    let exchange = async {
        let mut upstream = TcpStream::connect(shared.upstream).await.ok()?;
        let _ = upstream.set_nodelay(true);
        upstream.write_all(&request.upstream_bytes()).await.ok()?;
        let (head, body) = read_message(&mut upstream, false).await.ok()?;
        let mut answer = with_connection_close(&head, &[]).into_bytes();
        answer.extend_from_slice(&body);
        Some(answer)
    };
    let answer = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .ok()
        .flatten();
    if answer.is_none() {
        bump(&shared.counters.upstream_errors);
    }
    answer
}

/// A DynamoDB JSON-protocol error answer.
fn injected(status: &str, error_type: &str) -> Vec<u8> {
    let body = format!(r#"{{"__type":"{error_type}","message":"injected"}}"#);
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         Content-Length: {}\r\nx-amzn-RequestId: fault-proxy-injected\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadError {
    /// The peer closed (or reset) the connection before the message was whole.
    Closed,
    /// A message the proxy does not handle: a chunked request, an oversized head or body, a
    /// head that is not UTF-8, a bad `Content-Length`.
    Unreadable,
}

/// Read one HTTP/1.1 message: the head (without the blank line) and the body. A request
/// without `Content-Length` has no body; a chunked request is refused. An answer without
/// `Content-Length` (or chunked) runs to EOF, which `Connection: close` guarantees; chunked
/// bodies are passed on as they came.
async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    is_request: bool,
) -> Result<(String, Vec<u8>), ReadError> {
    use ReadError::{Closed, Unreadable};
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(Unreadable);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).map_err(|_| Unreadable)?;
    let mut body = buf.split_off(head_end + 4);
    let chunked = header(&head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = match header(&head, "content-length") {
        Some(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_BODY)
                .ok_or(Unreadable)?,
        ),
        None => None,
    };
    match (length, is_request) {
        (Some(_), _) if chunked => return Err(Unreadable),
        (Some(length), _) => {
            while body.len() < length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Err(Closed),
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            body.truncate(length);
        }
        (None, true) if chunked => return Err(Unreadable),
        (None, true) => body.clear(),
        (None, false) => loop {
            if body.len() > MAX_BODY {
                return Err(Unreadable);
            }
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Err(_) => return Err(Closed),
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        },
    }
    Ok((head, body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of the first header `name` (lower-case) in a message head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head with its connection-management headers (and `drop`) removed, `Connection: close`
/// added, and the blank line that ends it.
fn with_connection_close(head: &str, drop: &[&str]) -> String {
    let mut lines = head.split("\r\n");
    let mut out = String::with_capacity(head.len() + 32);
    out.push_str(lines.next().unwrap_or_default());
    out.push_str("\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        let hop = ["connection", "keep-alive", "proxy-connection"]
            .iter()
            .chain(drop)
            .any(|h| name.eq_ignore_ascii_case(h));
        if !hop {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

// ---------------------------------------------------------------------------------------
// EventBridge mode: whole-call and partial failures of PutEvents
// ---------------------------------------------------------------------------------------

/// What the proxy does with one EventBridge request (only `AWSEvents.PutEvents` is faulted;
/// every other operation passes whatever was drawn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsFault {
    Pass,
    DropBeforeForwarding,
    /// The events were put (moto delivered them to the rule's targets), the answer is lost:
    /// the client's retry puts them a second time.
    DropAfterForwarding,
    /// 500 `InternalException`.
    InternalError,
    /// 400 `ThrottlingException`.
    Throttling,
    /// One entry refused: the entry at `pick % len(Entries)` is taken out of the request, the
    /// rest forwarded, and moto's answer gets `{"ErrorCode": "InternalFailure", "ErrorMessage":
    /// "injected"}` at that position with `FailedEntryCount` + 1. A request of one entry is
    /// not forwarded at all: its answer is that one failed entry.
    PartialFailure {
        pick: u64,
    },
}

/// The probability of each EventBridge fault per request; the rest pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventsFaultPlan {
    pub drop_before: f64,
    pub drop_after: f64,
    pub internal_error: f64,
    pub throttling: f64,
    pub partial: f64,
}

impl EventsFaultPlan {
    pub const NONE: Self = Self {
        drop_before: 0.0,
        drop_after: 0.0,
        internal_error: 0.0,
        throttling: 0.0,
        partial: 0.0,
    };

    pub fn total(&self) -> f64 {
        self.drop_before + self.drop_after + self.internal_error + self.throttling + self.partial
    }

    fn choose(&self, rng: &mut XorShift) -> EventsFault {
        let u = rng.unit();
        // Drawn whatever the choice, so every connection consumes the same two draws.
        let pick = rng.next();
        let mut edge = 0.0;
        for (p, fault) in [
            (self.drop_before, EventsFault::DropBeforeForwarding),
            (self.drop_after, EventsFault::DropAfterForwarding),
            (self.internal_error, EventsFault::InternalError),
            (self.throttling, EventsFault::Throttling),
            (self.partial, EventsFault::PartialFailure { pick }),
        ] {
            edge += p;
            if u < edge {
                return fault;
            }
        }
        EventsFault::Pass
    }
}

#[derive(Debug, Default)]
struct EventsCounters {
    requests: AtomicU64,
    put_events: AtomicU64,
    entries: AtomicU64,
    passed: AtomicU64,
    dropped_before: AtomicU64,
    dropped_after: AtomicU64,
    internal_errors: AtomicU64,
    throttled: AtomicU64,
    partial: AtomicU64,
    partial_single: AtomicU64,
    partial_not_applied: AtomicU64,
    incomplete: AtomicU64,
    unreadable: AtomicU64,
}

/// What an EventBridge proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsCounts {
    /// Requests read whole (every operation).
    pub requests: u64,
    /// Of `requests`: PutEvents calls, and the entries they carried.
    pub put_events: u64,
    pub entries: u64,
    pub passed: u64,
    pub dropped_before: u64,
    pub dropped_after: u64,
    pub internal_errors: u64,
    pub throttled: u64,
    /// Partial failures injected: one entry refused, the others forwarded and put.
    pub partial: u64,
    /// Of `partial`: the call had one entry, which was refused (nothing forwarded).
    pub partial_single: u64,
    /// Partial failures drawn but passed unchanged (upstream answer not a 200 JSON body, or a
    /// call without entries).
    pub partial_not_applied: u64,
    pub incomplete: u64,
    pub unreadable: u64,
    /// Forwards the upstream did not answer within `UPSTREAM_TIMEOUT`.
    pub upstream_errors: u64,
}

impl EventsCounts {
    /// Calls that failed whole (nothing or everything put, the client told it failed).
    pub fn whole_call_faults(&self) -> u64 {
        self.dropped_before + self.dropped_after + self.internal_errors + self.throttled
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests ({} PutEvents, {} entries): {} passed; whole-call faults {} ({} dropped \
             before forwarding, {} dropped after forwarding, {} InternalException, {} \
             ThrottlingException); partial failures {} ({} of one-entry calls, {} drawn but not \
             applied); {} connections without a request, {} unreadable, {} upstream errors",
            self.requests,
            self.put_events,
            self.entries,
            self.passed,
            self.whole_call_faults(),
            self.dropped_before,
            self.dropped_after,
            self.internal_errors,
            self.throttled,
            self.partial,
            self.partial_single,
            self.partial_not_applied,
            self.incomplete,
            self.unreadable,
            self.upstream_errors,
        )
    }
}

impl FaultProxy {
    /// As `start`, in front of an EventBridge-compatible server (moto): faults drawn from
    /// `plan` and applied to `AWSEvents.PutEvents` calls.
    pub async fn start_events(upstream_port: u16, plan: EventsFaultPlan, seed: u64) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a loopback port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)),
            plan: FaultPlan::NONE,
            faults_on: AtomicBool::new(true),
            counters: Counters::default(),
            events: Some(plan),
            events_counters: EventsCounters::default(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), seed));
        Self { port, shared, task }
    }

    /// The counts of a proxy started with `start_events`.
    pub fn events_counts(&self) -> EventsCounts {
        let c = &self.shared.events_counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        EventsCounts {
            requests: get(&c.requests),
            put_events: get(&c.put_events),
            entries: get(&c.entries),
            passed: get(&c.passed),
            dropped_before: get(&c.dropped_before),
            dropped_after: get(&c.dropped_after),
            internal_errors: get(&c.internal_errors),
            throttled: get(&c.throttled),
            partial: get(&c.partial),
            partial_single: get(&c.partial_single),
            partial_not_applied: get(&c.partial_not_applied),
            incomplete: get(&c.incomplete),
            unreadable: get(&c.unreadable),
            upstream_errors: get(&self.shared.counters.upstream_errors),
        }
    }
}

async fn serve_events(mut client: TcpStream, fault: EventsFault, shared: Arc<Shared>) {
    let counters = &shared.events_counters;
    let _ = client.set_nodelay(true);
    let read = tokio::time::timeout(CLIENT_READ_TIMEOUT, read_message(&mut client, true)).await;
    let request = match read {
        Ok(Ok((head, body))) => Request { head, body },
        Ok(Err(ReadError::Unreadable)) => {
            bump(&counters.unreadable);
            return;
        }
        Ok(Err(ReadError::Closed)) | Err(_) => {
            bump(&counters.incomplete);
            return;
        }
    };
    bump(&counters.requests);
    let entries = if request.operation() == "PutEvents" {
        bump(&counters.put_events);
        let body: Option<serde_json::Value> = serde_json::from_slice(&request.body).ok();
        let n = body
            .as_ref()
            .and_then(|b| b["Entries"].as_array())
            .map_or(0, Vec::len);
        counters.entries.fetch_add(n as u64, Ordering::SeqCst);
        Some(body)
    } else {
        None
    };
    let fault = if entries.is_some() {
        fault
    } else {
        EventsFault::Pass
    };
    let answer = match fault {
        EventsFault::Pass => {
            bump(&counters.passed);
            forward(&request, &shared).await
        }
        EventsFault::DropBeforeForwarding => {
            bump(&counters.dropped_before);
            None
        }
        EventsFault::DropAfterForwarding => {
            bump(&counters.dropped_after);
            let _ = forward(&request, &shared).await;
            None
        }
        EventsFault::InternalError => {
            bump(&counters.internal_errors);
            Some(injected_json11(
                "500 Internal Server Error",
                "InternalException",
            ))
        }
        EventsFault::Throttling => {
            bump(&counters.throttled);
            Some(injected_json11("400 Bad Request", "ThrottlingException"))
        }
        EventsFault::PartialFailure { pick } => {
            let body = entries.flatten();
            partial_failure(&request, body, pick, &shared).await
        }
    };
    if let Some(answer) = answer {
        let _ = tokio::time::timeout(CLIENT_WRITE_TIMEOUT, async {
            client.write_all(&answer).await?;
            client.shutdown().await
        })
        .await;
    }
}

/// The failed entry a partial failure puts into the answer.
fn failed_entry() -> serde_json::Value {
    serde_json::json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
}

/// Refuse one entry of a PutEvents call (see `EventsFault::PartialFailure`).
async fn partial_failure(
    request: &Request,
    body: Option<serde_json::Value>,
    pick: u64,
    shared: &Shared,
) -> Option<Vec<u8>> {
    let counters = &shared.events_counters;
    let Some(mut body) = body.filter(|b| b["Entries"].as_array().is_some_and(|e| !e.is_empty()))
    else {
        bump(&counters.partial_not_applied);
        return forward(request, shared).await;
    };
    let entries = body["Entries"].as_array_mut().expect("checked above");
    let n = entries.len();
    let k = (pick % n as u64) as usize;
    if n == 1 {
        bump(&counters.partial);
        bump(&counters.partial_single);
        let answer = serde_json::json!({"FailedEntryCount": 1, "Entries": [failed_entry()]});
        return Some(json11_answer("200 OK", &answer));
    }
    entries.remove(k);
    let new_body = serde_json::to_vec(&body).expect("JSON serializes");
    let shortened = Request {
        head: with_content_length(&request.head, new_body.len()),
        body: new_body,
    };
    let answer = forward(&shortened, shared).await?;
    let Some((status, mut reply)) = json_answer(&answer) else {
        // Not a 200 with a JSON body: the client gets the upstream's answer as it came.
        bump(&counters.partial_not_applied);
        return Some(answer);
    };
    let patched = reply["Entries"]
        .as_array_mut()
        .filter(|_| status == 200)
        .map(|e| {
            e.insert(k.min(e.len()), failed_entry());
        });
    if patched.is_none() {
        bump(&counters.partial_not_applied);
        return Some(answer);
    }
    let failed = reply["FailedEntryCount"].as_u64().unwrap_or(0) + 1;
    reply["FailedEntryCount"] = serde_json::json!(failed);
    bump(&counters.partial);
    Some(json11_answer("200 OK", &reply))
}

/// The status and JSON body of a whole HTTP answer (`Content-Length` or chunked body).
fn json_answer(answer: &[u8]) -> Option<(u16, serde_json::Value)> {
    let end = find(answer, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let raw = &answer[end + 4..];
    let chunked = header(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk_bytes(raw)?
    } else {
        raw.to_vec()
    };
    Some((status, serde_json::from_slice(&body).ok()?))
}

fn dechunk_bytes(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        let data = rest.get(line_end + 2..line_end + 2 + size)?;
        body.extend_from_slice(data);
        rest = rest.get(line_end + 2 + size + 2..)?;
    }
}

/// The head with `Content-Length` set to `length` (and no `Transfer-Encoding`).
fn with_content_length(head: &str, length: usize) -> String {
    let mut lines = head.split("\r\n");
    let mut out = String::with_capacity(head.len() + 24);
    out.push_str(lines.next().unwrap_or_default());
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        out.push_str("\r\n");
        out.push_str(line);
    }
    out.push_str(&format!("\r\nContent-Length: {length}"));
    out
}

/// An EventBridge (AWS JSON 1.1) answer.
fn json11_answer(status: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         Content-Length: {}\r\nx-amzn-RequestId: fault-proxy-injected\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An EventBridge error answer: `__type` is the error code the SDK reads.
fn injected_json11(status: &str, error_type: &str) -> Vec<u8> {
    json11_answer(
        status,
        &serde_json::json!({"__type": error_type, "message": "injected"}),
    )
}
