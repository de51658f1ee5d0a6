//! Reading the selected feature files, and only those. A file that cannot be used is a
//! [`Problem`] at its line and column: bytes that are not UTF-8, text that is not Gherkin, an
//! outline whose Examples do not fill its placeholders, a feature without a scenario. Scenario
//! Outlines are expanded here, one scenario per Examples row, as cucumber runs them.

use std::path::{Path, PathBuf};

use cucumber::feature::Ext as _;
use cucumber::gherkin::{self, GherkinEnv};

use super::check::Problem;

/// The features of `files` that could be read, outlines expanded, and the problems of the rest.
pub fn load(files: &[PathBuf]) -> (Vec<gherkin::Feature>, Vec<Problem>) {
    let mut features = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match load_one(file) {
            Ok(f) => features.push(f),
            Err(p) => problems.push(p),
        }
    }
    (features, problems)
}

/// One feature file, read, parsed and expanded.
fn load_one(file: &Path) -> Result<gherkin::Feature, Problem> {
    let bytes = std::fs::read(file).map_err(|e| Problem::at(file, 0, None, format!("cannot read the file: {e}")))?;
    if let Err(e) = std::str::from_utf8(&bytes) {
        let (line, column) = line_col(&bytes[..e.valid_up_to()]);
        let byte = bytes[e.valid_up_to()];
        return Err(Problem::at(
            file,
            line,
            Some(column),
            format!(
                "not UTF-8: byte 0x{byte:02X} (file offset {}) is not a UTF-8 character; save the file as UTF-8",
                e.valid_up_to()
            ),
        ));
    }
    let feature = gherkin::Feature::parse_path(file, GherkinEnv::default()).map_err(|e| gherkin_problem(file, &e))?;
    for scenario in feature.scenarios.iter().chain(feature.rules.iter().flat_map(|r| r.scenarios.iter())) {
        if is_outline(scenario) && scenario.examples.iter().all(|e| e.table.as_ref().is_none_or(|t| t.rows.len() < 2)) {
            return Err(Problem::at(
                file,
                scenario.position.line,
                Some(scenario.position.col),
                format!(
                    "{}: {:?} has no Examples rows: add `Examples:` with a header row naming its <placeholders> and \
                     one row per scenario",
                    scenario.keyword, scenario.name
                ),
            ));
        }
    }
    let feature = feature.expand_examples().map_err(|e| {
        Problem::at(
            file,
            e.pos.line,
            Some(e.pos.col),
            format!(
                "<{}> has no column in the outline's Examples: add a column named {} to its header",
                e.name, e.name
            ),
        )
    })?;
    if feature.count_scenarios() == 0 {
        let what = if feature.background.is_some() { "only a Background" } else { "no scenario" };
        return Err(Problem::at(
            file,
            feature.position.line,
            Some(feature.position.col),
            format!(
                "feature {:?} has {what}: a Background only prepares scenarios, nothing would run; add a Scenario",
                feature.name
            ),
        ));
    }
    Ok(feature)
}

/// Whether `scenario` is a Scenario Outline (or Template), whose steps hold `<placeholders>`.
fn is_outline(scenario: &gherkin::Scenario) -> bool {
    scenario.keyword.contains("Outline") || scenario.keyword.contains("Template")
}

/// 1-based line and column just after `prefix`.
fn line_col(prefix: &[u8]) -> (usize, usize) {
    let line = prefix.iter().filter(|b| **b == b'\n').count() + 1;
    let start = prefix.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&prefix[start..]).chars().count() + 1;
    (line, column)
}

/// A Gherkin parse error at its line and column, with the line's text and what the parser
/// expected there.
fn gherkin_problem(file: &Path, e: &gherkin::ParseFileError) -> Problem {
    match e {
        gherkin::ParseFileError::Reading { source, .. } => {
            Problem::at(file, 0, None, format!("cannot read the file: {source}"))
        }
        gherkin::ParseFileError::Parsing { error, source, .. } => {
            // The position's fields are private; its message is `Error at LINE:COL: {expected}`.
            let text = source.to_string();
            let (position, expected) = text.strip_prefix("Error at ").and_then(|r| r.split_once(": ")).unzip();
            let (mut line, mut column) = position
                .and_then(|p| p.split_once(':'))
                .and_then(|(l, c)| Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?)))
                .unwrap_or((0, 0));
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut written =
                text.lines().nth(line.saturating_sub(1)).map(|l| l.trim().to_string()).unwrap_or_default();
            // The parser often gives up at the end of the file; the line it could not read is
            // then the first one among steps that is not Gherkin.
            if written.is_empty()
                && let Some((l, c, w)) = stray_line(&text)
            {
                (line, column, written) = (l, c, w);
            }
            // The parser points past the end of a line it could not read; its start is clearer.
            let raw = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
            if column > raw.chars().count() && !written.is_empty() {
                column = raw.chars().take_while(|c| c.is_whitespace()).count() + 1;
            }
            let mut reason = format!("not valid Gherkin at {written:?}");
            if let Some(env) = error {
                reason.push_str(&format!(": {env}"));
            }
            let mut tokens: Vec<String> = expected
                .unwrap_or_default()
                .trim_matches(|c| c == '{' || c == '}')
                .split(", ")
                .map(|t| t.trim_matches('"').trim_matches('\\').trim_matches('"').to_string())
                .filter(|t| t.chars().any(char::is_alphanumeric))
                .collect();
            tokens.sort();
            tokens.dedup();
            if !tokens.is_empty() && error.is_none() {
                reason.push_str(&format!(" (the parser expected: {})", tokens.join(", ")));
            }
            reason.push_str(
                "; expected a step (Given, When, Then, And, But), a table row (|), or a section keyword \
                 (Scenario:, Scenario Outline:, Examples:, Background:, Rule:)",
            );
            Problem::at(file, line, (column > 0).then_some(column), reason)
        }
    }
}

/// Keywords a line among steps may start with (English Gherkin).
const STEP_SECTION_KEYWORDS: &[&str] = &[
    "Given ",
    "When ",
    "Then ",
    "And ",
    "But ",
    "* ",
    "Scenario:",
    "Scenario Outline:",
    "Scenario Template:",
    "Example:",
    "Examples:",
    "Scenarios:",
    "Background:",
    "Rule:",
    "Feature:",
    "|",
    "#",
    "@",
    "\"\"\"",
    "```",
];

/// The first line after a step that starts with no Gherkin keyword (free text is allowed only
/// as a description, before a section's first step), with its column and text.
fn stray_line(text: &str) -> Option<(usize, usize, String)> {
    let mut in_steps = false;
    let mut in_docstring = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("\"\"\"") || line.starts_with("```") {
            in_docstring = !in_docstring;
            continue;
        }
        if in_docstring || line.is_empty() {
            continue;
        }
        match STEP_SECTION_KEYWORDS.iter().find(|k| line.starts_with(**k)) {
            Some(k) if ["Given ", "When ", "Then ", "And ", "But ", "* "].contains(k) => in_steps = true,
            Some(k) if k.ends_with(':') => in_steps = false,
            Some(_) => {}
            None if in_steps => {
                let column = raw.chars().take_while(|c| c.is_whitespace()).count() + 1;
                return Some((i + 1, column, line.to_string()));
            }
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stray_line_among_steps_is_found_but_descriptions_are_not_stray() {
        let text =
            "Feature: f\n  free text\n  Scenario: s\n    a description\n    Given x\n      | a |\n    Scenari: oops\n";
        assert_eq!(stray_line(text), Some((7, 5, "Scenari: oops".to_string())));
        assert_eq!(stray_line("Feature: f\n  Scenario: s\n    Given x\n    \"\"\"\n    any text\n    \"\"\"\n"), None);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(line_col(b""), (1, 1));
        assert_eq!(line_col(b"ab\ncd"), (2, 3));
        assert_eq!(line_col("a\n\u{e9}x".as_bytes()), (2, 3));
    }
}
