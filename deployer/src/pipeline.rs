//! The delivery pipeline: `pipeline deploy`, `pipeline status`, and the manual approval that
//! promotes sandbox's artifact to prod (`approve`, `reject`).
//!
//! The emulator implements neither GetPipelineState nor PutApprovalResult nor
//! ListActionExecutions: status and approvals are tested with aws-smithy-mocks.

use crate::aws::error_text;
use crate::error::Error;
use crate::output::Report;
use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ActionExecutionStatus, ApprovalResult, ApprovalStatus};
use serde::Serialize;
use std::fmt::Write as _;

fn call_error(action: &'static str, pipeline: &str, message: String) -> Error {
    Error::Aws(crate::aws::Error::Call {
        action,
        target: format!("pipeline {pipeline}"),
        message,
    })
}

#[derive(Debug, Serialize)]
pub struct StageState {
    pub stage: String,
    pub status: Option<String>,
    pub execution_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Execution {
    pub id: String,
    pub status: String,
    pub started: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub pipeline: String,
    /// The latest executions, newest first.
    pub executions: Vec<Execution>,
    pub stages: Vec<StageState>,
    /// The approval waiting for `deployer approve`, if any.
    pub pending_approval: Option<Pending>,
}

impl Report for StatusReport {
    fn human(&self) -> String {
        let mut s = format!("pipeline {}\n", self.pipeline);
        for e in &self.executions {
            let _ = writeln!(
                s,
                "  execution {} {} {}",
                e.id,
                e.status,
                e.started.as_deref().unwrap_or("")
            );
        }
        for st in &self.stages {
            let _ = writeln!(
                s,
                "  {:<16} {:<12} {}",
                st.stage,
                st.status.as_deref().unwrap_or("-"),
                st.execution_id.as_deref().unwrap_or("")
            );
        }
        match &self.pending_approval {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "waiting for approval: execution {} (artifact {}); run `deployer approve` or `deployer reject --comment ...`",
                    p.execution_id,
                    p.artifact_sha256.as_deref().unwrap_or("unknown")
                );
            }
            None => s.push_str("no approval pending\n"),
        }
        s
    }
}

/// An approval action in progress, with what it would promote.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub stage: String,
    pub action: String,
    pub execution_id: String,
    #[serde(skip)]
    pub token: String,
    pub artifact_sha256: Option<String>,
    /// A newer execution that has finished the stage before the approval (its Prepare) and
    /// waits behind this one: approving this would promote a stale build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// The change sets its Prepare action made and exported (`CHANGE_SET_<STACK>` -> name).
    pub change_sets: std::collections::BTreeMap<String, String>,
}

/// The stages of a pipeline template (rendered or deployed) that a manual approval stands
/// before: for each stage holding an Approval action, the next Deploy stage.
pub fn gated_stages(template: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let stages = template["Resources"]["Pipeline"]["Properties"]["Stages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let name = |s: &serde_json::Value| s["Name"].as_str().unwrap_or_default().to_string();
    stages
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s["Actions"].as_array().is_some_and(|actions| {
                actions
                    .iter()
                    .any(|a| a["ActionTypeId"]["Category"] == "Approval")
            })
        })
        .filter_map(|(i, _)| {
            stages[i + 1..]
                .iter()
                .map(name)
                .find(|n| n.starts_with("Deploy"))
        })
        .collect()
}

/// The pipeline stack as an update finds it.
#[derive(Clone, Copy)]
pub enum Deployed<'a> {
    /// No stack yet: a first deploy.
    None,
    /// A stack whose template is not JSON (made by hand): its approvals cannot be read.
    Unreadable,
    Template(&'a serde_json::Value),
}

/// A pipeline update that would take away an approval: refused when the pipeline updates itself
/// (its UpdatePipeline action, `caller`), so that no merge opens its own road to a protected
/// stage; allowed to a person with the pipeline account's rights, who gets the stages named.
/// A deployed template it cannot read is refused to the pipeline itself, as it cannot tell.
pub fn approvals_kept(
    deployed: Deployed,
    rendered: &serde_json::Value,
    caller: &str,
    prefix: &str,
) -> Result<Vec<String>, Error> {
    let update_action = format!(":assumed-role/{prefix}-action-update-pipeline/");
    let pipeline_itself = caller.contains(&update_action);
    let deployed = match deployed {
        Deployed::None => return Ok(vec![]),
        Deployed::Unreadable if pipeline_itself => {
            return Err(Error::Refused(
                "the pipeline stack's template is not JSON (it was deployed by other means), so the approvals it has cannot be read, and the pipeline does not update itself past them: an administrator of the pipeline account runs `deployer pipeline deploy` from this commit once".into(),
            ));
        }
        // A person with the pipeline account's rights: the caller warns that nothing was checked.
        Deployed::Unreadable => return Ok(vec![]),
        Deployed::Template(template) => template,
    };
    let kept = gated_stages(rendered);
    let dropped: Vec<String> = gated_stages(deployed)
        .into_iter()
        .filter(|s| !kept.contains(s))
        .collect();
    if !dropped.is_empty() && pipeline_itself {
        return Err(Error::Refused(format!(
            "this change removes the manual approval before {}: the pipeline does not take away its own approvals. If that is meant, an administrator of the pipeline account runs `deployer pipeline deploy` from this commit, and the pipeline then runs without it",
            dropped.join(", ")
        )));
    }
    Ok(dropped)
}

/// The variable a rollback execution sets: Build then recalls that artifact instead of
/// packaging (templates/pipeline.json.hbs declares it, default "none").
pub const ROLLBACK_VARIABLE: &str = "RollbackTo";

/// Starts an execution of the pipeline at its branch's latest commit that ships the artifact
/// `sha256` (one the stages ran before) through every stage and approval; its id.
pub async fn start_rollback(cp: &Client, pipeline: &str, sha256: &str) -> Result<String, Error> {
    // A pipeline deployed before it declared the variable would refuse it with CodePipeline's
    // own words; say what to do instead.
    let declared = cp
        .get_pipeline()
        .name(pipeline)
        .send()
        .await
        .map_err(|e| call_error("codepipeline:GetPipeline", pipeline, error_text(&e)))?
        .pipeline
        .is_some_and(|p| p.variables().iter().any(|v| v.name() == ROLLBACK_VARIABLE));
    if !declared {
        return Err(Error::Refused(format!(
            "pipeline {pipeline} declares no variable {ROLLBACK_VARIABLE}, which a rollback sets: it was deployed by an older deployer; update it with `deployer pipeline deploy` (or a merge to its branch), then roll back"
        )));
    }
    let variable = aws_sdk_codepipeline::types::PipelineVariable::builder()
        .name(ROLLBACK_VARIABLE)
        .value(sha256)
        .build()
        .expect("name and value are set");
    let started = cp
        .start_pipeline_execution()
        .name(pipeline)
        .variables(variable)
        .send()
        .await
        .map_err(|e| {
            call_error(
                "codepipeline:StartPipelineExecution",
                pipeline,
                error_text(&e),
            )
        })?;
    Ok(started.pipeline_execution_id.unwrap_or_default())
}

pub async fn status(cp: &Client, pipeline: &str) -> Result<StatusReport, Error> {
    let state = pipeline_state(cp, pipeline).await?;
    let stages = state
        .stage_states()
        .iter()
        .map(|st| StageState {
            stage: st.stage_name().unwrap_or_default().into(),
            status: st
                .latest_execution()
                .map(|e| e.status().as_str().to_string()),
            execution_id: st
                .latest_execution()
                .map(|e| e.pipeline_execution_id().to_string()),
        })
        .collect();
    let executions = cp
        .list_pipeline_executions()
        .pipeline_name(pipeline)
        .max_results(5)
        .send()
        .await
        .map_err(|e| {
            call_error(
                "codepipeline:ListPipelineExecutions",
                pipeline,
                error_text(&e),
            )
        })?
        .pipeline_execution_summaries()
        .iter()
        .map(|e| Execution {
            id: e.pipeline_execution_id().unwrap_or_default().into(),
            status: e
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            started: e.start_time().and_then(crate::stack::time_text),
        })
        .collect();
    let pending = find_pending(&state);
    let pending_approval = match pending {
        Some(p) => Some(with_artifact(cp, pipeline, p).await?),
        None => None,
    };
    Ok(StatusReport {
        pipeline: pipeline.into(),
        executions,
        stages,
        pending_approval,
    })
}

fn find_pending(
    state: &aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput,
) -> Option<Pending> {
    let stages = state.stage_states();
    stages.iter().enumerate().find_map(|(i, st)| {
        let execution_id = st.latest_execution()?.pipeline_execution_id().to_string();
        // The stage before it finished a newer execution, which now waits to enter this one.
        let superseded_by = i
            .checked_sub(1)
            .and_then(|before| stages[before].latest_execution())
            .filter(|e| {
                e.pipeline_execution_id() != execution_id
                    && e.status() == &aws_sdk_codepipeline::types::StageExecutionStatus::Succeeded
            })
            .map(|e| e.pipeline_execution_id().to_string());
        st.action_states().iter().find_map(|a| {
            let latest = a.latest_execution()?;
            (latest.status() == Some(&ActionExecutionStatus::InProgress))
                .then_some(())
                .and(latest.token())
                .map(|token| Pending {
                    stage: st.stage_name().unwrap_or_default().into(),
                    action: a.action_name().unwrap_or_default().into(),
                    execution_id: execution_id.clone(),
                    token: token.into(),
                    artifact_sha256: None,
                    superseded_by: superseded_by.clone(),
                    change_sets: Default::default(),
                })
        })
    })
}

/// The artifact sha the Build action exported for this execution.
async fn with_artifact(cp: &Client, pipeline: &str, mut p: Pending) -> Result<Pending, Error> {
    let actions = cp
        .list_action_executions()
        .pipeline_name(pipeline)
        .filter(
            aws_sdk_codepipeline::types::ActionExecutionFilter::builder()
                .pipeline_execution_id(&p.execution_id)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            call_error(
                "codepipeline:ListActionExecutions",
                pipeline,
                error_text(&e),
            )
        })?;
    let variables = actions
        .action_execution_details()
        .iter()
        .filter_map(|d| d.output()?.output_variables());
    for vars in variables {
        for (name, value) in vars {
            if name == "ARTIFACT_SHA" {
                p.artifact_sha256 = Some(value.clone());
            } else if name.starts_with("CHANGE_SET_") && !value.is_empty() {
                p.change_sets.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(p)
}

#[derive(Debug, Serialize)]
pub struct ApprovalReport {
    pub pipeline: String,
    pub execution_id: String,
    pub approved: bool,
    pub artifact_sha256: Option<String>,
}

impl Report for ApprovalReport {
    fn human(&self) -> String {
        format!(
            "{} execution {} of {} (artifact {})\n",
            if self.approved {
                "approved"
            } else {
                "rejected"
            },
            self.execution_id,
            self.pipeline,
            self.artifact_sha256.as_deref().unwrap_or("unknown")
        )
    }
}

/// The pending approval, or exit 2 when there is none.
pub async fn pending(cp: &Client, pipeline: &str) -> Result<Pending, Error> {
    let state = pipeline_state(cp, pipeline).await?;
    let Some(found) = find_pending(&state) else {
        return Err(Error::Refused(format!(
            "nothing in pipeline {pipeline} waits for approval; `deployer pipeline status` shows where each execution is"
        )));
    };
    with_artifact(cp, pipeline, found).await
}

async fn pipeline_state(
    cp: &Client,
    pipeline: &str,
) -> Result<aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput, Error> {
    cp.get_pipeline_state()
        .name(pipeline)
        .send()
        .await
        .map_err(|e| call_error("codepipeline:GetPipelineState", pipeline, error_text(&e)))
}

/// Answers the approval `p` found; a token that expired or was already used exits 2.
pub async fn decide(
    cp: &Client,
    pipeline: &str,
    p: &Pending,
    approve: bool,
    comment: &str,
) -> Result<ApprovalReport, Error> {
    if let (true, Some(newer)) = (approve, &p.superseded_by) {
        return Err(Error::Refused(format!(
            "execution {} waits at {}, but the newer execution {newer} has since been prepared and waits behind it: approving {} would promote a stale build. Reject it (`deployer reject --comment superseded`) and {newer} comes up for approval",
            p.execution_id, p.stage, p.execution_id
        )));
    }
    let result = ApprovalResult::builder()
        .status(if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        })
        .summary(comment)
        .build()
        .expect("status and summary set");
    let sent = cp
        .put_approval_result()
        .pipeline_name(pipeline)
        .stage_name(&p.stage)
        .action_name(&p.action)
        .token(&p.token)
        .result(result)
        .send()
        .await;
    match sent {
        Ok(_) => Ok(ApprovalReport {
            pipeline: pipeline.into(),
            execution_id: p.execution_id.clone(),
            approved: approve,
            artifact_sha256: p.artifact_sha256.clone(),
        }),
        Err(e) => {
            let service = e.as_service_error();
            if service.is_some_and(|se| se.is_invalid_approval_token_exception()) {
                Err(Error::Refused(format!(
                    "the approval of execution {} is no longer valid (it expired, or the execution moved on); run `deployer pipeline status` to see what waits now",
                    p.execution_id
                )))
            } else if service.is_some_and(|se| se.is_approval_already_completed_exception()) {
                Err(Error::Refused(format!(
                    "execution {} was already approved or rejected",
                    p.execution_id
                )))
            } else {
                Err(call_error(
                    "codepipeline:PutApprovalResult",
                    pipeline,
                    error_text(&e),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pipeline template with these stages, each an approval or a build action.
    fn pipeline(stages: &[&str]) -> serde_json::Value {
        let stages: Vec<_> = stages
            .iter()
            .map(|name| {
                let category = if name.starts_with("Approve") {
                    "Approval"
                } else {
                    "Build"
                };
                json!({"Name": name, "Actions": [{"ActionTypeId": {"Category": category}}]})
            })
            .collect();
        json!({"Resources": {"Pipeline": {"Properties": {"Stages": stages}}}})
    }

    const UPDATE_ACTION: &str =
        "arn:aws:sts::111111111111:assumed-role/catalog-action-update-pipeline/AWSCodeBuild-1";
    const ADMIN: &str = "arn:aws:sts::111111111111:assumed-role/admin/ann";

    #[test]
    fn an_approval_gates_the_next_deploy_stage() {
        let gated = pipeline(&[
            "Source",
            "Build",
            "DeploySandbox",
            "PrepareStaging",
            "ApproveStaging",
            "DeployStaging",
            "PrepareProd",
            "ApproveProd",
            "DeployProd",
        ]);
        assert_eq!(
            gated_stages(&gated).into_iter().collect::<Vec<_>>(),
            ["DeployProd", "DeployStaging"]
        );
        assert!(gated_stages(&json!({})).is_empty());
    }

    #[test]
    fn the_pipeline_may_not_take_away_its_own_approval_but_an_administrator_may() {
        let before = pipeline(&["Build", "DeploySandbox", "ApproveProd", "DeployProd"]);
        let after = pipeline(&["Build", "DeploySandbox", "DeployProd"]);
        let err = approvals_kept(
            Deployed::Template(&before),
            &after,
            UPDATE_ACTION,
            "catalog",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("removes the manual approval before DeployProd")
                && err.contains("`deployer pipeline deploy`"),
            "{err}"
        );
        assert_eq!(
            approvals_kept(Deployed::Template(&before), &after, ADMIN, "catalog").unwrap(),
            ["DeployProd"]
        );
        // Keeping or adding approvals, or a first deploy, is no one's concern.
        for (deployed, rendered) in [
            (Deployed::Template(&before), &before),
            (Deployed::Template(&after), &before),
            (Deployed::None, &after),
        ] {
            assert!(
                approvals_kept(deployed, rendered, UPDATE_ACTION, "catalog")
                    .unwrap()
                    .is_empty()
            );
        }
        // Another prefix's update action is a person here, not this pipeline.
        assert!(
            approvals_kept(Deployed::Template(&before), &after, UPDATE_ACTION, "orders").is_ok()
        );
        // A stack made by hand from YAML: the pipeline cannot tell what it would take away.
        let err = approvals_kept(Deployed::Unreadable, &before, UPDATE_ACTION, "catalog")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not JSON"), "{err}");
        assert!(approvals_kept(Deployed::Unreadable, &before, ADMIN, "catalog").is_ok());
    }
}
