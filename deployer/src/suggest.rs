//! "Did you mean": the known name closest to a mistyped one.

/// "; did you mean X?" for the known name closest to `name`, if one is close.
pub fn did_you_mean<S: AsRef<str>>(name: &str, known: impl IntoIterator<Item = S>) -> String {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(name, k.as_ref()), k))
        .filter(|(score, _)| *score > 0.9)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean {}?", k.as_ref()))
        .unwrap_or_default()
}
