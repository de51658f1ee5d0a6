//! Static checks of the selected feature files, without a cluster (`hadrill check`, and every
//! run before anything starts): each file reads as UTF-8 Gherkin ([`super::features`]), every
//! step resolves to exactly one step definition, and each scenario's steps make sense in their
//! order, with the faults and manifests they name valid ([`super::plan`]). Every problem names
//! its file, line and what is expected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cucumber::World as _;
use cucumber::gherkin;

use super::features;
use super::plan::{Planner, Resolved, ScenarioPlan};
use crate::HadrillWorld;
use crate::steps::catalog::CATALOG;

/// Something wrong in a feature file.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Feature file.
    pub file: PathBuf,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The step as written, when the problem is a step's.
    pub step: String,
    /// What is wrong and what is expected.
    pub reason: String,
    /// Closest documented steps.
    pub suggestions: Vec<String>,
}

impl Problem {
    /// A problem at a place in `file`.
    pub fn at(file: &Path, line: usize, column: Option<usize>, reason: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            line,
            column,
            step: String::new(),
            reason: reason.into(),
            suggestions: Vec::new(),
        }
    }

    /// A problem of `step` in `file`.
    pub fn step(file: &Path, step: &gherkin::Step, reason: impl Into<String>) -> Problem {
        Problem {
            step: format!("{}{}", step.keyword, step.value),
            ..Problem::at(file, step.position.line, Some(step.position.col), reason)
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(c) = self.column {
            write!(f, ":{c}")?;
        }
        if self.step.is_empty() {
            write!(f, ": {}", self.reason)?;
        } else {
            write!(f, ": {} — {}", self.step.trim(), self.reason)?;
        }
        if !self.suggestions.is_empty() {
            write!(f, "\n    closest steps:")?;
            for s in &self.suggestions {
                write!(f, "\n      {s}")?;
            }
        }
        Ok(())
    }
}

/// The `.feature` files a run or a check reads: those under each of `roots` (the repository's
/// `features/` when none is named); an error when there are none.
pub fn selected_feature_files(roots: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let roots = if roots.is_empty() { vec![super::default_features_dir()] } else { roots.to_vec() };
    let mut files = Vec::new();
    for root in &roots {
        files.extend(feature_files(root)?);
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no .feature files under {}",
        roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(files)
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

/// The checked features: those that could be read (outlines expanded), each scenario's plan,
/// and every problem found.
#[derive(Debug)]
pub struct Checked {
    /// The features read, in file order.
    pub features: Vec<gherkin::Feature>,
    /// The plan of every scenario whose steps all resolve.
    pub plans: Vec<ScenarioPlan>,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
}

/// Checks every feature file of `paths` (and no other file).
pub fn check(paths: &[PathBuf]) -> anyhow::Result<Checked> {
    let (features, mut problems) = features::load(paths);
    let collection = HadrillWorld::collection();
    let planner = Planner::new()?;
    let mut plans = Vec::new();
    for feature in &features {
        let file = feature.path.clone().unwrap_or_default();
        let top = feature.scenarios.iter().map(|s| (None, s));
        let ruled = feature.rules.iter().flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s)));
        for (rule, scenario) in top.chain(ruled) {
            let backgrounds = feature.background.iter().chain(rule.and_then(|r| r.background.as_ref()));
            let mut resolved = Vec::new();
            let mut all = true;
            for step in backgrounds.flat_map(|b| b.steps.iter()).chain(scenario.steps.iter()) {
                let reason = match collection.find(step) {
                    Ok(Some((_, _, location, context))) => {
                        resolved.push(Resolved { step, location, context });
                        continue;
                    }
                    Ok(None) => "no step definition matches".to_string(),
                    Err(e) => format!("ambiguous: {} step definitions match", e.possible_matches.len()),
                };
                all = false;
                problems.push(Problem { suggestions: closest(&step.value, 3), ..Problem::step(&file, step, reason) });
            }
            // Order and arguments are judged only when every step is known.
            if all {
                let mut plan = planner.scenario(&file, feature, scenario, &resolved, &mut problems);
                let rule_tags = rule.iter().flat_map(|r| r.tags.iter());
                plan.tags = feature.tags.iter().chain(rule_tags).chain(scenario.tags.iter()).cloned().collect();
                plans.push(plan);
            }
        }
    }
    // A Background's problem shows once, not once per scenario.
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert(p.to_string()));
    Ok(Checked { features, plans, problems })
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
        let feature = gherkin::Feature::parse(src, gherkin::GherkinEnv::default()).expect("parses");
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
        let problems = check(&[f]).unwrap().problems;
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 4);
        assert!(problems[0].suggestions[0].contains("the cluster lists 3 nodes"), "{:?}", problems[0].suggestions);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
