//! `deployer drift ENV`: CloudFormation's drift detection on the catalog stack, waited for, with
//! each drifted resource's property differences.

use crate::output::Report;
use crate::stack::{Error, Observer, Stacks, api};
use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackResourceDriftStatus};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct DriftReport {
    pub stack: String,
    /// IN_SYNC or DRIFTED, as CloudFormation reports it.
    pub status: String,
    pub drifted: Vec<DriftedResource>,
}

impl DriftReport {
    pub fn in_sync(&self) -> bool {
        self.drifted.is_empty() && self.status == "IN_SYNC"
    }
}

#[derive(Debug, Serialize)]
pub struct DriftedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
    /// MODIFIED or DELETED.
    pub status: String,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub path: String,
    /// ADD, REMOVE or NOT_EQUAL.
    pub kind: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

impl Report for DriftReport {
    fn human(&self) -> String {
        if self.in_sync() {
            return format!("{}: in sync with its template\n", self.stack);
        }
        let mut s = format!("{}: {}\n", self.stack, self.status);
        for r in &self.drifted {
            let _ = writeln!(
                s,
                "  {} {} ({}, {})",
                r.status, r.logical_id, r.resource_type, r.physical_id
            );
            for d in &r.differences {
                let _ = writeln!(
                    s,
                    "      {} {}: expected {}, actual {}",
                    d.kind,
                    d.path,
                    d.expected.as_deref().unwrap_or("(none)"),
                    d.actual.as_deref().unwrap_or("(none)")
                );
            }
        }
        s
    }
}

/// Starts detection, waits for it (reporting progress), then lists what drifted.
pub async fn detect(
    stacks: &Stacks,
    name: &str,
    progress: &mut dyn Observer,
) -> Result<DriftReport, Error> {
    let cfn = stacks.client();
    let id = cfn
        .detect_stack_drift()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| api("DetectStackDrift", name, &e))?
        .stack_drift_detection_id
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let mut backoff = stacks.backoff();
    let status = loop {
        let out = cfn
            .describe_stack_drift_detection_status()
            .stack_drift_detection_id(&id)
            .send()
            .await
            .map_err(|e| api("DescribeStackDriftDetectionStatus", name, &e))?;
        match out.detection_status() {
            Some(StackDriftDetectionStatus::DetectionComplete) => {
                break out
                    .stack_drift_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
            }
            Some(StackDriftDetectionStatus::DetectionFailed) => {
                return Err(Error::DriftFailed {
                    stack: name.into(),
                    reason: out
                        .detection_status_reason()
                        .unwrap_or("no reason given")
                        .into(),
                });
            }
            other => {
                let status = other.map_or("DETECTION_IN_PROGRESS", |s| s.as_str());
                progress.waiting(name, status, started.elapsed());
                backoff.pause().await.map_err(|limit| Error::TimedOut {
                    stack: name.into(),
                    what: "drift detection",
                    status: status.to_string(),
                    limit,
                })?;
            }
        }
    };
    let mut drifted = vec![];
    let mut pages = cfn
        .describe_stack_resource_drifts()
        .stack_name(name)
        .stack_resource_drift_status_filters(StackResourceDriftStatus::Modified)
        .stack_resource_drift_status_filters(StackResourceDriftStatus::Deleted)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api("DescribeStackResourceDrifts", name, &e))?;
        drifted.extend(page.stack_resource_drifts().iter().map(|r| {
            DriftedResource {
                logical_id: r.logical_resource_id().unwrap_or_default().into(),
                resource_type: r.resource_type().unwrap_or_default().into(),
                physical_id: r.physical_resource_id().unwrap_or_default().into(),
                status: r
                    .stack_resource_drift_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                differences: r
                    .property_differences()
                    .iter()
                    .map(|d| Difference {
                        path: d.property_path().unwrap_or_default().into(),
                        kind: d
                            .difference_type()
                            .map(|k| k.as_str().to_string())
                            .unwrap_or_default(),
                        expected: d.expected_value().map(str::to_string),
                        actual: d.actual_value().map(str::to_string),
                    })
                    .collect(),
            }
        }));
    }
    Ok(DriftReport {
        stack: name.into(),
        status,
        drifted,
    })
}
