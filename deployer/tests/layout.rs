//! The source's layout rule: no module imports one that imports it back, directly or through
//! others; in the deployer and in the app alike.

mod common;

use common::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `src` (`stack::wait` for `src/stack/wait.rs`, `stack` for its `mod.rs`) and its
/// code, tests left out: a test may reach anywhere.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            found.insert(parts.join("::"), code);
        }
    }
    found
}

/// The paths `text` names after `prefix` (`crate::stack::wait::in_progress` gives
/// `stack::wait::in_progress`).
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter(|(i, _)| {
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
        .map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let end = rest
                .find(|c: char| {
                    !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
                })
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches(':')
        })
        .collect()
}

/// The module among `known` that `path` is in: its longest prefix that is one.
fn module_of(path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| known.contains_key(m))
}

#[test]
fn no_module_of_the_deployer_imports_one_that_imports_it_back() {
    no_cycle_in("deployer/src", "stack::wait");
}

#[test]
fn no_module_of_the_app_imports_one_that_imports_it_back() {
    no_cycle_in("app/src", "domain::user");
}

/// Fails naming the cycle where a module of the crate at `src` (which has the module `known`,
/// so that a wrong path cannot pass by finding nothing) uses one that leads back to it.
fn no_cycle_in(src: &str, known: &str) {
    let modules = modules(&repo_root().join(src));
    assert!(modules.contains_key(known), "{:?}", modules.keys());
    let mut uses: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, code) in &modules {
        let top = matches!(name.as_str(), "lib" | "main");
        let parent = name.rsplit_once("::").map(|(p, _)| p);
        let mut named: Vec<String> = paths_after(code, "crate::")
            .into_iter()
            .map(String::from)
            .collect();
        // `super::x` is the parent's `x`, or the parent itself where `x` is an item of it.
        for path in paths_after(code, "super::") {
            let full = match parent {
                Some(p) => format!("{p}::{path}"),
                None => path.to_string(),
            };
            named.push(match module_of(&full, &modules) {
                Some(m) => m,
                None => parent.unwrap_or("lib").to_string(),
            });
        }
        // A child module named by its own name (`cache::Entry`).
        for line in code.lines() {
            let line = line.trim_start().trim_start_matches("pub ");
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            if let Some(child) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';'))
                && !paths_after(code, &format!("{child}::")).is_empty()
            {
                named.push(if top {
                    child.to_string()
                } else {
                    format!("{name}::{child}")
                });
            }
        }
        let targets = uses.entry(name).or_default();
        for path in named {
            if let Some(m) = module_of(&path, &modules)
                && m != *name
            {
                targets.insert(m);
            }
        }
    }
    // A path back to a module from one it uses is a cycle.
    for (from, targets) in &uses {
        for to in targets {
            let mut seen = BTreeSet::new();
            let mut trail = vec![(to.clone(), vec![from.to_string(), to.clone()])];
            while let Some((at, path)) = trail.pop() {
                if !seen.insert(at.clone()) {
                    continue;
                }
                for next in uses.get(at.as_str()).into_iter().flatten() {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    assert!(
                        next != from,
                        "an import cycle in {src}: {} (each uses the next)",
                        longer.join(" -> ")
                    );
                    trail.push((next.clone(), longer));
                }
            }
        }
    }
}
