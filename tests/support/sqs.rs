//! SQS for tests: moto's SQS (the server of tests/support/dynamodb.rs, started with
//! `Moto::start_for_queues`), queues as template.yaml would make them, and Lambda's SQS poller
//! emulated: receive, build the Lambda event from AWS's example record, invoke, delete what
//! succeeded and return the rest. Use from a test file with
//! `#[path = "support/sqs.rs"] mod sqs;`, next to `#[path = "support/events.rs"] mod events;`
//! (the Lambda records are built by `events::sqs_event`).
//!
//! Only 127.0.0.1 is ever contacted.

#![allow(dead_code)] // each test file uses the part it needs

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use serde_json::{json, Value};

/// The region every client signs for (moto keeps one backend per region: the EventBridge
/// target's queue ARN must name the same one).
pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// A client of a local endpoint: static test credentials, rustls/ring.
pub fn client_for(endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "tagbeez-tests",
        ))
        .build();
    Client::from_conf(config)
}

/// A queue's URL (for the API) and ARN (for redrive policies, targets and Lambda records).
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// Create a queue with `attributes`; its URL and ARN.
pub async fn create_queue(
    client: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Queue {
    let mut create = client.create_queue().queue_name(name);
    for (k, v) in attributes {
        create = create.attributes(k.clone(), v.clone());
    }
    let url = create
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"))
        .queue_url()
        .expect("a queue URL")
        .to_owned();
    let arn = attributes_of(client, &url).await[&QueueAttributeName::QueueArn].clone();
    Queue {
        name: name.to_owned(),
        url,
        arn,
    }
}

/// A standard queue.
pub async fn standard_queue(client: &Client, name: &str) -> Queue {
    create_queue(client, name, &[]).await
}

/// A FIFO queue (`name` ends in `.fifo`) without content-based deduplication, with
/// `visibility` as its VisibilityTimeout, and its FIFO dead-letter queue `dlq_name` after
/// `max_receive_count` receives: the pair the queue-fed function's template declares.
pub async fn fifo_with_dlq(
    client: &Client,
    name: &str,
    dlq_name: &str,
    max_receive_count: u32,
    visibility: Duration,
) -> (Queue, Queue) {
    let fifo = [
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (
            QueueAttributeName::ContentBasedDeduplication,
            "false".to_owned(),
        ),
    ];
    let dlq = create_queue(client, dlq_name, &fifo).await;
    let redrive = json!({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive_count});
    let mut attributes = fifo.to_vec();
    attributes.push((
        QueueAttributeName::VisibilityTimeout,
        visibility.as_secs().to_string(),
    ));
    attributes.push((QueueAttributeName::RedrivePolicy, redrive.to_string()));
    let queue = create_queue(client, name, &attributes).await;
    (queue, dlq)
}

pub async fn attributes_of(client: &Client, url: &str) -> HashMap<QueueAttributeName, String> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {e:?}"))
        .attributes()
        .cloned()
        .unwrap_or_default()
}

/// ApproximateNumberOfMessages, ...NotVisible and ...Delayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl Depth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

pub async fn depth(client: &Client, queue: &Queue) -> Depth {
    let a = attributes_of(client, &queue.url).await;
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Depth {
        visible: n(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    }
}

/// One message to send: FIFO group and deduplication id (both `None` on a standard queue).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub group: Option<String>,
    pub dedup: Option<String>,
    pub body: String,
}

/// SendMessageBatch of at most ten messages, in order; their SQS `MessageId`s in the same
/// order. Any failed entry panics (the queue is not faulted).
pub async fn send_batch(client: &Client, queue: &Queue, messages: &[Outgoing]) -> Vec<String> {
    assert!(
        (1..=10).contains(&messages.len()),
        "SendMessageBatch takes 1 to 10"
    );
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(&m.body)
                .set_message_group_id(m.group.clone())
                .set_message_deduplication_id(m.dedup.clone())
                .build()
                .expect("a batch entry")
        })
        .collect();
    let out = client
        .send_message_batch()
        .queue_url(&queue.url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap_or_else(|e| panic!("SendMessageBatch: {e:?}"));
    assert!(
        out.failed().is_empty(),
        "SendMessageBatch failed entries: {:?}",
        out.failed()
    );
    let ids: HashMap<&str, &str> = out
        .successful()
        .iter()
        .map(|s| (s.id(), s.message_id()))
        .collect();
    (0..messages.len())
        .map(|i| ids[format!("e{i}").as_str()].to_owned())
        .collect()
}

/// ReceiveMessage of up to `max` with every system attribute (MessageGroupId,
/// ApproximateReceiveCount, ...), as Lambda's poller asks for them; no long polling (see
/// `Moto::start_for_queues`).
pub async fn receive(client: &Client, queue: &Queue, max: i32) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(max)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReceiveMessage {}: {e:?}", queue.name))
        .messages()
        .to_vec()
}

pub fn attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

pub fn receive_count(message: &Message) -> u32 {
    attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The Lambda SQS event for `messages` received from `queue`: AWS's example record
/// (`events::sqs_event`) with each message's own `messageId`, `receiptHandle`, `body`,
/// `md5OfBody`, system `attributes` as SQS returned them, `eventSourceARN` and `awsRegion`
/// (no message attributes: none are sent, and Lambda then gives `{}` and a null MD5).
pub fn lambda_event(messages: &[Message], queue: &Queue) -> Value {
    let base: Vec<(String, Option<String>, String)> = messages
        .iter()
        .map(|m| {
            (
                m.message_id().expect("a MessageId").to_owned(),
                attribute(m, MessageSystemAttributeName::MessageGroupId).map(str::to_owned),
                m.body().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut event = crate::events::sqs_event(&base);
    let records = event["Records"].as_array_mut().expect("Records");
    for (record, m) in records.iter_mut().zip(messages) {
        let attributes: serde_json::Map<String, Value> = m
            .attributes()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
            .collect();
        record["receiptHandle"] = json!(m.receipt_handle().expect("a ReceiptHandle"));
        record["md5OfBody"] = json!(m.md5_of_body());
        record["md5OfMessageAttributes"] = Value::Null;
        record["messageAttributes"] = json!({});
        record["attributes"] = Value::Object(attributes);
        record["eventSourceARN"] = json!(queue.arn);
        record["awsRegion"] = json!(REGION);
    }
    event
}

/// After an invocation: delete the records not in `failed` (DeleteMessageBatch) and make the
/// failed ones visible again at once (ChangeMessageVisibilityBatch 0, what Lambda's poller
/// amounts to once the visibility timeout passes, without the wait). Deletes come first, so a
/// FIFO group is never handed out again before its successes are gone. The ids deleted.
pub async fn settle(
    client: &Client,
    queue: &Queue,
    messages: &[Message],
    failed: &[String],
) -> Vec<String> {
    let (returned, done): (Vec<&Message>, Vec<&Message>) = messages
        .iter()
        .partition(|m| failed.iter().any(|f| Some(f.as_str()) == m.message_id()));
    if !done.is_empty() {
        let entries = done
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{i}"))
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteMessageBatch: {e:?}"));
        assert!(
            out.failed().is_empty(),
            "DeleteMessageBatch: {:?}",
            out.failed()
        );
    }
    if !returned.is_empty() {
        let entries = returned
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("v{i}"))
                    .receipt_handle(m.receipt_handle().unwrap())
                    .visibility_timeout(0)
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .change_message_visibility_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("ChangeMessageVisibilityBatch: {e:?}"));
        assert!(
            out.failed().is_empty(),
            "ChangeMessageVisibilityBatch: {:?}",
            out.failed()
        );
    }
    done.iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect()
}

/// Receive and delete everything in `queue` until it is empty (several empty receives in a
/// row and a depth of 0); the messages in the order received.
pub async fn drain(client: &Client, queue: &Queue) -> Vec<Message> {
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let batch = receive(client, queue, 10).await;
        if batch.is_empty() {
            if depth(client, queue).await.total() == 0 {
                empty += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        }
        empty = 0;
        settle(client, queue, &batch, &[]).await;
        all.extend(batch);
    }
    all
}
