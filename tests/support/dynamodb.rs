//! A DynamoDB-compatible server for tests: moto (installed project-locally into .tools/moto
//! by scripts/install-moto.sh) on a free loopback port, one server per `Moto` value, killed
//! when it is dropped. Use from a test file with
//! `#[path = "support/dynamodb.rs"] mod dynamodb;`.
//!
//! Only 127.0.0.1 is ever contacted; every wait is bounded.

#![allow(dead_code)] // each test file uses the part it needs

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tagbeez::store::{DynamoSettings, DynamoStore};

/// The region every test client signs for (a local server ignores it).
pub const REGION: &str = "us-east-1";
/// The static test credentials (a local server accepts any).
pub const ACCESS_KEY: &str = "test";
/// How long a server may take to answer `GET /moto-api/` after it is started.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// A server outlives its test process by at most this long (see `spawn`).
const MAX_LIFETIME_SECONDS: u32 = 600;

/// The environment a child `tagbeez` process needs to reach a local server: static test
/// credentials, a region, and no instance-metadata lookups (never leave the loopback).
pub const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
    ("AWS_SECRET_ACCESS_KEY", ACCESS_KEY),
    ("AWS_REGION", REGION),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// One moto server on 127.0.0.1.
pub struct Moto {
    port: u16,
    child: Option<Child>,
    /// Tables created through `create_table`, re-created by `restart` (moto keeps everything
    /// in memory: a restarted server starts empty).
    tables: Vec<String>,
    /// The server exits after this long whatever happens (`MAX_LIFETIME_SECONDS` unless
    /// started by `start_for_queues`).
    lifetime_seconds: u32,
    /// Whether moto's SQS operations are made atomic too (`start_for_queues`).
    atomic_queues: bool,
}

impl Moto {
    /// Install moto if needed, start it on a free loopback port and wait until it answers.
    pub fn start() -> Self {
        install();
        use_test_credentials();
        let mut moto = Self {
            port: free_port(),
            child: None,
            tables: Vec::new(),
            lifetime_seconds: MAX_LIFETIME_SECONDS,
            atomic_queues: false,
        };
        moto.spawn();
        moto
    }

    /// As `start`, for a test that also uses moto's SQS (and EventBridge, whose SQS targets
    /// go through the same code) from several clients at once, for up to `lifetime`.
    ///
    /// moto's SQS backend is not thread-safe under its threaded server: `DeleteMessage`
    /// rebuilds the queue's message list while `SendMessage` may be appending to it (a sent
    /// message can vanish), and two concurrent `ReceiveMessage` calls each check a FIFO
    /// message group's in-flight state before either marks it, so both can hand out messages
    /// of one group at once, which real SQS never does. Here every SQS backend operation
    /// holds one lock, as `PutItem` does for DynamoDB. Long polling (`WaitTimeSeconds` > 0)
    /// would hold it while waiting: poll with 0.
    ///
    /// moto's SQS also reads the clock through `unix_time()` (naive `utcnow()` minus the
    /// epoch, ~7 us) twice per message of a queue, several times per call (every queue
    /// attribute, `ApproximateNumberOfMessages` included, is computed whenever any is read):
    /// with a few hundred messages queued a SendMessageBatch took ~600 ms of moto's one core.
    /// The script gives it `time.time()`, the same value (measured: equal to the microsecond)
    /// about 30 times faster.
    ///
    /// moto keeps a received FIFO message "pending" (its group blocked) until a later receive
    /// finds it visible again, and then lets one such message through while the group's other
    /// visible-again messages still count as pending: after a visibility timeout expires on
    /// x-0, x-1, x-2 of one group, plain moto 5.2.5 hands out x-2 alone, before x-0 (measured).
    /// ChangeMessageVisibility 0 avoids that only when the message is already visible by the
    /// time moto checks, which a fast clock can miss (measured: 63 of 300 returned groups
    /// reordered). Real SQS does not keep a message in flight past its visibility timeout:
    /// the script's ReceiveMessage first drops every visible message from the pending set.
    pub fn start_for_queues(lifetime: Duration) -> Self {
        install();
        use_test_credentials();
        let mut moto = Self {
            port: free_port(),
            child: None,
            tables: Vec::new(),
            lifetime_seconds: u32::try_from(lifetime.as_secs().max(1)).unwrap_or(u32::MAX),
            atomic_queues: true,
        };
        moto.spawn();
        moto
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: `DYNAMODB_ENDPOINT` for this server.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client of this server, configured as the SAM template's function would be but with
    /// the endpoint, region and static credentials set explicitly.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint())
    }

    /// The table as template.yaml declares it: on-demand, partition key `conversation_id`
    /// (S), TTL enabled on `expires_at`.
    pub async fn create_table(&mut self, name: &str) {
        create_table(&self.client(), name).await;
        if !self.tables.iter().any(|t| t == name) {
            self.tables.push(name.to_owned());
        }
    }

    /// `DynamoStore::connect` on `table` of this server with the given timeouts.
    pub async fn store(
        &self,
        table: &str,
        connect_timeout: Duration,
        operation_timeout: Duration,
    ) -> DynamoStore {
        DynamoStore::connect(&settings(
            table,
            &self.endpoint(),
            connect_timeout,
            operation_timeout,
        ))
        .await
    }

    /// Kill the server (SIGKILL: a crash, not a shutdown) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop, start again on the same port, and re-create the tables (empty).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn();
        let client = self.client();
        for table in self.tables.clone() {
            create_table(&client, &table).await;
        }
    }

    /// Start `moto_server -H 127.0.0.1 -p PORT` and wait until `GET /moto-api/` answers.
    ///
    /// moto's threaded server checks a PutItem's condition and writes the item without a lock,
    /// so two concurrent conditional writes can both succeed (seen here: "version 171
    /// returned twice" in 1 of ~6 runs of the 8x25 test), which real DynamoDB never allows.
    /// The script makes moto's PutItem and DeleteItem atomic, as DynamoDB's are.
    ///
    /// moto's own entry point is run by the venv's python under a watchdog thread that exits
    /// the server when its stdin (a pipe from this process) closes, so a test process that
    /// dies without running `Drop` does not leave a server behind; `MAX_LIFETIME_SECONDS`
    /// bounds its life regardless.
    fn spawn(&mut self) {
        let port = self.port.to_string();
        let lifetime = self.lifetime_seconds;
        let queues = if self.atomic_queues {
            "from moto.sqs.models import SQSBackend\n\
             import moto.core.utils, moto.sqs.models\n\
             slow_unix_time = moto.core.utils.unix_time\n\
             def unix_time(dt=None):\n\
             \x20   return time.time() if dt is None else slow_unix_time(dt)\n\
             moto.core.utils.unix_time = unix_time\n\
             moto.sqs.models.unix_time = unix_time\n\
             plain_receive = SQSBackend.receive_message\n\
             def receive_message(self, queue_name, *a, **k):\n\
             \x20   queue = self.get_queue(queue_name)\n\
             \x20   for m in [m for m in queue.pending_messages if m.visible]:\n\
             \x20       queue.pending_messages.discard(m)\n\
             \x20   return plain_receive(self, queue_name, *a, **k)\n\
             SQSBackend.receive_message = receive_message\n\
             queue_lock = threading.RLock()\n\
             def queue_atomic(f):\n\
             \x20   def g(*a, **k):\n\
             \x20       with queue_lock:\n\
             \x20           return f(*a, **k)\n\
             \x20   return g\n\
             for name in ['send_message', 'send_message_batch', 'receive_message', 'delete_message', \
             'delete_message_batch', 'change_message_visibility', 'change_message_visibility_batch', \
             'get_queue_attributes', 'purge_queue']:\n\
             \x20   setattr(SQSBackend, name, queue_atomic(getattr(SQSBackend, name)))\n"
        } else {
            ""
        };
        let script = format!(
            "import os, sys, threading, time\n\
             def watch():\n\
             \x20   deadline = time.monotonic() + {lifetime}\n\
             \x20   threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
             \x20   while time.monotonic() < deadline:\n\
             \x20       time.sleep(1)\n\
             \x20   os._exit(0)\n\
             threading.Thread(target=watch, daemon=True).start()\n\
             from moto.dynamodb.models import DynamoDBBackend\n\
             lock = threading.Lock()\n\
             def atomic(f):\n\
             \x20   def g(*a, **k):\n\
             \x20       with lock:\n\
             \x20           return f(*a, **k)\n\
             \x20   return g\n\
             DynamoDBBackend.put_item = atomic(DynamoDBBackend.put_item)\n\
             DynamoDBBackend.delete_item = atomic(DynamoDBBackend.delete_item)\n\
             {queues}\
             from moto.server import main\n\
             sys.exit(main(['-H', '127.0.0.1', '-p', '{port}']))\n"
        );
        let child = Command::new(tools_dir().join("moto/bin/python"))
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("moto on port {port} exited at start: {status}");
            }
            if http_status(self.port, "/moto-api/") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        panic!("moto on port {port} did not answer within {READY_WITHIN:?}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The settings `TABLE_NAME`/`DYNAMODB_ENDPOINT`/`DYNAMODB_*_TIMEOUT_MS` would give.
pub fn settings(
    table: &str,
    endpoint: &str,
    connect_timeout: Duration,
    operation_timeout: Duration,
) -> DynamoSettings {
    DynamoSettings {
        table: table.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        connect_timeout,
        operation_timeout,
    }
}

/// A client of a local endpoint: region `us-east-1`, static test credentials, rustls/ring
/// (the store's own HTTP stack; plain `http://` endpoints need no TLS).
pub fn client_for(endpoint: &str) -> Client {
    Client::from_conf(config_for(endpoint).build())
}

/// The configuration of `client_for`, for a test to add to (retries, timeouts).
pub fn config_for(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            ACCESS_KEY,
            None,
            None,
            "tagbeez-tests",
        ))
}

/// The stored item of a conversation, read with a consistent GetItem (straight from the
/// server: the tests' view of what the store really wrote).
pub async fn raw_item(
    client: &Client,
    table: &str,
    id: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key(
            "conversation_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem from the server directly")
        .item
}

/// CreateTable + UpdateTimeToLive, as template.yaml declares the table.
pub async fn create_table(client: &Client, name: &str) {
    create_keyed_table(client, name, "conversation_id").await;
}

/// As `create_table`, with partition key `key` (the feedback table's is `feedback_id`).
pub async fn create_keyed_table(client: &Client, name: &str, key: &str) {
    create_hash_table(client, name, key).await;
    enable_ttl(client, name).await;
}

/// TTL on `expires_at`, as every table with a TTL declares it.
async fn enable_ttl(client: &Client, name: &str) {
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateTimeToLive {name}: {e:?}"));
}

/// An on-demand table with the one string partition key `key`, active.
async fn create_hash_table(client: &Client, name: &str, key: &str) {
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    let status = created.table_description().and_then(|t| t.table_status());
    assert_eq!(status, Some(&TableStatus::Active), "table {name}");
}

/// A loopback port nothing listens on right now (bind port 0, read it, close).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A loopback TCP server that accepts connections and never answers, for `lifetime` at most
/// (the accept loop polls; every accepted connection is held open until then).
pub struct BlackHole {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl BlackHole {
    pub fn start(lifetime: Duration) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let until = Instant::now() + lifetime;
            let mut held = Vec::new();
            while Instant::now() < until && !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            held.len()
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop accepting, close every held connection; how many connections were accepted.
    pub fn close(mut self) -> usize {
        self.finish()
    }

    fn finish(&mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map_or(0, |t| t.join().unwrap_or_default())
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Set the static test credentials and region in this process's environment, once, before
/// any client is built: `DynamoStore::connect` reads them through aws-config's default
/// chain. Instance metadata is disabled so the chain never looks beyond the loopback.
pub fn use_test_credentials() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in AWS_ENV {
            std::env::set_var(name, value);
        }
        std::env::remove_var("AWS_SESSION_TOKEN");
        std::env::remove_var("AWS_PROFILE");
    });
}

/// Run scripts/install-moto.sh if .tools/moto/bin/moto_server is missing (once per process).
fn install() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if tools_dir().join("moto/bin/moto_server").exists() {
        return;
    }
    let script = crate_dir().join("scripts/install-moto.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("scripts/install-moto.sh runs");
    assert!(status.success(), "{} failed: {status}", script.display());
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tools_dir() -> PathBuf {
    crate_dir().join(".tools")
}

/// A minimal blocking HTTP/1.1 exchange with 127.0.0.1:`port`, `Connection: close`.
pub struct HttpReply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Send one request and read the whole reply; `None` if nothing answered (connection refused,
/// reset, or no complete reply within `timeout`).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Option<HttpReply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (head, rest) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_owned()
    };
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    http(port, "GET", path, None, Duration::from_secs(1)).map(|r| r.status)
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(tail.get(..size)?);
        rest = tail.get(size + 2..)?;
    }
}

/// The shop profiles table as the templates declare it: on-demand, partition key `shop_id`
/// (S), no TTL.
pub async fn create_profile_table(client: &Client, name: &str) {
    create_hash_table(client, name, "shop_id").await;
}

/// The experiments table as the templates declare it: on-demand, partition key `pk` (S),
/// sort key `sk` (S), TTL enabled on `expires_at`.
pub async fn create_experiment_table(client: &Client, name: &str) {
    let definition = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .unwrap()
    };
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition("pk"))
        .attribute_definitions(definition("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    let status = created.table_description().and_then(|t| t.table_status());
    assert_eq!(status, Some(&TableStatus::Active), "table {name}");
    enable_ttl(client, name).await;
}

impl Moto {
    /// As `start`, with moto's UpdateItem atomic as DynamoDB's is (and PutItem and DeleteItem
    /// atomic with it): moto applies an update expression to the stored item without a lock,
    /// so two concurrent `ADD n :one` can both read 5 and both write 6 (seen: 199 of 200
    /// concurrent ADDs counted in 1 of ~10 runs), which DynamoDB never does.
    ///
    /// `spawn`'s script is left as it is: the lock is installed by a `sitecustomize` module put
    /// on `PYTHONPATH` for this test process (so every moto it starts from then on has it).
    pub fn start_with_atomic_updates() -> Self {
        atomic_updates_for_children();
        Self::start()
    }
}

/// Write `sitecustomize.py` (moto's DynamoDB UpdateItem, PutItem and DeleteItem under one
/// lock; nothing when moto is not importable, e.g. for pip) and put its directory on this
/// process's `PYTHONPATH`, once.
fn atomic_updates_for_children() {
    const SITECUSTOMIZE: &str = "\
try:
    import threading
    from moto.dynamodb.models import DynamoDBBackend
except ImportError:
    pass
else:
    _lock = threading.RLock()
    def _atomic(f):
        def g(*a, **k):
            with _lock:
                return f(*a, **k)
        return g
    for _name in ('update_item', 'put_item', 'delete_item'):
        setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))
";
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-atomic-updates");
        std::fs::create_dir_all(&dir).expect("a directory for sitecustomize.py");
        // Written aside and renamed: test processes sharing the target dir never read half.
        let partial = dir.join(format!("sitecustomize.py.{}", std::process::id()));
        std::fs::write(&partial, SITECUSTOMIZE).expect("write sitecustomize.py");
        std::fs::rename(&partial, dir.join("sitecustomize.py")).expect("place sitecustomize.py");
        std::env::set_var("PYTHONPATH", &dir);
    });
}
