//! `drift`: detection, the wait, and the drifted resources with their property differences,
//! against CloudFormation responses shaped as its API reference documents them (the emulator
//! has no drift detection).

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::operation::describe_stack_drift_detection_status::DescribeStackDriftDetectionStatusOutput;
use aws_sdk_cloudformation::operation::describe_stack_resource_drifts::DescribeStackResourceDriftsOutput;
use aws_sdk_cloudformation::operation::detect_stack_drift::DetectStackDriftOutput;
use aws_sdk_cloudformation::types::{
    DifferenceType, PropertyDifference, StackDriftDetectionStatus, StackDriftStatus,
    StackResourceDrift, StackResourceDriftStatus,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use deployer::drift::detect;
use deployer::output::Report;
use deployer::stack::{Event, Stacks};
use std::time::Duration;

const NAME: &str = "catalog-sandbox";
const ID: &str = "b78ac9b0-dec1-11e7-a451-503a3e7b9b36";

fn stacks(client: Client) -> Stacks {
    let mut s = Stacks::new(client);
    s.poll = Duration::ZERO;
    s.max_poll = Duration::ZERO;
    s
}

fn status(
    detection: StackDriftDetectionStatus,
    drift: Option<StackDriftStatus>,
    reason: Option<&str>,
) -> DescribeStackDriftDetectionStatusOutput {
    DescribeStackDriftDetectionStatusOutput::builder()
        .stack_id(format!(
            "arn:aws:cloudformation:us-east-1:222222222222:stack/{NAME}/0"
        ))
        .stack_drift_detection_id(ID)
        .detection_status(detection)
        .set_stack_drift_status(drift)
        .set_detection_status_reason(reason.map(str::to_string))
        .timestamp(DateTime::from_secs(1_795_514_400))
        .build()
}

fn drift(
    logical: &str,
    kind: &str,
    state: StackResourceDriftStatus,
    diffs: Vec<PropertyDifference>,
) -> StackResourceDrift {
    StackResourceDrift::builder()
        .stack_id(format!(
            "arn:aws:cloudformation:us-east-1:222222222222:stack/{NAME}/0"
        ))
        .logical_resource_id(logical)
        .physical_resource_id(format!("{NAME}-{logical}"))
        .resource_type(kind)
        .stack_resource_drift_status(state)
        .set_property_differences(Some(diffs))
        .timestamp(DateTime::from_secs(1_795_514_400))
        .build()
}

#[tokio::test]
async fn a_drifted_stack_lists_each_resource_and_property_difference() {
    let start = mock!(Client::detect_stack_drift)
        .match_requests(|r| r.stack_name() == Some(NAME))
        .then_output(|| {
            DetectStackDriftOutput::builder()
                .stack_drift_detection_id(ID)
                .build()
        });
    let waiting = mock!(Client::describe_stack_drift_detection_status)
        .match_requests(|r| r.stack_drift_detection_id() == Some(ID))
        .sequence()
        .output(|| status(StackDriftDetectionStatus::DetectionInProgress, None, None))
        .output(|| {
            status(
                StackDriftDetectionStatus::DetectionComplete,
                Some(StackDriftStatus::Drifted),
                None,
            )
        })
        .build();
    let drifts = mock!(Client::describe_stack_resource_drifts)
        .match_requests(|r| {
            r.stack_resource_drift_status_filters()
                == [
                    StackResourceDriftStatus::Modified,
                    StackResourceDriftStatus::Deleted,
                ]
        })
        .then_output(|| {
            DescribeStackResourceDriftsOutput::builder()
                .stack_resource_drifts(drift(
                    "QueryFunction",
                    "AWS::Lambda::Function",
                    StackResourceDriftStatus::Modified,
                    vec![
                        PropertyDifference::builder()
                            .property_path("/MemorySize")
                            .expected_value("256")
                            .actual_value("1024")
                            .difference_type(DifferenceType::NotEqual)
                            .build(),
                    ],
                ))
                .stack_resource_drifts(drift(
                    "ImportDeadLetters",
                    "AWS::SQS::Queue",
                    StackResourceDriftStatus::Deleted,
                    vec![],
                ))
                .build()
        });
    let cfn = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&start, &waiting, &drifts]
    );
    let mut waited = vec![];
    struct Waits<'a>(&'a mut Vec<String>);
    impl deployer::stack::Observer for Waits<'_> {
        fn event(&mut self, _: &Event) {}
        fn waiting(&mut self, _: &str, status: &str, _: Duration) {
            self.0.push(status.to_string());
        }
    }
    let report = detect(&stacks(cfn), NAME, &mut Waits(&mut waited))
        .await
        .unwrap();
    assert_eq!(waited, ["DETECTION_IN_PROGRESS"]);
    assert!(!report.in_sync());
    assert_eq!(report.status, "DRIFTED");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["drifted"][0],
        serde_json::json!({
            "logical_id": "QueryFunction",
            "resource_type": "AWS::Lambda::Function",
            "physical_id": "catalog-sandbox-QueryFunction",
            "status": "MODIFIED",
            "differences": [{"path": "/MemorySize", "kind": "NOT_EQUAL", "expected": "256", "actual": "1024"}]
        })
    );
    assert_eq!(json["drifted"][1]["status"], "DELETED");
    let text = report.human();
    assert!(
        text.contains(
            "MODIFIED QueryFunction (AWS::Lambda::Function, catalog-sandbox-QueryFunction)"
        ),
        "{text}"
    );
    assert!(
        text.contains("NOT_EQUAL /MemorySize: expected 256, actual 1024"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stack_in_sync_has_nothing_to_list() {
    let start = mock!(Client::detect_stack_drift).then_output(|| {
        DetectStackDriftOutput::builder()
            .stack_drift_detection_id(ID)
            .build()
    });
    let done = mock!(Client::describe_stack_drift_detection_status).then_output(|| {
        status(
            StackDriftDetectionStatus::DetectionComplete,
            Some(StackDriftStatus::InSync),
            None,
        )
    });
    let drifts = mock!(Client::describe_stack_resource_drifts)
        .then_output(|| DescribeStackResourceDriftsOutput::builder().build());
    let cfn = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&start, &done, &drifts]
    );
    let report = detect(&stacks(cfn), NAME, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(report.in_sync());
    assert_eq!(
        report.human(),
        "catalog-sandbox: in sync with its template\n"
    );
}

#[tokio::test]
async fn a_failed_detection_says_why() {
    let start = mock!(Client::detect_stack_drift).then_output(|| {
        DetectStackDriftOutput::builder()
            .stack_drift_detection_id(ID)
            .build()
    });
    let failed = mock!(Client::describe_stack_drift_detection_status).then_output(|| {
        status(
            StackDriftDetectionStatus::DetectionFailed,
            None,
            Some("Failed to detect drift on resource [QueryFunction]: AccessDenied"),
        )
    });
    let cfn = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&start, &failed]
    );
    let err = detect(&stacks(cfn), NAME, &mut |_: &Event| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "drift detection on stack catalog-sandbox failed: Failed to detect drift on resource [QueryFunction]: AccessDenied"
    );
    assert_eq!(deployer::error::Error::from(err).exit_code(), 1);
}
