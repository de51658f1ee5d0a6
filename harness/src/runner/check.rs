//! Static checks of feature files: every step must resolve to exactly one step definition.
//! Runs without a cluster (`hadrill check`) and before every run, so an undefined or
//! ambiguous step fails with its location and the closest documented steps instead of being
//! skipped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cucumber::World as _;
use cucumber::gherkin::{self, GherkinEnv};

use crate::HadrillWorld;
use crate::steps::catalog::CATALOG;

/// A step that does not resolve.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Feature file.
    pub file: PathBuf,
    /// 1-based line of the step.
    pub line: usize,
    /// The step as written.
    pub step: String,
    /// Why it fails.
    pub reason: String,
    /// Closest documented steps.
    pub suggestions: Vec<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {} — {}", self.file.display(), self.line, self.step, self.reason)?;
        if !self.suggestions.is_empty() {
            write!(f, "\n    closest steps:")?;
            for s in &self.suggestions {
                write!(f, "\n      {s}")?;
            }
        }
        Ok(())
    }
}

/// `.feature` files under `path` (or `path` itself), sorted.
pub fn feature_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            out.extend(feature_files(&p)?);
        } else if p.extension().is_some_and(|e| e == "feature") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Checks every step of every feature in `paths`; parse errors are returned as problems too.
pub fn check(paths: &[PathBuf]) -> anyhow::Result<Vec<Problem>> {
    let collection = HadrillWorld::collection();
    let mut problems = Vec::new();
    for file in paths {
        let feature = match gherkin::Feature::parse_path(file, GherkinEnv::default()) {
            Ok(f) => f,
            Err(e) => {
                problems.push(Problem {
                    file: file.clone(),
                    line: 0,
                    step: String::new(),
                    reason: format!("not valid Gherkin: {e}"),
                    suggestions: Vec::new(),
                });
                continue;
            }
        };
        let scenarios = feature.scenarios.iter().chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()));
        let backgrounds = feature.background.iter().chain(feature.rules.iter().filter_map(|r| r.background.as_ref()));
        let steps = backgrounds.flat_map(|b| b.steps.iter()).chain(scenarios.flat_map(|s| s.steps.iter()));
        for step in steps {
            let reason = match collection.find(step) {
                Ok(Some(_)) => continue,
                Ok(None) => "no step definition matches".to_string(),
                Err(e) => format!("ambiguous: {} step definitions match", e.possible_matches.len()),
            };
            problems.push(Problem {
                file: file.clone(),
                line: step.position.line,
                step: format!("{}{}", step.keyword, step.value),
                reason,
                suggestions: closest(&step.value, 3),
            });
        }
    }
    Ok(problems)
}

/// The `n` documented steps closest to `text` (word-level edit distance).
pub fn closest(text: &str, n: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut scored: Vec<(usize, String)> = CATALOG
        .iter()
        .map(|d| {
            let example: Vec<&str> = d.example.split_whitespace().collect();
            (edit_distance(&words, &example), format!("{} {}", d.keyword, d.example))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, s)| s).collect()
}

/// Levenshtein distance over words; quoted arguments and numbers count as equal.
fn edit_distance(a: &[&str], b: &[&str]) -> usize {
    let same = |x: &str, y: &str| {
        x == y || (x.starts_with('"') && y.starts_with('"')) || (x.parse::<f64>().is_ok() && y.parse::<f64>().is_ok())
    };
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            let cost = usize::from(!same(x, y));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(keyword: &str, text: &str) -> gherkin::Step {
        let src = format!("Feature: f\n  Scenario: s\n    {keyword} {text}\n");
        let feature = gherkin::Feature::parse(src, GherkinEnv::default()).expect("parses");
        feature.scenarios[0].steps[0].clone()
    }

    #[test]
    fn every_catalogued_example_resolves_to_exactly_one_definition() {
        let collection = HadrillWorld::collection();
        for doc in CATALOG {
            let found = collection.find(&step(doc.keyword, doc.example));
            assert!(matches!(found, Ok(Some(_))), "{} {} does not resolve", doc.keyword, doc.example);
        }
    }

    #[test]
    fn every_step_definition_is_catalogued() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/steps");
        let mut definitions = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            definitions += ["#[given(", "#[when(", "#[then("].iter().map(|m| text.matches(m).count()).sum::<usize>();
        }
        assert_eq!(definitions, CATALOG.len(), "each step definition needs a catalogue entry in steps/catalog.rs");
    }

    #[test]
    fn closest_matches_rank_the_intended_step_first() {
        let s = closest("the deployment \"api\" want 3 replicas", 1);
        assert_eq!(s, vec!["Then the deployment \"web\" wants 2 replicas"]);
    }

    #[test]
    fn undefined_steps_are_reported_with_position_and_suggestions() {
        let dir = std::env::temp_dir().join(format!("hadrill-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.feature");
        std::fs::write(&f, "Feature: x\n  Scenario: y\n    Given an embedded cluster with 1 node\n    Then the cluster lists three nodes\n").unwrap();
        let problems = check(&[f]).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 4);
        assert!(problems[0].suggestions[0].contains("the cluster lists 3 nodes"), "{:?}", problems[0].suggestions);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
