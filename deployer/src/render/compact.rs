//! Templates handed to handlebars without their literal text. The parser (pest, through
//! handlebars) walks literal text a character at a time and asks each element for its line and
//! column from the start of the file, so its cost grows with the square of the template's size;
//! our templates are mostly literal JSON. Each literal run is swapped for a short marker (keeping
//! the whitespace at its ends, which handlebars' `~` and standalone-line rules look at), and the
//! render's output gets the text back. Positions handlebars reports are mapped back to the file's
//! own.

/// Opens and closes a marker: private-use characters, refused in templates (see `compact`).
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Compacted {
    /// What handlebars parses.
    pub source: String,
    literals: Vec<String>,
    /// For each piece of `source` in order: where it starts there, where it starts in the
    /// original, and whether it is a marker (whose every position maps to the literal's start).
    pieces: Vec<(usize, usize, bool)>,
}

/// `text` with its literal runs swapped for markers, or None when it uses what this does not
/// follow (escaped `\{{`, raw blocks, or the marker characters): it is then parsed as it is.
pub fn compact(text: &str) -> Option<Compacted> {
    if text.contains("\\{{") || text.contains("{{{{") || text.contains([OPEN, CLOSE]) {
        return None;
    }
    let mut c = Compacted {
        source: String::with_capacity(text.len() / 4),
        literals: vec![],
        pieces: vec![],
    };
    let mut at = 0;
    while at < text.len() {
        let (literal_end, tag_end) = match text[at..].find("{{") {
            None => (text.len(), text.len()),
            Some(i) => {
                let start = at + i;
                let rest = &text[start..];
                let close = if rest.starts_with("{{!--") {
                    "--}}"
                } else if rest.starts_with("{{{") {
                    "}}}"
                } else {
                    "}}"
                };
                // An unclosed tag: handlebars reports it, from the original text.
                let end = rest[2..].find(close)? + 2 + close.len();
                (start, start + end)
            }
        };
        c.literal(&text[at..literal_end], at);
        if literal_end < tag_end {
            c.keep(&text[literal_end..tag_end], literal_end);
        }
        at = tag_end;
    }
    Some(c)
}

impl Compacted {
    fn keep(&mut self, piece: &str, original: usize) {
        self.pieces.push((self.source.len(), original, false));
        self.source.push_str(piece);
    }

    fn literal(&mut self, run: &str, original: usize) {
        let body = run.trim_start();
        let lead = run.len() - body.len();
        let body = body.trim_end();
        if body.is_empty() {
            return self.keep(run, original);
        }
        self.keep(&run[..lead], original);
        self.pieces.push((self.source.len(), original + lead, true));
        self.source.push(OPEN);
        self.source.push_str(&self.literals.len().to_string());
        self.source.push(CLOSE);
        self.literals.push(body.to_string());
        self.keep(&run[lead + body.len()..], original + lead + body.len());
    }

    /// The rendered output with the literal text back in place of the markers. Values never
    /// hold a marker (see `shield`); anything else that looks like one is left as it is.
    pub fn restore(&self, rendered: &str) -> String {
        let mut out = String::with_capacity(rendered.len() * 4);
        let mut rest = rendered;
        while let Some(i) = rest.find(OPEN) {
            out.push_str(&rest[..i]);
            let marker = &rest[i + OPEN.len_utf8()..];
            let literal = marker.find(CLOSE).and_then(|end| {
                let index: usize = marker[..end].parse().ok()?;
                Some((self.literals.get(index)?, end))
            });
            match literal {
                Some((text, end)) => {
                    out.push_str(text);
                    rest = &marker[end + CLOSE.len_utf8()..];
                }
                None => {
                    out.push(OPEN);
                    rest = marker;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The line and column in `original` of a line and column handlebars reported (1-based).
    pub fn position(&self, original: &str, line: usize, column: usize) -> (usize, usize) {
        let offset = offset_of(&self.source, line, column);
        let piece = self
            .pieces
            .partition_point(|(start, _, _)| *start <= offset)
            .saturating_sub(1);
        let mapped = match self.pieces.get(piece) {
            Some((start, original_start, false)) => original_start + (offset - start),
            Some((_, original_start, true)) => *original_start,
            None => 0,
        };
        line_col(original, mapped.min(original.len()))
    }
}

/// JSON text (a value the render writes) with the marker characters as JSON escapes, which read
/// back as the same characters: a setting holding one can never pass for a marker.
pub fn shield(json: String) -> String {
    if json.contains([OPEN, CLOSE]) {
        json.replace(OPEN, "\\ue000").replace(CLOSE, "\\ue001")
    } else {
        json
    }
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = text
        .match_indices('\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| if line <= 1 { 0 } else { i + 1 });
    text[line_start..]
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(text.len(), |(i, _)| line_start + i)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_runs_become_markers_and_come_back() {
        let text = "{\n  \"a long key\": {{x}},\n{{#if y}}\n  \"b\": [1, 2, 3, 4, 5, 6, 7, 8]\n{{/if}}\n}\n";
        let c = compact(text).unwrap();
        assert!(c.source.len() < text.len());
        assert!(!c.source.contains("a long key"));
        // The block tag stays alone on its line, as handlebars' standalone rule wants it.
        assert!(c.source.contains("\n{{#if y}}\n"));
        assert_eq!(c.restore(&c.source), text);
    }

    #[test]
    fn reported_positions_are_the_file_s_own() {
        let text =
            "{ \"long literal\": \"padding\",\n \"v\": {{prefx}} }\n  \"next\":\n {{other}}\n";
        let c = compact(text).unwrap();
        let find = |hay: &str, needle: &str| {
            let i = hay.find(needle).unwrap();
            line_col(hay, i)
        };
        for tag in ["{{prefx}}", "{{other}}"] {
            let (line, column) = find(&c.source, tag);
            assert_eq!(c.position(text, line, column), find(text, tag), "{tag}");
        }
    }

    #[test]
    fn a_value_holding_a_marker_character_stays_a_value() {
        let text = "{ \"a long literal key\": \"{{x}}\" }";
        let c = compact(text).unwrap();
        // What the escape writes for a value that holds a marker's characters.
        let value = shield(format!("{OPEN}0{CLOSE}"));
        assert_eq!(value, "\\ue0000\\ue001");
        let rendered = c.source.replace("{{x}}", &value);
        let out = c.restore(&rendered);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["a long literal key"], format!("{OPEN}0{CLOSE}"));
        // A stray marker (a raw {{{x}}}) is left alone rather than taken for a literal.
        assert_eq!(
            c.restore(&format!("x{OPEN}99{CLOSE}y")),
            format!("x{OPEN}99{CLOSE}y")
        );
    }

    #[test]
    fn what_it_does_not_follow_is_left_as_it_is() {
        assert!(compact("a \\{{b}} c").is_none());
        assert!(compact("{{{{raw}}}} x {{{{/raw}}}}").is_none());
        assert!(compact("a \u{E000} b").is_none());
        assert!(compact("{{#if a}} never closed }").is_some());
        assert!(compact("{{unclosed").is_none());
    }
}
