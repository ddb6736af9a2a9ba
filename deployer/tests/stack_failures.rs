//! What the emulator cannot show: failed creates and their rollback, UPDATE_ROLLBACK_FAILED,
//! throttling, per-resource events and "didn't contain changes". The responses are shaped as the
//! CloudFormation API reference documents them, served by aws-smithy-mocks.

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ErrorMetadata;
use aws_sdk_cloudformation::operation::continue_update_rollback::ContinueUpdateRollbackOutput;
use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetError;
use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::{
    DescribeStackEventsError, DescribeStackEventsOutput,
};
use aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesOutput;
use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetError;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::operation::list_change_sets::ListChangeSetsOutput;
use aws_sdk_cloudformation::types::error::{AlreadyExistsException, ChangeSetNotFoundException};
use aws_sdk_cloudformation::types::{
    Change, ChangeAction, ChangeSetStatus, ChangeType, ResourceChange, ResourceStatus, Stack,
    StackEvent, StackResource, StackStatus, Tag, TemplateStage,
};
use aws_sdk_cloudformation::types::{ChangeSetSummary, ExecutionStatus};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use deployer::stack::{
    Action, DeployOptions, Error, Event, Expect, Operation, Outcome, StackSpec, Stacks,
};
use std::time::{Duration, SystemTime};

const NAME: &str = "catalog-sandbox";

fn spec() -> StackSpec {
    StackSpec {
        name: NAME.into(),
        fingerprint: "f1".into(),
        template_body: "{}".into(),
        template_url: None,
        parameters: vec![],
        tags: vec![("env".into(), "sandbox".into())],
        termination_protection: false,
        execution_role_arn: None,
    }
}

fn stacks(client: Client) -> Stacks {
    let mut s = Stacks::new(client);
    s.poll = Duration::ZERO;
    s.max_poll = Duration::ZERO;
    s
}

fn stack(status: StackStatus) -> DescribeStacksOutput {
    DescribeStacksOutput::builder()
        .stacks(
            Stack::builder()
                .stack_name(NAME)
                .stack_status(status)
                .creation_time(DateTime::from(SystemTime::now()))
                .build(),
        )
        .build()
}

/// DescribeStacks on a missing stack: a ValidationError, as AWS sends it.
fn no_stack() -> DescribeStacksError {
    DescribeStacksError::generic(
        ErrorMetadata::builder()
            .code("ValidationError")
            .message(format!("Stack with id {NAME} does not exist"))
            .build(),
    )
}

fn event(
    id: &str,
    logical: &str,
    kind: &str,
    status: ResourceStatus,
    reason: Option<&str>,
) -> StackEvent {
    StackEvent::builder()
        .stack_id("arn:aws:cloudformation:us-east-1:222222222222:stack/catalog-sandbox/1")
        .event_id(id)
        .stack_name(NAME)
        .logical_resource_id(logical)
        .resource_type(kind)
        .timestamp(DateTime::from(SystemTime::now()))
        .resource_status(status)
        .set_resource_status_reason(reason.map(str::to_string))
        .build()
}

/// DescribeStackEvents lists newest first.
fn events(newest_first: Vec<StackEvent>) -> DescribeStackEventsOutput {
    DescribeStackEventsOutput::builder()
        .set_stack_events(Some(newest_first))
        .build()
}

fn change_set_ready() -> DescribeChangeSetOutput {
    DescribeChangeSetOutput::builder()
        .status(ChangeSetStatus::CreateComplete)
        .changes(
            Change::builder()
                .r#type(ChangeType::Resource)
                .resource_change(
                    ResourceChange::builder()
                        .action(ChangeAction::Add)
                        .logical_resource_id("Table")
                        .resource_type("AWS::DynamoDB::Table")
                        .build(),
                )
                .build(),
        )
        .build()
}

/// ListChangeSets of an existing stack: none left over from an interrupted run.
fn no_leftovers() -> Rule {
    mock!(Client::list_change_sets).then_output(|| ListChangeSetsOutput::builder().build())
}

/// CreateChangeSet accepted, DescribeChangeSet FAILED for `reason`, and its DeleteChangeSet.
fn change_set_failing(reason: &'static str) -> [Rule; 3] {
    [
        mock!(Client::create_change_set)
            .then_output(|| CreateChangeSetOutput::builder().id("cs").build()),
        mock!(Client::describe_change_set).then_output(move || {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::Failed)
                .status_reason(reason)
                .build()
        }),
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build()),
    ]
}

/// A change set FAILED as AWS reports one that would change nothing.
fn change_set_without_changes() -> [Rule; 3] {
    change_set_failing("The submitted information didn't contain changes.")
}

/// CreateChangeSet, DescribeChangeSet (ready, one Add) and ExecuteChangeSet, all accepted.
fn change_set_accepted() -> [Rule; 3] {
    [
        mock!(Client::create_change_set)
            .then_output(|| CreateChangeSetOutput::builder().id("cs").build()),
        mock!(Client::describe_change_set).then_output(change_set_ready),
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build()),
    ]
}

#[tokio::test]
async fn a_failed_create_names_the_resource_and_reason_and_the_final_state() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .error(no_stack)
        .output(|| stack(StackStatus::CreateInProgress))
        .output(|| stack(StackStatus::RollbackInProgress))
        .output(|| stack(StackStatus::RollbackComplete))
        .build();
    let [create, ready, execute] = change_set_accepted();
    let failed = vec![
        event(
            "4",
            NAME,
            "AWS::CloudFormation::Stack",
            ResourceStatus::RollbackComplete,
            None,
        ),
        event(
            "3",
            "Table",
            "AWS::DynamoDB::Table",
            ResourceStatus::DeleteComplete,
            None,
        ),
        event(
            "2",
            "Table",
            "AWS::DynamoDB::Table",
            ResourceStatus::CreateFailed,
            Some(
                "Resource handler returned message: \"One or more parameter values were invalid: Missing the key sk in the item\"",
            ),
        ),
        event(
            "1",
            "Table",
            "AWS::DynamoDB::Table",
            ResourceStatus::CreateInProgress,
            None,
        ),
    ];
    let stack_events = mock!(Client::describe_stack_events)
        .sequence()
        .output(|| events(vec![]))
        .output(move || events(failed.clone()))
        .repeatedly()
        .build();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &ready, &execute, &stack_events]
    );

    let mut seen: Vec<Event> = vec![];
    let err = stacks(client)
        .deploy(&spec(), &mut |e: &Event| seen.push(e.clone()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Failed { ref status, .. } if status == "ROLLBACK_COMPLETE"),
        "{err:?}"
    );
    assert!(
        text.contains("resource Table (AWS::DynamoDB::Table) went CREATE_FAILED"),
        "{text}"
    );
    assert!(text.contains("Missing the key sk"), "{text}");
    assert!(text.contains("ended in ROLLBACK_COMPLETE"), "{text}");
    // Per-resource events stream oldest first, each once.
    let order: Vec<&str> = seen.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(
        order,
        [
            "CREATE_IN_PROGRESS",
            "CREATE_FAILED",
            "DELETE_COMPLETE",
            "ROLLBACK_COMPLETE"
        ]
    );
}

#[tokio::test]
async fn a_rolled_back_first_create_is_deleted_and_created_again() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::RollbackComplete)) // deploy looks
        .error(no_stack) // delete waited: gone
        .error(no_stack) // deploy looks again
        .output(|| stack(StackStatus::CreateComplete)) // create waited: done
        .repeatedly()
        .build();
    let delete = mock!(Client::delete_stack).then_output(|| {
        aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
    });
    let create = mock!(Client::create_change_set)
        .match_requests(|r| {
            r.change_set_type() == Some(&aws_sdk_cloudformation::types::ChangeSetType::Create)
        })
        .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
    let ready = mock!(Client::describe_change_set).then_output(change_set_ready);
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &delete, &create, &ready, &execute, &stack_events]
    );

    let mut notes = vec![];
    let report = stacks(client)
        .deploy(&spec(), &mut |e: &Event| notes.push(e.reason.clone()))
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.status.as_str()),
        (Outcome::Created, "CREATE_COMPLETE")
    );
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(create.num_calls(), 1, "the change set is a CREATE");
    assert!(
        notes
            .iter()
            .flatten()
            .any(|r| r.contains("the first create had failed; deleting")),
        "{notes:?}"
    );
}

/// DescribeStackResources naming one resource in `status`, as a stack stuck on it lists it.
fn blocked(status: ResourceStatus) -> DescribeStackResourcesOutput {
    DescribeStackResourcesOutput::builder()
        .stack_resources(
            StackResource::builder()
                .logical_resource_id("Api")
                .resource_type("AWS::ApiGatewayV2::Api")
                .resource_status(ResourceStatus::UpdateComplete)
                .timestamp(DateTime::from(SystemTime::now()))
                .build(),
        )
        .stack_resources(
            StackResource::builder()
                .logical_resource_id("Table")
                .resource_type("AWS::DynamoDB::Table")
                .resource_status(status)
                .resource_status_reason("Table was deleted outside CloudFormation")
                .timestamp(DateTime::from(SystemTime::now()))
                .build(),
        )
        .build()
}

#[tokio::test]
async fn update_rollback_failed_stops_and_names_the_way_out_and_what_blocks() {
    let describe =
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateRollbackFailed));
    let resources = mock!(Client::describe_stack_resources)
        .then_output(|| blocked(ResourceStatus::UpdateFailed));
    let create =
        mock!(Client::create_change_set).then_output(|| CreateChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &resources, &create]
    );
    let err = stacks(client)
        .deploy(&spec(), &mut |_: &Event| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RollbackFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("--continue-rollback"), "{text}");
    assert!(
        text.contains(
            "blocked by Table (AWS::DynamoDB::Table: Table was deleted outside CloudFormation)"
        ),
        "{text}"
    );
    assert!(
        !text.contains("Api ("),
        "only failed resources are named: {text}"
    );
    assert_eq!(
        create.num_calls(),
        0,
        "nothing is attempted on a stuck stack"
    );
}

#[tokio::test]
async fn continue_rollback_skips_the_resources_named_and_refuses_a_stack_not_stuck() {
    let resume = mock!(Client::continue_update_rollback)
        .match_requests(|r| r.resources_to_skip() == ["Table".to_string()])
        .then_output(|| ContinueUpdateRollbackOutput::builder().build());
    // Stuck, then the rollback runs (its cleanup too) and completes; then a healthy stack.
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateRollbackFailed))
        .output(|| stack(StackStatus::UpdateRollbackCompleteCleanupInProgress))
        .output(|| stack(StackStatus::UpdateRollbackComplete))
        .output(|| stack(StackStatus::UpdateComplete))
        .build();
    let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&resume, &describe, &stack_events]
    );
    let s = stacks(client);
    s.continue_rollback(NAME, &["Table".into()], &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(resume.num_calls(), 1);
    // A healthy stack has no rollback to continue: refused (exit 2) before any change.
    let err = s
        .continue_rollback(NAME, &[], &mut |_: &Event| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("not in it"), "{err}");
    assert_eq!(resume.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_delete_names_what_blocks_it_and_retain_deletes_the_rest() {
    // First destroy: the delete fails on the table.
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateComplete)) // destroy looks
        .output(|| stack(StackStatus::DeleteFailed)) // the wait sees it fail
        .output(|| stack(StackStatus::DeleteFailed)) // the second destroy looks
        .output(|| stack(StackStatus::DeleteComplete)) // by id, once gone
        .build();
    let stack_events = mock!(Client::describe_stack_events)
        .sequence()
        .output(|| {
            events(vec![event(
                "e1",
                "Table",
                "AWS::DynamoDB::Table",
                ResourceStatus::DeleteFailed,
                Some("Resource is protected by DeletionProtectionEnabled"),
            )])
        })
        .output(|| events(vec![]))
        .repeatedly()
        .build();
    let delete_plain = mock!(Client::delete_stack)
        .match_requests(|r| r.retain_resources().is_empty())
        .then_output(|| {
            aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
        });
    let delete_retaining = mock!(Client::delete_stack)
        .match_requests(|r| r.retain_resources() == ["Table".to_string()])
        .then_output(|| {
            aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
        });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &stack_events, &delete_plain, &delete_retaining]
    );
    let s = stacks(client);
    let err = s.delete(NAME, &[], &mut |_: &Event| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::DeleteFailed { .. }), "{err:?}");
    assert!(
        text.contains("blocked by Table (AWS::DynamoDB::Table: Resource is protected by DeletionProtectionEnabled)"),
        "{text}"
    );
    assert!(text.contains("--retain Table"), "{text}");
    assert!(
        s.delete(NAME, &["Table".into()], &mut |_: &Event| {})
            .await
            .unwrap()
    );
    assert_eq!(
        (delete_plain.num_calls(), delete_retaining.num_calls()),
        (1, 1)
    );
}

#[tokio::test]
async fn retain_is_refused_for_a_stack_not_in_delete_failed() {
    let describe =
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateComplete));
    let delete = mock!(Client::delete_stack).then_output(|| {
        aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
    });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &delete]
    );
    let err = stacks(client)
        .delete(NAME, &["Table".into()], &mut |_: &Event| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("UPDATE_COMPLETE"), "{err}");
    assert_eq!(delete.num_calls(), 0);
}

/// Each state CloudFormation documents, and what a deploy does with a stack found in it: the
/// calls it makes first tell. States a deploy cannot leave by itself are refused with the way
/// out, before any change set.
#[tokio::test]
async fn every_stack_state_has_its_own_way() {
    use StackStatus as S;
    // (state, what the deploy does: "create" / "update" a change set, "wait", "recreate",
    // or the error text that names the way out)
    let table: &[(S, &str)] = &[
        (S::ReviewInProgress, "create"),
        (S::CreateComplete, "update"),
        (S::UpdateComplete, "update"),
        (S::UpdateRollbackComplete, "update"),
        (S::ImportComplete, "update"),
        (S::ImportRollbackComplete, "update"),
        (S::UpdateFailed, "update"),
        (S::CreateInProgress, "wait"),
        (S::UpdateInProgress, "wait"),
        (S::UpdateCompleteCleanupInProgress, "wait"),
        (S::UpdateRollbackInProgress, "wait"),
        (S::UpdateRollbackCompleteCleanupInProgress, "wait"),
        (S::RollbackInProgress, "wait"),
        (S::DeleteInProgress, "wait"),
        (S::ImportInProgress, "wait"),
        (S::ImportRollbackInProgress, "wait"),
        (S::RollbackComplete, "recreate"),
        (S::RollbackFailed, "recreate"),
        (S::CreateFailed, "recreate"),
        (S::UpdateRollbackFailed, "--continue-rollback"),
        (S::DeleteFailed, "--retain"),
        (S::ImportRollbackFailed, "describe-stack-events"),
        (S::from("SOME_NEW_STATE"), "does not know"),
    ];
    for (state, way) in table {
        let first = state.clone();
        // After the first look the stack has settled (gone first, where the deploy deletes it).
        let mut describe = mock!(Client::describe_stacks)
            .sequence()
            .output(move || stack(first.clone()));
        if *way == "recreate" {
            describe = describe.output(|| stack(StackStatus::DeleteComplete));
        }
        let describe = describe
            .output(|| stack(StackStatus::UpdateComplete))
            .repeatedly()
            .build();
        let resources = mock!(Client::describe_stack_resources)
            .then_output(|| DescribeStackResourcesOutput::builder().build());
        let create = mock!(Client::create_change_set)
            .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
        let delete = mock!(Client::delete_stack).then_output(|| {
            aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
        });
        let [_, ready, execute] = change_set_accepted();
        let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [
                &describe,
                &resources,
                &create,
                &delete,
                &ready,
                &execute,
                &stack_events,
                &no_leftovers()
            ]
        );
        let mut notes = vec![];
        let result = stacks(client)
            .deploy(&spec(), &mut |e: &Event| {
                notes.push(e.reason.clone().unwrap_or_default())
            })
            .await;
        let waited = notes
            .iter()
            .any(|n| n.contains("another operation on this stack is running"));
        let what = match (&result, delete.num_calls(), waited) {
            (Err(e), _, _) => e.to_string(),
            (Ok(_), 1, _) => "recreate".into(),
            (Ok(_), _, true) => "wait".into(),
            (Ok(r), _, _) if r.outcome == Outcome::Created => "create".into(),
            (Ok(_), _, _) => "update".into(),
        };
        assert!(what.contains(way), "{state:?}: expected {way}, got {what}");
        if result.is_err() {
            assert_eq!(
                create.num_calls(),
                0,
                "{state:?}: refused before any change set"
            );
        }
    }
}

#[tokio::test]
async fn a_change_set_without_changes_is_deleted_and_nothing_runs() {
    let describe =
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateComplete));
    let create = mock!(Client::create_change_set)
        .match_requests(|r| {
            r.change_set_type() == Some(&aws_sdk_cloudformation::types::ChangeSetType::Update)
        })
        .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
    let failed = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
            .build()
    });
    let delete =
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let leftovers = no_leftovers();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&leftovers, &describe, &create, &failed, &delete, &execute]
    );
    let report = stacks(client)
        .deploy(&spec(), &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.status.as_str()),
        (Outcome::NoChanges, "UPDATE_COMPLETE")
    );
    assert_eq!((delete.num_calls(), execute.num_calls()), (1, 0));
}

/// A template importing what no stack exports (the pipeline stack before its account's
/// bootstrap): AWS fails the change set and says so; the emulator resolves no imports and
/// creates the stack, so only this test shows it.
#[tokio::test]
async fn a_change_set_failing_on_a_missing_export_says_to_bootstrap_first() {
    let describe = mock!(Client::describe_stacks).then_error(no_stack);
    let [create, failed, delete] =
        change_set_failing("No export named catalog-action-build-role found");
    let delete_stack = mock!(Client::delete_stack).then_output(|| {
        aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
    });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &failed, &delete, &delete_stack]
    );
    let err = stacks(client)
        .deploy(&spec(), &mut |_: &Event| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("No export named catalog-action-build-role found")
            && err.contains("run `deployer bootstrap ENV` there first"),
        "{err}"
    );
}

#[tokio::test]
async fn a_change_set_failing_for_a_real_reason_is_an_error_with_that_reason() {
    let describe =
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateComplete));
    let [create, failed, delete] = change_set_failing(
        "Template format error: Unresolved resource dependencies [Tabel] in the Resources block of the template",
    );
    let leftovers = no_leftovers();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&leftovers, &describe, &create, &failed, &delete]
    );
    let err = stacks(client)
        .deploy(&spec(), &mut |_: &Event| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Unresolved resource dependencies [Tabel]")
            && !err.to_string().contains("deployer bootstrap"),
        "{err}"
    );
    assert_eq!(
        delete.num_calls(),
        1,
        "the failed change set is not left behind"
    );
}

#[tokio::test]
async fn a_diff_of_a_new_stack_whose_template_is_refused_leaves_nothing_behind() {
    const STACK_ID: &str =
        "arn:aws:cloudformation:us-east-1:222222222222:stack/catalog-sandbox/new";
    let describe = mock!(Client::describe_stacks).then_error(no_stack);
    let create = mock!(Client::create_change_set)
        .match_requests(|r| {
            r.change_set_type() == Some(&aws_sdk_cloudformation::types::ChangeSetType::Create)
        })
        .then_output(|| {
            CreateChangeSetOutput::builder()
                .id("arn:aws:cloudformation:us-east-1:222222222222:changeSet/deployer-change/1")
                .stack_id(STACK_ID)
                .build()
        });
    let failed = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason(
                "Template format error: Unrecognized resource types: [AWS::Lambda::Functon]",
            )
            .build()
    });
    let delete_change_set =
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
    // The CREATE change set made an empty stack in REVIEW_IN_PROGRESS: it goes too, by its id.
    let delete_stack = mock!(Client::delete_stack)
        .match_requests(|r| r.stack_name() == Some(STACK_ID))
        .then_output(|| {
            aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
        });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &describe,
            &create,
            &failed,
            &delete_change_set,
            &delete_stack
        ]
    );
    let err = stacks(client)
        .diff(&spec(), &mut |_: &Event| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AWS::Lambda::Functon"), "{err}");
    assert_eq!(
        (delete_change_set.num_calls(), delete_stack.num_calls()),
        (1, 1)
    );
}

#[tokio::test]
async fn throttling_while_waiting_is_outlasted() {
    let throttled = || {
        DescribeStackEventsError::generic(
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    };
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateInProgress)) // deploy finds someone else's update
        .error(|| {
            DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .output(|| stack(StackStatus::UpdateInProgress))
        .output(|| stack(StackStatus::UpdateComplete))
        .repeatedly()
        .build();
    let stack_events = mock!(Client::describe_stack_events)
        .sequence()
        .error(throttled)
        .times(3)
        .output(|| events(vec![]))
        .repeatedly()
        .build();
    let [create, ready, execute] = change_set_accepted();
    // No SDK retries here: the deployer's own waiting must carry it.
    let leftovers = no_leftovers();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &leftovers,
            &describe,
            &stack_events,
            &create,
            &ready,
            &execute
        ],
        |c| c.retry_config(aws_sdk_cloudformation::config::retry::RetryConfig::disabled())
    );
    let report = stacks(client)
        .deploy(&spec(), &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.status.as_str()),
        (Outcome::Updated, "UPDATE_COMPLETE")
    );
    assert!(stack_events.num_calls() >= 3);
}

#[tokio::test]
async fn protected_stacks_get_termination_protection_once() {
    // The emulator does not implement UpdateTerminationProtection.
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateComplete))
        .output(|| stack(StackStatus::UpdateComplete))
        .repeatedly()
        .build();
    let [create, ready, execute] = change_set_accepted();
    let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
    let protect = mock!(Client::update_termination_protection)
        .match_requests(|r| r.stack_name() == Some(NAME) && r.enable_termination_protection() == Some(true))
        .then_output(|| aws_sdk_cloudformation::operation::update_termination_protection::UpdateTerminationProtectionOutput::builder().build());
    let leftovers = no_leftovers();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &leftovers,
            &describe,
            &create,
            &ready,
            &execute,
            &stack_events,
            &protect
        ]
    );
    let mut protected_spec = spec();
    protected_spec.termination_protection = true;
    stacks(client)
        .deploy(&protected_spec, &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(protect.num_calls(), 1);
}

/// The stack as the spec asks for it: settled, tagged, protected.
fn matching_stack() -> Stack {
    Stack::builder()
        .stack_name(NAME)
        .stack_id(format!(
            "arn:aws:cloudformation:us-east-1:222222222222:stack/{NAME}/1"
        ))
        .stack_status(StackStatus::UpdateComplete)
        .creation_time(DateTime::from(SystemTime::now()))
        .enable_termination_protection(true)
        .tags(Tag::builder().key("env").value("sandbox").build())
        .tags(
            Tag::builder()
                .key("deployer-fingerprint")
                .value("f1")
                .build(),
        )
        .build()
}

/// A deploy of `spec` against `stack` whose live template is `live`: the outcome, and whether
/// a change set was made.
async fn deploy_against(
    stack: Stack,
    live: &'static str,
    spec: StackSpec,
) -> (Outcome, usize, usize) {
    let describe = mock!(Client::describe_stacks).then_output(move || {
        DescribeStacksOutput::builder()
            .stacks(stack.clone())
            .build()
    });
    let template = mock!(Client::get_template)
        .match_requests(|r| r.template_stage() == Some(&TemplateStage::Original))
        .then_output(move || GetTemplateOutput::builder().template_body(live).build());
    let [create, no_changes, delete_cs] = change_set_without_changes();
    let protect = mock!(Client::update_termination_protection)
        .then_output(|| aws_sdk_cloudformation::operation::update_termination_protection::UpdateTerminationProtectionOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &describe,
            &template,
            &create,
            &no_changes,
            &delete_cs,
            &protect,
            &no_leftovers()
        ]
    );
    let report = stacks(client)
        .deploy(&spec, &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(protect.num_calls(), 0, "the stack is protected already");
    (report.outcome, template.num_calls(), create.num_calls())
}

/// The pipeline's Prepare may find prod current but unprotected (turned off by hand): its role
/// may only make change sets, so a proposal turns nothing on (AWS would refuse it the call).
#[tokio::test]
async fn a_proposal_never_turns_termination_protection_on() {
    let mut unprotected = matching_stack();
    unprotected.enable_termination_protection = Some(false);
    let describe = mock!(Client::describe_stacks).then_output(move || {
        DescribeStacksOutput::builder()
            .stacks(unprotected.clone())
            .build()
    });
    let body = r#"{"Resources":{"Table":{"Type":"AWS::DynamoDB::Table"}}}"#;
    let template = mock!(Client::get_template)
        .then_output(move || GetTemplateOutput::builder().template_body(body).build());
    let protect = mock!(Client::update_termination_protection)
        .then_output(|| aws_sdk_cloudformation::operation::update_termination_protection::UpdateTerminationProtectionOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &template, &protect, &no_leftovers()]
    );
    let mut spec = spec();
    spec.termination_protection = true;
    spec.template_body = body.into();
    let stacks = stacks(client);
    let found = stacks.look(&spec, false).await.unwrap();
    assert!(found.current);
    let options = DeployOptions {
        force: false,
        action: Action::Propose,
    };
    stacks
        .deploy_found(&spec, found, &options, &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(protect.num_calls(), 0);
}

#[tokio::test]
async fn a_stack_is_current_only_when_its_live_template_matches_too() {
    let mut protected = spec();
    protected.termination_protection = true;
    protected.template_body = r#"{"Resources":{"Table":{"Type":"AWS::DynamoDB::Table"}}}"#.into();
    // Matching: two calls (description, template), no change set. The live template may come
    // back formatted otherwise: it is compared as JSON.
    let live = "{\n  \"Resources\": {\"Table\": {\"Type\": \"AWS::DynamoDB::Table\"}}\n}";
    assert_eq!(
        deploy_against(matching_stack(), live, protected.clone()).await,
        (Outcome::NoChanges, 1, 0)
    );
    // Changed out of band (the tags still say f1): a change set is made.
    let edited = r#"{"Resources":{"Table":{"Type":"AWS::DynamoDB::Table","Properties":{"TableClass":"STANDARD_INFREQUENT_ACCESS"}}}}"#;
    assert_eq!(
        deploy_against(matching_stack(), edited, protected.clone())
            .await
            .2,
        1
    );
    // A tag changed out of band: found without reading the template.
    let mut retagged = matching_stack();
    retagged.tags = Some(vec![
        Tag::builder().key("env").value("staging").build(),
        Tag::builder()
            .key("deployer-fingerprint")
            .value("f1")
            .build(),
    ]);
    assert_eq!(
        deploy_against(retagged, live, protected.clone()).await,
        (Outcome::NoChanges, 0, 1)
    );
    // Another execution role: the same.
    let mut other_role = matching_stack();
    other_role.role_arn = Some("arn:aws:iam::222222222222:role/someone-elses".into());
    assert_eq!(
        deploy_against(other_role, live, protected.clone()).await.2,
        1
    );
    // A value CloudFormation resolves at deploy time may have changed unseen: always a change
    // set, even though everything else matches.
    let mut resolving = protected.clone();
    resolving.template_body = r#"{"Resources":{"Table":{"Type":"AWS::DynamoDB::Table","Properties":{"TableName":"{{resolve:ssm:/catalog/table-name}}"}}}}"#.into();
    assert_eq!(deploy_against(matching_stack(), live, resolving).await.2, 1);
    let mut ssm_typed = protected.clone();
    ssm_typed.template_body =
        r#"{"Parameters":{"Name":{"Type":"AWS::SSM::Parameter::Value<String>"}},"Resources":{}}"#
            .into();
    assert_eq!(deploy_against(matching_stack(), live, ssm_typed).await.2, 1);
    // --force makes a change set whatever the stack is (CloudFormation found nothing to do).
    let describe = mock!(Client::describe_stacks).then_output(|| {
        DescribeStacksOutput::builder()
            .stacks(matching_stack())
            .build()
    });
    let [create, no_changes, delete_cs] = change_set_without_changes();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &no_changes, &delete_cs, &no_leftovers()]
    );
    let s = stacks(client);
    let found = s.look(&protected, true).await.unwrap();
    let report = s
        .deploy_found(
            &protected,
            found,
            &DeployOptions {
                force: true,
                action: Action::Apply,
            },
            &mut |_: &Event| {},
        )
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, create.num_calls()),
        (Outcome::NoChanges, 1)
    );
}

#[tokio::test]
async fn a_wait_past_its_timeout_gives_up_saying_the_operation_goes_on_in_aws() {
    // An update that never ends, as far as this deploy can wait.
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateInProgress))
        .repeatedly()
        .build();
    let stack_events = mock!(Client::describe_stack_events)
        .sequence()
        .output(|| events(vec![]))
        .repeatedly()
        .build();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &stack_events]
    );
    let mut s = stacks(client);
    s.poll = Duration::from_millis(1);
    s.max_poll = Duration::from_millis(5);
    s.timeout = Duration::from_millis(50);
    let err = s
        .wait(
            NAME,
            NAME,
            &Operation::default(),
            Expect::Done,
            &mut |_: &Event| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TimedOut { ref status, .. } if status == "UPDATE_IN_PROGRESS"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("gave up waiting for the operation of stack catalog-sandbox after 50ms (--timeout): it is still UPDATE_IN_PROGRESS"),
        "{text}"
    );
    assert!(text.contains("the operation goes on in AWS"), "{text}");
}

#[tokio::test]
async fn branches_gc_goes_on_past_a_stack_it_cannot_delete_and_reports_it() {
    use deployer::commands::branches::{BranchStack, remove};
    const STUCK: &str = "catalog-br-stuck-0000000000";
    const GONE: &str = "catalog-br-gone-1111111111";
    let exists = |name: &'static str| {
        move || {
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_name(name)
                        .stack_status(StackStatus::CreateComplete)
                        .creation_time(DateTime::from(SystemTime::now()))
                        .build(),
                )
                .build()
        }
    };
    let stuck_describe = mock!(Client::describe_stacks)
        .match_requests(|r| r.stack_name() == Some(STUCK))
        .then_output(exists(STUCK));
    let stuck_delete = mock!(Client::delete_stack)
        .match_requests(|r| r.stack_name() == Some(STUCK))
        .then_error(|| {
            aws_sdk_cloudformation::operation::delete_stack::DeleteStackError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("User is not authorized to perform: cloudformation:DeleteStack")
                    .build(),
            )
        });
    // The listing described both: each is deleted without a second look, then watched by id.
    let gone_describe = mock!(Client::describe_stacks)
        .match_requests(|r| r.stack_name() == Some(GONE))
        .then_error(no_stack);
    let gone_delete = mock!(Client::delete_stack)
        .match_requests(|r| r.stack_name() == Some(GONE))
        .then_output(|| {
            aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
        });
    let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &stuck_describe,
            &stuck_delete,
            &gone_describe,
            &gone_delete,
            &stack_events
        ]
    );
    // The secret of the stack that went goes after it; the other's stays with its stack.
    let secret_deleted = mock!(aws_sdk_ssm::Client::delete_parameter)
        .match_requests(|r| r.name() == Some("/catalog/sandbox/gone/jwt-secret"))
        .then_output(|| {
            aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput::builder().build()
        });
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&secret_deleted]);
    let row = |stack: &str, branch: &str| BranchStack {
        stack: stack.into(),
        id: stack.into(),
        secret: format!(
            "/catalog/sandbox/{}/jwt-secret",
            branch.trim_start_matches("feat/")
        ),
        branch: branch.into(),
        tag: branch.into(),
        status: "CREATE_COMPLETE".into(),
        created: String::new(),
        age_hours: 1,
    };
    let report = remove(
        &stacks(client),
        &ssm,
        vec![row(STUCK, "feat/stuck"), row(GONE, "feat/gone")],
        &["main".to_string()],
        168,
        false,
        &mut |_: &Event| {},
    )
    .await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, STUCK);
    assert!(report.failed[0].1.contains("AccessDenied"), "{report:?}");
    assert_eq!(
        report
            .removed
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        [GONE],
        "the failure did not stop the next deletion"
    );
    assert_eq!(
        stuck_describe.num_calls(),
        0,
        "no second look before deleting"
    );
    assert_eq!(secret_deleted.num_calls(), 1, "the removed branch's secret");
}

#[tokio::test]
async fn events_are_the_operations_own_across_pages_whatever_the_local_clock_says() {
    use std::sync::{Arc, Mutex};
    // The server's clock is ten minutes behind this machine's.
    let server = |minutes_ago: u64| {
        DateTime::from(SystemTime::now() - Duration::from_secs(60 * minutes_ago))
    };
    let token: Arc<Mutex<Option<String>>> = Arc::default();
    let describe =
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateComplete));
    let create = mock!(Client::create_change_set)
        .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
    let ready = mock!(Client::describe_change_set).then_output(move || {
        let mut out = change_set_ready();
        out.creation_time = Some(server(10));
        out
    });
    let sent = token.clone();
    let execute = mock!(Client::execute_change_set)
        .match_requests(move |r| {
            *sent.lock().unwrap() = r.client_request_token().map(str::to_string);
            true
        })
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let ev = move |id: &str, logical: &str, status: ResourceStatus, at: u64, by: Option<String>| {
        let mut e = event(id, logical, "AWS::DynamoDB::Table", status, None);
        e.timestamp = Some(server(at));
        e.client_request_token = by;
        e
    };
    let ours = token.clone();
    let newest = mock!(Client::describe_stack_events)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            let ours = ours.lock().unwrap().clone();
            let mut page = events(vec![
                ev("e5", NAME, ResourceStatus::UpdateComplete, 8, ours),
                ev(
                    "e4",
                    "Other",
                    ResourceStatus::UpdateComplete,
                    8,
                    Some("someone-else".into()),
                ),
            ]);
            page.next_token = Some("p2".into());
            page
        });
    let ours = token.clone();
    let older = mock!(Client::describe_stack_events)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(move || {
            let ours = ours.lock().unwrap().clone();
            events(vec![
                ev(
                    "e3",
                    "Table",
                    ResourceStatus::UpdateComplete,
                    9,
                    ours.clone(),
                ),
                ev("e2", "Table", ResourceStatus::UpdateInProgress, 9, ours),
                ev("e1", "Table", ResourceStatus::CreateComplete, 60, None),
            ])
        });
    let leftovers = no_leftovers();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &leftovers, &describe, &create, &ready, &execute, &newest, &older
        ]
    );
    let mut seen: Vec<String> = vec![];
    let report = stacks(client)
        .deploy(&spec(), &mut |e: &Event| {
            seen.push(format!("{} {}", e.logical_id, e.status))
        })
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Updated);
    assert!(
        token.lock().unwrap().is_some(),
        "the execution carries a token"
    );
    assert_eq!(
        seen,
        [
            "Table UPDATE_IN_PROGRESS",
            "Table UPDATE_COMPLETE",
            "catalog-sandbox UPDATE_COMPLETE"
        ],
        "oldest first, across both pages, none of another operation's"
    );
}

/// Two deploys of one stack at once, as AWS answers the one that comes second: its change set
/// name is taken (AlreadyExistsException), so it waits for the other's change set to run, finds
/// the stack updating, waits for that, and then finds it already as asked.
#[tokio::test]
async fn a_deploy_that_meets_another_gives_way_and_finds_the_work_done() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateComplete)) // first look: another template
        .output(|| stack(StackStatus::UpdateInProgress)) // after giving way: the other runs
        .output(|| stack(StackStatus::UpdateInProgress)) // waiting for it
        .output(|| {
            DescribeStacksOutput::builder()
                .stacks(matching_stack())
                .build()
        })
        .repeatedly()
        .build();
    let taken = mock!(Client::create_change_set).then_error(|| {
        CreateChangeSetError::AlreadyExistsException(
            AlreadyExistsException::builder()
                .message("ChangeSet [deployer-change] already exists")
                .meta(
                    ErrorMetadata::builder()
                        .code("AlreadyExistsException")
                        .message("ChangeSet [deployer-change] already exists")
                        .build(),
                )
                .build(),
        )
    });
    let theirs_ran = mock!(Client::list_change_sets).then_output(|| {
        ListChangeSetsOutput::builder()
            .summaries(
                ChangeSetSummary::builder()
                    .change_set_name("deployer-change")
                    .status(ChangeSetStatus::CreateComplete)
                    .execution_status(ExecutionStatus::ExecuteInProgress)
                    .build(),
            )
            .build()
    });
    let template = mock!(Client::get_template)
        .then_output(|| GetTemplateOutput::builder().template_body("{}").build());
    let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &taken, &theirs_ran, &template, &stack_events]
    );
    let mut notes = vec![];
    let report = stacks(client)
        .deploy(&spec(), &mut |e: &Event| {
            notes.push(e.reason.clone().unwrap_or_default())
        })
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::NoChanges);
    assert_eq!(taken.num_calls(), 1);
    assert!(
        notes[0].contains("another deploy is changing this stack (AlreadyExistsException"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("another operation on this stack is running"),
        "{notes:?}"
    );
}

/// The other order: our change set is deleted by the other deploy before we execute it
/// (ChangeSetNotFoundException); we make it again and run it.
#[tokio::test]
async fn a_change_set_cleared_by_another_deploy_is_made_again() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateComplete))
        .output(|| stack(StackStatus::UpdateComplete))
        .output(|| stack(StackStatus::UpdateComplete))
        .repeatedly()
        .build();
    let create = mock!(Client::create_change_set)
        .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
    let ready = mock!(Client::describe_change_set).then_output(change_set_ready);
    let execute = mock!(Client::execute_change_set)
        .sequence()
        .error(|| {
            ExecuteChangeSetError::ChangeSetNotFoundException(
                ChangeSetNotFoundException::builder()
                    .message("ChangeSet [cs] does not exist")
                    .build(),
            )
        })
        .output(|| ExecuteChangeSetOutput::builder().build())
        .build();
    let delete_cs =
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
    let stack_events = mock!(Client::describe_stack_events).then_output(|| events(vec![]));
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &describe,
            &create,
            &ready,
            &execute,
            &delete_cs,
            &stack_events,
            &no_leftovers()
        ]
    );
    let report = stacks(client)
        .deploy(&spec(), &mut |_: &Event| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Updated);
    assert_eq!((create.num_calls(), execute.num_calls()), (2, 2));
}

/// A nested stack's events are followed as its resource appears, shown under its logical id, and
/// the failure named is the resource that failed inside it, not the nested stack.
#[tokio::test]
async fn nested_stacks_events_are_followed_and_their_failure_named() {
    const CHILD: &str =
        "arn:aws:cloudformation:us-east-1:222222222222:stack/catalog-sandbox-Db-1/2";
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack(StackStatus::UpdateComplete))
        .output(|| stack(StackStatus::UpdateRollbackComplete))
        .build();
    let parent = mock!(Client::describe_stack_events)
        .match_requests(|r| r.stack_name() != Some(CHILD))
        .then_output(|| {
            let mut db = event(
                "p2",
                "Db",
                "AWS::CloudFormation::Stack",
                ResourceStatus::UpdateFailed,
                Some("Embedded stack catalog-sandbox-Db-1 was not successfully updated"),
            );
            db.physical_resource_id = Some(CHILD.into());
            let mut started = db.clone();
            started.event_id = Some("p1".into());
            started.resource_status = Some(ResourceStatus::UpdateInProgress);
            started.resource_status_reason = None;
            events(vec![db, started])
        });
    let child = mock!(Client::describe_stack_events)
        .match_requests(|r| r.stack_name() == Some(CHILD))
        .then_output(|| {
            let mut table = event(
                "c1",
                "Table",
                "AWS::DynamoDB::Table",
                ResourceStatus::UpdateFailed,
                Some("Cannot change the key schema"),
            );
            table.stack_id = Some(CHILD.into());
            events(vec![table])
        });
    let [create, ready, execute] = change_set_accepted();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &describe,
            &parent,
            &child,
            &create,
            &ready,
            &execute,
            &no_leftovers()
        ]
    );
    let mut shown = vec![];
    let err = stacks(client)
        .deploy(&spec(), &mut |e: &Event| {
            shown.push(format!("{} {}", e.logical_id, e.status))
        })
        .await
        .unwrap_err();
    assert_eq!(
        shown,
        [
            "Db UPDATE_IN_PROGRESS",
            "Db UPDATE_FAILED",
            "Db/Table UPDATE_FAILED"
        ]
    );
    assert!(
        err.to_string()
            .contains("resource Db/Table (AWS::DynamoDB::Table) went UPDATE_FAILED: Cannot change the key schema"),
        "{err}"
    );
}

/// A Modify row comes with its properties, as DescribeChangeSet with IncludePropertyValues gives
/// them (the emulator gives no details): each property once, the values before and after, and
/// whether it replaces the resource.
#[tokio::test]
async fn a_diff_shows_each_changed_property_with_its_values_before_and_after() {
    use aws_sdk_cloudformation::types::{
        RequiresRecreation, ResourceAttribute, ResourceChangeDetail, ResourceTargetDefinition,
    };
    let describe =
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateComplete));
    let create = mock!(Client::create_change_set)
        .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
    let target = |path: &str, recreation, before: &str, after: &str| {
        ResourceChangeDetail::builder()
            .target(
                ResourceTargetDefinition::builder()
                    .attribute(ResourceAttribute::Properties)
                    .name(path.rsplit('/').next().unwrap())
                    .path(path)
                    .requires_recreation(recreation)
                    .before_value(before)
                    .after_value(after)
                    .build(),
            )
            .build()
    };
    let rows = mock!(Client::describe_change_set)
        .match_requests(|r| r.include_property_values() == Some(true))
        .then_output(move || {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .changes(
                    Change::builder()
                        .r#type(ChangeType::Resource)
                        .resource_change(
                            ResourceChange::builder()
                                .action(ChangeAction::Modify)
                                .logical_resource_id("QueryFunction")
                                .resource_type("AWS::Lambda::Function")
                                .details(target(
                                    "/Properties/MemorySize",
                                    RequiresRecreation::Never,
                                    "256",
                                    "512",
                                ))
                                // The same property again, caused by a parameter: shown once.
                                .details(target(
                                    "/Properties/MemorySize",
                                    RequiresRecreation::Never,
                                    "256",
                                    "512",
                                ))
                                .details(target(
                                    "/Properties/FunctionName",
                                    RequiresRecreation::Always,
                                    "catalog-sandbox-query",
                                    "catalog-sandbox-reader",
                                ))
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let delete =
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
    let leftovers = no_leftovers();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&leftovers, &describe, &create, &rows, &delete]
    );
    let changes = stacks(client)
        .diff(&spec(), &mut |_: &Event| {})
        .await
        .unwrap()
        .expect("the stack differs");
    assert_eq!(rows.num_calls(), 1, "the rows were asked with their values");
    let properties = &changes[0].properties;
    assert_eq!(properties.len(), 2, "{properties:?}");
    let text = deployer::display::changes_text(&changes, deployer::display::Stream::Stdout);
    assert!(
        text.contains("~ Properties.MemorySize: 256 -> 512\n")
            && text.contains(
                "~ Properties.FunctionName: catalog-sandbox-query -> catalog-sandbox-reader (replaces the resource)"
            ),
        "{text}"
    );
}
