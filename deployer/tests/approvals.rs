//! `pipeline status`, `approve` and `reject` against CodePipeline responses shaped as its API
//! reference documents them (the emulator lacks GetPipelineState, ListActionExecutions and
//! PutApprovalResult).

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
use aws_sdk_codepipeline::operation::list_pipeline_executions::ListPipelineExecutionsOutput;
use aws_sdk_codepipeline::operation::put_approval_result::{
    PutApprovalResultError, PutApprovalResultOutput,
};
use aws_sdk_codepipeline::types::{
    ActionExecution, ActionExecutionDetail, ActionExecutionOutput, ActionExecutionStatus,
    ActionState, ApprovalStatus, PipelineExecutionStatus, PipelineExecutionSummary, StageExecution,
    StageExecutionStatus, StageState,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer::error::Error;
use deployer::pipeline;

const PIPELINE: &str = "catalog";
const SHA: &str = "96c57d4f944633a8b5b11e20e78ce435a7d19ecdc5ac7480149fe63da55437b4";

fn stage(
    name: &str,
    execution: &str,
    status: StageExecutionStatus,
    action: ActionState,
) -> StageState {
    StageState::builder()
        .stage_name(name)
        .latest_execution(
            StageExecution::builder()
                .pipeline_execution_id(execution)
                .status(status)
                .build()
                .unwrap(),
        )
        .action_states(action)
        .build()
}

fn action(name: &str, status: ActionExecutionStatus, token: Option<&str>) -> ActionState {
    ActionState::builder()
        .action_name(name)
        .latest_execution(
            ActionExecution::builder()
                .status(status)
                .set_token(token.map(str::to_string))
                .build(),
        )
        .build()
}

/// ApproveProd, where execution e-1 waits with its token.
fn e1_waiting_for_approval() -> StageState {
    stage(
        "ApproveProd",
        "e-1",
        StageExecutionStatus::InProgress,
        action(
            "PromoteToProd",
            ActionExecutionStatus::InProgress,
            Some("token-e1"),
        ),
    )
}

/// Execution e-1 waits at the approval while the newer e-2 is deploying sandbox.
fn state_waiting() -> GetPipelineStateOutput {
    GetPipelineStateOutput::builder()
        .pipeline_name(PIPELINE)
        .stage_states(stage(
            "Build",
            "e-2",
            StageExecutionStatus::Succeeded,
            action("Build", ActionExecutionStatus::Succeeded, None),
        ))
        .stage_states(stage(
            "DeploySandbox",
            "e-2",
            StageExecutionStatus::InProgress,
            action("DeploySandbox", ActionExecutionStatus::InProgress, None),
        ))
        .stage_states(e1_waiting_for_approval())
        .stage_states(stage(
            "DeployProd",
            "e-0",
            StageExecutionStatus::Succeeded,
            action("DeployProd", ActionExecutionStatus::Succeeded, None),
        ))
        .build()
}

fn state_idle() -> GetPipelineStateOutput {
    GetPipelineStateOutput::builder()
        .pipeline_name(PIPELINE)
        .stage_states(stage(
            "ApproveProd",
            "e-1",
            StageExecutionStatus::Succeeded,
            action("PromoteToProd", ActionExecutionStatus::Succeeded, None),
        ))
        .build()
}

/// Three executions, newest first, as ListPipelineExecutions returns them.
fn executions() -> Rule {
    mock!(Client::list_pipeline_executions).then_output(|| {
        let summary = |id: &str, status| {
            PipelineExecutionSummary::builder()
                .pipeline_execution_id(id)
                .status(status)
                .build()
        };
        ListPipelineExecutionsOutput::builder()
            .pipeline_execution_summaries(summary("e-2", PipelineExecutionStatus::InProgress))
            .pipeline_execution_summaries(summary("e-1", PipelineExecutionStatus::InProgress))
            .pipeline_execution_summaries(summary("e-0", PipelineExecutionStatus::Succeeded))
            .build()
    })
}

fn build_outputs() -> Rule {
    mock!(Client::list_action_executions)
        .match_requests(|r| r.filter().and_then(|f| f.pipeline_execution_id()) == Some("e-1"))
        .then_output(|| {
            ListActionExecutionsOutput::builder()
                .action_execution_details(
                    ActionExecutionDetail::builder()
                        .action_name("Build")
                        .output(
                            ActionExecutionOutput::builder()
                                .output_variables("ARTIFACT_SHA", SHA)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
}

#[tokio::test]
async fn status_shows_each_stage_and_the_approval_of_the_older_execution() {
    let state = mock!(Client::get_pipeline_state).then_output(state_waiting);
    let outputs = build_outputs();
    let cp = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        [&state, &outputs, &executions()]
    );
    let report = pipeline::status(&cp, PIPELINE).await.unwrap();
    let stages: Vec<(&str, Option<&str>)> = report
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.execution_id.as_deref()))
        .collect();
    assert_eq!(
        stages,
        [
            ("Build", Some("e-2")),
            ("DeploySandbox", Some("e-2")),
            ("ApproveProd", Some("e-1")),
            ("DeployProd", Some("e-0"))
        ]
    );
    let pending = report.pending_approval.unwrap();
    assert_eq!(
        (pending.execution_id.as_str(), pending.action.as_str()),
        ("e-1", "PromoteToProd")
    );
    assert_eq!(pending.artifact_sha256.as_deref(), Some(SHA));
    let json = serde_json::to_string(&pipeline::StatusReport {
        pipeline: PIPELINE.into(),
        executions: vec![],
        stages: vec![],
        pending_approval: Some(pending),
    })
    .unwrap();
    assert!(
        !json.contains("token-e1"),
        "the token never leaves the process: {json}"
    );
}

#[tokio::test]
async fn approve_sends_the_token_of_the_pending_action() {
    let state = mock!(Client::get_pipeline_state).then_output(state_waiting);
    let outputs = build_outputs();
    let put = mock!(Client::put_approval_result)
        .match_requests(|r| {
            r.token() == Some("token-e1")
                && r.stage_name() == Some("ApproveProd")
                && r.action_name() == Some("PromoteToProd")
                && r.result().map(|x| (x.status(), x.summary()))
                    == Some((&ApprovalStatus::Approved, "ship it"))
        })
        .then_output(|| PutApprovalResultOutput::builder().build());
    let cp = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        [&state, &outputs, &put]
    );
    let pending = pipeline::pending(&cp, PIPELINE).await.unwrap();
    let report = pipeline::decide(&cp, PIPELINE, &pending, true, "ship it")
        .await
        .unwrap();
    assert!(report.approved);
    assert_eq!(
        (
            report.execution_id.as_str(),
            report.artifact_sha256.as_deref()
        ),
        ("e-1", Some(SHA))
    );
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn nothing_pending_is_refused_with_exit_2() {
    let state = mock!(Client::get_pipeline_state).then_output(state_idle);
    let cp = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, [&state]);
    let err = pipeline::pending(&cp, PIPELINE).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string()
            .contains("nothing in pipeline catalog waits for approval"),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_or_used_token_is_refused_with_exit_2() {
    use aws_sdk_codepipeline::types::error::{
        ApprovalAlreadyCompletedException, InvalidApprovalTokenException,
    };
    // As the SDK parses AWS's answers: the typed errors of PutApprovalResult.
    let invalid = || {
        PutApprovalResultError::InvalidApprovalTokenException(
            InvalidApprovalTokenException::builder()
                .message("The token is not valid")
                .build(),
        )
    };
    let completed = || {
        PutApprovalResultError::ApprovalAlreadyCompletedException(
            ApprovalAlreadyCompletedException::builder()
                .message("The approval action has already been completed")
                .build(),
        )
    };
    type Case = (&'static str, fn() -> PutApprovalResultError, &'static str);
    let cases: [Case; 2] = [
        (
            "InvalidApprovalTokenException",
            invalid,
            "is no longer valid",
        ),
        (
            "ApprovalAlreadyCompletedException",
            completed,
            "was already approved or rejected",
        ),
    ];
    for (code, error, expected) in cases {
        let state = mock!(Client::get_pipeline_state).then_output(state_waiting);
        let outputs = build_outputs();
        let put = mock!(Client::put_approval_result).then_error(error);
        let cp = mock_client!(
            aws_sdk_codepipeline,
            RuleMode::MatchAny,
            [&state, &outputs, &put]
        );
        let pending = pipeline::pending(&cp, PIPELINE).await.unwrap();
        let err = pipeline::decide(&cp, PIPELINE, &pending, false, "broken")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{code}: {err:?}");
        assert!(err.to_string().contains(expected), "{code}: {err}");
    }
}

#[tokio::test]
async fn an_answer_without_an_aws_error_code_shows_what_the_endpoint_said() {
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    // What a proxy, or an endpoint that lacks the API, sends instead of an AWS error document.
    let state = mock!(Client::get_pipeline_state).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(502).unwrap(),
            SdkBody::from(
                "<html><title>502 Bad Gateway</title><body>\n  upstream   gone</body></html>",
            ),
        )
    });
    let cp = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, [&state]);
    let err = pipeline::status(&cp, PIPELINE).await.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().ends_with(
            "codepipeline:GetPipelineState on pipeline catalog failed: HTTP 502 without an AWS error code: 502 Bad Gateway upstream gone"
        ),
        "{err}"
    );
}

/// e-1 waits at the approval; the newer e-3 has finished PrepareProd and waits behind it.
fn state_superseded() -> GetPipelineStateOutput {
    GetPipelineStateOutput::builder()
        .pipeline_name(PIPELINE)
        .stage_states(stage(
            "PrepareProd",
            "e-3",
            StageExecutionStatus::Succeeded,
            action("PrepareProd", ActionExecutionStatus::Succeeded, None),
        ))
        .stage_states(e1_waiting_for_approval())
        .build()
}

#[tokio::test]
async fn a_superseded_approval_cannot_promote_but_can_be_rejected() {
    let state = mock!(Client::get_pipeline_state).then_output(state_superseded);
    let outputs = build_outputs();
    let put = mock!(Client::put_approval_result)
        .match_requests(|r| {
            r.result().map(|x| x.status()) == Some(&ApprovalStatus::Rejected)
                && r.token() == Some("token-e1")
        })
        .then_output(|| PutApprovalResultOutput::builder().build());
    let cp = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        [&state, &outputs, &put]
    );
    let pending = pipeline::pending(&cp, PIPELINE).await.unwrap();
    assert_eq!(pending.superseded_by.as_deref(), Some("e-3"));
    let err = pipeline::decide(&cp, PIPELINE, &pending, true, "ship it")
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains(
            "the newer execution e-3 has since been prepared and waits behind it: approving e-1 would promote a stale build"
        ),
        "{err}"
    );
    assert_eq!(put.num_calls(), 0, "nothing was sent");
    let report = pipeline::decide(&cp, PIPELINE, &pending, false, "superseded")
        .await
        .unwrap();
    assert!(!report.approved);
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn the_pending_approval_names_the_change_sets_its_prepare_made() {
    let state = mock!(Client::get_pipeline_state).then_output(state_waiting);
    let outputs = mock!(Client::list_action_executions).then_output(|| {
        let detail = |action: &str, vars: &[(&str, &str)]| {
            let mut output = ActionExecutionOutput::builder();
            for (k, v) in vars {
                output = output.output_variables(*k, *v);
            }
            ActionExecutionDetail::builder()
                .action_name(action)
                .output(output.build())
                .build()
        };
        ListActionExecutionsOutput::builder()
            .action_execution_details(detail("Build", &[("ARTIFACT_SHA", SHA)]))
            .action_execution_details(detail(
                "PrepareProd",
                &[
                    ("CHANGE_SET_CATALOG", "deployer-review-1"),
                    ("CHANGE_SET_ORDERS", ""),
                ],
            ))
            .build()
    });
    let cp = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, [&state, &outputs]);
    let pending = pipeline::pending(&cp, PIPELINE).await.unwrap();
    assert_eq!(pending.artifact_sha256.as_deref(), Some(SHA));
    // An empty name: Prepare found nothing to change in that stack.
    assert_eq!(
        pending.change_sets,
        [(
            "CHANGE_SET_CATALOG".to_string(),
            "deployer-review-1".to_string()
        )]
        .into()
    );
}
