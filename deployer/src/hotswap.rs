//! `deploy --branch B --hotswap`: when only the functions' code changed, the new artifact goes
//! straight into each function (Lambda UpdateFunctionCode), without a change set: seconds instead
//! of minutes, for a branch stack someone is iterating on. The stack's template then still names
//! the old artifact until the next full deploy, which is said.

use crate::artifact::Manifest;
use crate::aws::Session;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not only code changed, or there is no stack to swap into.
    #[error("{0}")]
    NotHotswappable(String),
    #[error("{action} on {target} failed: {message}")]
    Call {
        action: &'static str,
        target: String,
        message: String,
    },
}

#[derive(Debug, Serialize)]
pub struct HotswapReport {
    pub stack: String,
    pub sha256: String,
    /// Each function and the CodeSha256 Lambda reports after the update.
    pub functions: Vec<(String, String)>,
}

impl crate::output::Report for HotswapReport {
    fn human(&self) -> String {
        let mut out = format!(
            "{}: hotswapped artifact {} into {} functions, without a change set\n",
            self.stack,
            &self.sha256[..12],
            self.functions.len()
        );
        for (name, sha) in &self.functions {
            out += &format!("  {name:<36} {sha}\n");
        }
        out += "the stack now differs from its template (which names the previous artifact) until the next deploy without --hotswap\n";
        out
    }
}

/// Whether the live stack is made from `template_body` and `parameters` but for the artifact:
/// the only change a hotswap may carry.
pub async fn only_code_changed(
    session: &Session,
    stack: &str,
    template_body: &str,
    parameters: &[(String, String)],
) -> Result<(), Error> {
    use aws_sdk_cloudformation::types::TemplateStage;
    let cfn = session.cloudformation();
    let call = |action, e: String| Error::Call {
        action,
        target: stack.to_string(),
        message: e,
    };
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            if crate::stack::is_missing_stack(&e) {
                Error::NotHotswappable(format!(
                    "{stack} does not exist yet: the first deploy of a branch makes it, without --hotswap"
                ))
            } else {
                call("DescribeStacks", crate::aws::error_text(&e))
            }
        })?;
    let live = described.stacks().first().cloned().ok_or_else(|| {
        Error::NotHotswappable(format!(
            "{stack} does not exist yet: the first deploy of a branch makes it, without --hotswap"
        ))
    })?;
    let live_template = cfn
        .get_template()
        .stack_name(stack)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| call("GetTemplate", crate::aws::error_text(&e)))?;
    let as_json = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    if as_json(live_template.template_body().unwrap_or_default()) != as_json(template_body) {
        return Err(Error::NotHotswappable(format!(
            "{stack}'s template changed, not only its code: deploy without --hotswap"
        )));
    }
    fn others(params: Vec<(&str, &str)>) -> Vec<(String, String)> {
        let mut params: Vec<_> = params
            .into_iter()
            .filter(|(k, _)| *k != "ArtifactKey")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        params.sort();
        params
    }
    let live_parameters = others(
        live.parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or_default(),
                    p.parameter_value().unwrap_or_default(),
                )
            })
            .collect(),
    );
    let wanted = others(
        parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    );
    if live_parameters != wanted {
        return Err(Error::NotHotswappable(format!(
            "{stack}'s parameters changed, not only its code: deploy without --hotswap"
        )));
    }
    Ok(())
}

/// Puts the artifact (already in `bucket`) into each of `functions`, and waits for each update.
pub async fn swap(
    session: &Session,
    stack: &str,
    functions: &[String],
    bucket: &str,
    manifest: &Manifest,
) -> Result<HotswapReport, Error> {
    use aws_sdk_lambda::client::Waiters;
    let lambda = session.lambda();
    let mut done = vec![];
    for function in functions {
        let call = |action, e: String| Error::Call {
            action,
            target: function.clone(),
            message: e,
        };
        lambda
            .update_function_code()
            .function_name(function)
            .s3_bucket(bucket)
            .s3_key(manifest.s3_key())
            .send()
            .await
            .map_err(|e| call("UpdateFunctionCode", crate::aws::error_text(&e)))?;
        let updated = lambda
            .wait_until_function_updated_v2()
            .function_name(function)
            .wait(Duration::from_secs(300))
            .await
            .map_err(|e| call("GetFunction (waiting for the update)", e.to_string()))?;
        let sha = updated
            .into_result()
            .ok()
            .and_then(|f| f.configuration?.code_sha256)
            .unwrap_or_default();
        done.push((function.clone(), sha));
    }
    Ok(HotswapReport {
        stack: stack.to_string(),
        sha256: manifest.sha256.clone(),
        functions: done,
    })
}
