//! The import handler on SNS events shaped as Lambda delivers them, over DynamoDB and an SQS
//! dead-letter queue in the emulator: one product, a batch, a malformed message, a repeat.

mod support;

use app::domain::{PageRequest, ProductId};
use app::entry::{Store, dynamo_store, importer, sqs_dead_letters, tokenless_catalog};
use aws_lambda_events::event::sns::SnsEvent;
use serde_json::json;

const TEA: &str = "01JDQ6Y4M2X0R8V3T5W7Z9B1C3";
const COFFEE: &str = "01JDQ6Y4M2X0R8V3T5W7Z9B1C4";

/// An SNS event with one record per message, as the Lambda documentation shows it.
fn sns_event(messages: &[(&str, String)]) -> SnsEvent {
    let records: Vec<_> = messages
        .iter()
        .map(|(id, message)| {
            json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:222222222222:catalog-sandbox-import:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": id,
                    "TopicArn": "arn:aws:sns:us-east-1:222222222222:catalog-sandbox-import",
                    "Subject": null,
                    "Message": message,
                    "Timestamp": "2026-11-24T10:00:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {}
                }
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a valid SNS event")
}

fn product(id: &str, name: &str, amount: i64) -> serde_json::Value {
    json!({"id": id, "name": name, "price": {"amount": amount, "currency": "EUR"}})
}

struct Setup {
    emu: support::Emulator,
    config: aws_config::SdkConfig,
    queue_url: String,
}

async fn setup() -> Setup {
    let emu = support::Emulator::start();
    let config = support::config(&emu);
    dynamo_store(&config, "catalog")
        .create_table()
        .await
        .unwrap();
    let queue_url = aws_sdk_sqs::Client::new(&config)
        .create_queue()
        .queue_name("catalog-import-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Setup {
        emu,
        config,
        queue_url,
    }
}

impl Setup {
    async fn import(&self, event: &SnsEvent) -> serde_json::Value {
        let dead_letters = sqs_dead_letters(&self.config, &self.queue_url);
        let report = importer(&self.config, "catalog", dead_letters)
            .handle(event)
            .await
            .unwrap();
        serde_json::to_value(report).unwrap()
    }

    async fn stored(&self) -> Vec<(String, String, i64, u64)> {
        tokenless_catalog(Store::Dynamo(dynamo_store(&self.config, "catalog")))
            .list(PageRequest {
                limit: 100,
                after: None,
            })
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.id.to_string(), p.name, p.price.amount, p.version))
            .collect()
    }

    /// (body, reason attribute, SNS message id attribute) of every message in the queue.
    async fn dead_letters(&self) -> Vec<(String, String, String)> {
        let out = aws_sdk_sqs::Client::new(&self.config)
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .map(|m| {
                let attr = |k: &str| {
                    m.message_attributes().unwrap()[k]
                        .string_value()
                        .unwrap()
                        .to_string()
                };
                (
                    m.body().unwrap().to_string(),
                    attr("reason"),
                    attr("sns_message_id"),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_product_then_a_batch_then_the_same_batch_again() {
    let s = setup().await;
    let report = s
        .import(&sns_event(&[("m-1", product(TEA, "Tea", 450).to_string())]))
        .await;
    assert_eq!(
        report["imported"],
        json!([{"id": TEA, "outcome": "created"}])
    );

    let batch =
        json!({"products": [product(TEA, "Green tea", 500), product(COFFEE, "Coffee", 300)]})
            .to_string();
    let report = s.import(&sns_event(&[("m-2", batch.clone())])).await;
    assert_eq!(
        report["imported"],
        json!([{"id": TEA, "outcome": "updated"}, {"id": COFFEE, "outcome": "created"}])
    );
    let after_first = s.stored().await;
    assert_eq!(
        after_first,
        [
            (TEA.into(), "Green tea".into(), 500, 2),
            (COFFEE.into(), "Coffee".into(), 300, 1)
        ]
    );
    let tea_before = tokenless_catalog(Store::Dynamo(dynamo_store(&s.config, "catalog")))
        .get(ProductId::parse("id", TEA).unwrap())
        .await
        .unwrap();

    // SNS delivers at least once: the same message again leaves everything as it was.
    let report = s.import(&sns_event(&[("m-2", batch)])).await;
    assert_eq!(
        report["imported"],
        json!([{"id": TEA, "outcome": "unchanged"}, {"id": COFFEE, "outcome": "unchanged"}])
    );
    assert_eq!(s.stored().await, after_first);
    let tea_after = tokenless_catalog(Store::Dynamo(dynamo_store(&s.config, "catalog")))
        .get(ProductId::parse("id", TEA).unwrap())
        .await
        .unwrap();
    assert_eq!(tea_after, tea_before, "not even updated_at moves");
    assert!(s.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_message_goes_whole_to_the_dead_letter_queue_with_its_reason() {
    let s = setup().await;
    // The second product is invalid: the first must not be imported either.
    let bad_batch =
        json!({"products": [product(TEA, "Tea", 450), product(COFFEE, "Coffee", -1)]}).to_string();
    let report = s
        .import(&sns_event(&[
            ("m-bad", bad_batch.clone()),
            ("m-junk", "not json at all".into()),
            ("m-good", product(COFFEE, "Coffee", 300).to_string()),
        ]))
        .await;
    assert_eq!(
        report["imported"],
        json!([{"id": COFFEE, "outcome": "created"}])
    );
    assert_eq!(report["dead_lettered"][0]["message_id"], "m-bad");
    let mut letters = s.dead_letters().await;
    letters.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].0, bad_batch);
    assert!(
        letters[0]
            .1
            .starts_with("products[1].price.amount: must be zero or more"),
        "{letters:?}"
    );
    assert_eq!(letters[0].2, "m-bad");
    assert_eq!(letters[1].0, "not json at all");
    assert!(letters[1].1.starts_with("the message is not JSON"));
    assert_eq!(s.stored().await, [(COFFEE.into(), "Coffee".into(), 300, 1)]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_rejected_message_is_logged_with_its_id_and_reason() {
    let (captured, _guard) = support::capture_logs();
    let letters = std::sync::Arc::new(app::adapters::memory::MemoryDeadLetters::default());
    let importer = app::import::Importer::new(tokenless_catalog(Store::Memory), letters.clone());
    importer
        .handle(&sns_event(&[("m-7", r#"{"name":"Tea"}"#.into())]))
        .await
        .unwrap();
    let logged = captured.text();
    let line: serde_json::Value = serde_json::from_str(logged.lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["fields"]["message_id"], "m-7");
    assert_eq!(line["fields"]["reason"], "id: is required");
    assert_eq!(
        letters.taken(),
        [app::adapters::memory::DeadLetter {
            message_id: "m-7".into(),
            body: r#"{"name":"Tea"}"#.into(),
            reason: "id: is required".into(),
        }]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn app_import_runs_the_handler_on_a_saved_event() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |message: String, queue: Option<&str>| {
        let path = dir.path().join("event.json");
        let event = serde_json::to_string(&sns_event(&[("m-cli", message)])).unwrap();
        std::fs::write(&path, event).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_app"));
        cmd.args(["import", "--table", "catalog", "--event"])
            .arg(&path)
            .env("AWS_ENDPOINT_URL", &s.emu.url)
            .env("AWS_REGION", "us-east-1")
            .envs(s.emu.credentials(support::ACCOUNT))
            .env_remove("CATALOG_DEAD_LETTER_QUEUE");
        if let Some(url) = queue {
            cmd.args(["--dead-letter-queue", url]);
        }
        cmd.output().unwrap()
    };
    let out = run(product(TEA, "Tea", 450).to_string(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["imported"],
        json!([{"id": TEA, "outcome": "created"}])
    );

    // Without a queue a rejected message is reported and fails the run; with one it is queued.
    let out = run("{}".into(), None);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dead_lettered"][0]["reason"], "id: is required");
    assert!(s.dead_letters().await.is_empty());
    let out = run("{}".into(), Some(&s.queue_url));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(s.dead_letters().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_out_of_order_never_undo_a_newer_state() {
    let s = setup().await;
    let versioned = |name: &str, amount: i64, v: u64| {
        let mut p = product(TEA, name, amount);
        p["source_version"] = json!(v);
        p.to_string()
    };
    // SNS delivered v3 first, then v1 and v2 late; then v3 again (a redelivery), then v4.
    let outcomes = [
        (versioned("Tea v3", 300, 3), "created"),
        (versioned("Tea v1", 100, 1), "stale"),
        (versioned("Tea v2", 200, 2), "stale"),
        (versioned("Tea v3", 300, 3), "unchanged"),
        (versioned("Tea v3 but other", 999, 3), "stale"),
        (versioned("Tea v4", 400, 4), "updated"),
    ];
    for (i, (message, outcome)) in outcomes.iter().enumerate() {
        let report = s
            .import(&sns_event(&[(&format!("m-{i}"), message.clone())]))
            .await;
        assert_eq!(report["imported"][0]["outcome"], *outcome, "{message}");
    }
    assert_eq!(s.stored().await, [(TEA.into(), "Tea v4".into(), 400, 2)]);
    // A newer version with the same fields is recorded, so an older change cannot land after it.
    s.import(&sns_event(&[("m-a", versioned("Tea v4", 400, 6))]))
        .await;
    let late = s
        .import(&sns_event(&[("m-b", versioned("Tea v5", 500, 5))]))
        .await;
    assert_eq!(late["imported"][0]["outcome"], "stale");
    assert_eq!(s.stored().await[0].1, "Tea v4");
}
