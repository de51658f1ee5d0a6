//! `reports/junit.xml`: one `<testsuite>` per feature, one `<testcase>` per scenario, in the
//! form CI tools read it (GitLab and Jenkins group test cases by `classname` and show the
//! `<failure message>` first):
//!
//! - `classname` = the feature's name, `name` = the scenario's name, `file` and `line` = where
//!   the scenario is written, `time` = its seconds;
//! - a failed scenario has `<failure message="...">`: the cause chain on one line (root cause
//!   first), and as its body the whole chain, one cause a line, and the failed step;
//! - a skipped scenario has `<skipped message="..."/>`: why it did not run;
//! - `<system-out>` holds its steps, each with its status and seconds, and the figures and
//!   notes logged under them.
//!
//! The data ([`Report`], [`Case`]) is plain: the runner fills it from the run (or from what an
//! interrupted run had finished), [`render`] turns it into XML, and [`write`] replaces the file
//! atomically (a temporary file renamed over it), so a reader never sees half a report and a
//! run that stops before the end leaves the previous report whole.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

/// The JUnit report of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The scenarios, in the order they finished; [`render`] groups them by feature
    /// (`classname`), features in the order they first appear.
    pub cases: Vec<Case>,
    /// Whether the run was interrupted (a signal, a lost cluster) before every selected
    /// scenario ran: the report then says so on `<testsuites>` and on every `<testsuite>`.
    pub interrupted: bool,
}

/// One scenario: a `<testcase>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    /// The feature's name (`classname`: what CI tools group by).
    pub feature: String,
    /// The scenario's name (`name`).
    pub scenario: String,
    /// The feature file, as given to the run (`file`), when known.
    pub file: Option<String>,
    /// The scenario's line in it (`line`), when known.
    pub line: Option<usize>,
    /// Its duration in seconds (`time`).
    pub seconds: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// Lines logged before its first step (a hook's notes).
    pub log: Vec<String>,
    /// Its steps, in order, with what each logged.
    pub steps: Vec<Step>,
}

/// How a scenario ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Outcome {
    /// Every step passed.
    #[default]
    Passed,
    /// A step or hook failed.
    Failed {
        /// The cause chain, root cause first, one cause a line.
        causes: Vec<String>,
        /// The failed step (`Then ...`) or hook, when known.
        step: Option<String>,
    },
    /// The scenario did not run; why (e.g. a capability the cluster lacks, an interrupted run).
    Skipped {
        /// Why it was skipped.
        message: String,
    },
}

/// One step of a scenario, as `<system-out>` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Keyword and text: `When every pod of the primary of "web" is killed`.
    pub text: String,
    /// How it ended.
    pub status: StepStatus,
    /// How long it ran, when it ran.
    pub seconds: Option<f64>,
    /// Figures and notes it logged, in order.
    pub log: Vec<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// It passed.
    Passed,
    /// It failed (the scenario's failure).
    Failed,
    /// It did not run (an earlier step failed, or it matched no step definition).
    Skipped,
}

impl Outcome {
    /// A failure from its cause chain as text, one cause a line, root cause first (the form
    /// the harness's step errors display in; any text works, its first line is the root).
    pub fn failed(chain: &str, step: Option<String>) -> Self {
        let causes = chain.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        Self::Failed { causes, step }
    }
}

impl Case {
    /// The `<failure message>`: the cause chain on one line, root cause first.
    pub fn failure_message(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Failed { causes, .. } => Some(causes.join(" ")),
            _ => None,
        }
    }
}

/// The XML of `report`.
pub fn render(report: &Report) -> String {
    let mut xml = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = write_report(&mut xml, report);
    String::from_utf8_lossy(&xml.into_inner()).into_owned()
}

/// Writes `report` to `path` atomically: into a temporary file beside it, then renamed over it.
pub fn write(path: &Path, report: &Report) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(render(report).as_bytes()).and_then(|()| f.sync_all()))
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_report(xml: &mut Writer<Vec<u8>>, report: &Report) -> std::io::Result<()> {
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut features: Vec<&str> = Vec::new();
    for c in &report.cases {
        if !features.contains(&c.feature.as_str()) {
            features.push(&c.feature);
        }
    }
    let counts = Counts::of(report.cases.iter());
    let mut root = xml.create_element("testsuites").with_attribute(("name", "hadrill"));
    root = counts.attributes(root);
    if report.interrupted {
        root = root.with_attribute(("interrupted", "true"));
    }
    root.write_inner_content(|xml| {
        for (id, feature) in features.iter().enumerate() {
            let cases: Vec<&Case> = report.cases.iter().filter(|c| c.feature == *feature).collect();
            write_suite(xml, id, feature, &cases, report.interrupted)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_suite(
    xml: &mut Writer<Vec<u8>>,
    id: usize,
    feature: &str,
    cases: &[&Case],
    interrupted: bool,
) -> std::io::Result<()> {
    let id = id.to_string();
    let mut suite =
        xml.create_element("testsuite").with_attribute(("id", id.as_str())).with_attribute(("name", feature));
    if let Some(file) = cases.iter().find_map(|c| c.file.as_deref()) {
        suite = suite.with_attribute(("file", file));
    }
    let counts = Counts::of(cases.iter().copied());
    suite = counts.attributes(suite);
    suite.write_inner_content(|xml| {
        if interrupted {
            xml.create_element("properties").write_inner_content(|xml| {
                xml.create_element("property")
                    .with_attribute(("name", "interrupted"))
                    .with_attribute(("value", "true"))
                    .write_empty()
                    .map(drop)
            })?;
        }
        for case in cases {
            write_case(xml, case)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_case(xml: &mut Writer<Vec<u8>>, case: &Case) -> std::io::Result<()> {
    let time = format!("{:.3}", case.seconds);
    let line = case.line.map(|l| l.to_string());
    let mut el = xml
        .create_element("testcase")
        .with_attribute(("classname", case.feature.as_str()))
        .with_attribute(("name", case.scenario.as_str()));
    if let Some(file) = &case.file {
        el = el.with_attribute(("file", file.as_str()));
    }
    if let Some(line) = &line {
        el = el.with_attribute(("line", line.as_str()));
    }
    el.with_attribute(("time", time.as_str())).write_inner_content(|xml| {
        match &case.outcome {
            Outcome::Passed => {}
            Outcome::Failed { causes, step } => {
                let message = case.failure_message().unwrap_or_default();
                let mut body = causes.join("\n");
                if let Some(step) = step {
                    body.push_str(&format!("\n\nfailed step: {step}"));
                }
                xml.create_element("failure")
                    .with_attribute(("message", message.as_str()))
                    .with_attribute(("type", "failure"))
                    .write_text_content(BytesText::new(&body))?;
            }
            Outcome::Skipped { message } => {
                xml.create_element("skipped").with_attribute(("message", message.as_str())).write_empty()?;
            }
        }
        let out = system_out(case);
        if !out.is_empty() {
            xml.create_element("system-out").write_text_content(BytesText::new(&out))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The steps with their status marks and, under each, what it logged.
fn system_out(case: &Case) -> String {
    let mut out = String::new();
    for l in &case.log {
        out.push_str(&format!("      {l}\n"));
    }
    for s in &case.steps {
        let mark = match s.status {
            StepStatus::Passed => "✔",
            StepStatus::Failed => "✘",
            StepStatus::Skipped => "-",
        };
        let took = s.seconds.map(|t| format!(" ({t:.3} s)")).unwrap_or_default();
        out.push_str(&format!("{mark}  {}{took}\n", s.text));
        for l in &s.log {
            out.push_str(&format!("      {l}\n"));
        }
    }
    out
}

/// The counts CI tools read from `<testsuites>` and `<testsuite>`.
struct Counts {
    tests: String,
    failures: String,
    skipped: String,
    time: String,
}

impl Counts {
    fn of<'a>(cases: impl Iterator<Item = &'a Case>) -> Counts {
        let (mut tests, mut failures, mut skipped, mut time) = (0usize, 0usize, 0usize, 0f64);
        for c in cases {
            tests += 1;
            time += c.seconds;
            match c.outcome {
                Outcome::Passed => {}
                Outcome::Failed { .. } => failures += 1,
                Outcome::Skipped { .. } => skipped += 1,
            }
        }
        Counts {
            tests: tests.to_string(),
            failures: failures.to_string(),
            skipped: skipped.to_string(),
            time: format!("{time:.3}"),
        }
    }

    fn attributes<'a, W>(
        &'a self,
        el: quick_xml::writer::ElementWriter<'a, W>,
    ) -> quick_xml::writer::ElementWriter<'a, W> {
        el.with_attribute(("tests", self.tests.as_str()))
            .with_attribute(("failures", self.failures.as_str()))
            .with_attribute(("errors", "0"))
            .with_attribute(("skipped", self.skipped.as_str()))
            .with_attribute(("time", self.time.as_str()))
    }
}

/// A `<testcase>` as a CI tool reads it back from any JUnit file (not only ours): its
/// attributes, and the messages and texts of its `<failure>`, `<skipped>` and `<system-out>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadCase {
    /// `classname` (GitLab and Jenkins group by it).
    pub classname: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `file`.
    pub file: Option<String>,
    /// `line`.
    pub line: Option<String>,
    /// `<failure message>`, when it failed.
    pub failure_message: Option<String>,
    /// The `<failure>` element's text.
    pub failure_body: Option<String>,
    /// `<skipped message>`, when it was skipped.
    pub skipped_message: Option<String>,
    /// `<system-out>`'s text.
    pub system_out: Option<String>,
}

/// Every `<testcase>` of a JUnit XML document, in document order.
pub fn read(xml: &str) -> anyhow::Result<Vec<ReadCase>> {
    use quick_xml::events::BytesStart;
    fn attr(e: &BytesStart<'_>, name: &str) -> anyhow::Result<Option<String>> {
        match e.try_get_attribute(name).context("reading an attribute")? {
            Some(a) => Ok(Some(
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0).context("unescaping an attribute")?.into_owned(),
            )),
            None => Ok(None),
        }
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut case: Option<ReadCase> = None;
    // The element whose text is being read, and its text so far.
    let mut inside: Option<(Vec<u8>, String)> = None;
    loop {
        let ev = reader.read_event().with_context(|| format!("JUnit XML at byte {}", reader.buffer_position()))?;
        let empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let read = ReadCase {
                    classname: attr(&e, "classname")?,
                    name: attr(&e, "name")?,
                    file: attr(&e, "file")?,
                    line: attr(&e, "line")?,
                    ..ReadCase::default()
                };
                if empty {
                    cases.push(read);
                } else {
                    case = Some(read);
                }
            }
            Event::Start(e) | Event::Empty(e) if case.is_some() => {
                let Some(c) = case.as_mut() else { continue };
                match e.name().as_ref() {
                    b"failure" => c.failure_message = Some(attr(&e, "message")?.unwrap_or_default()),
                    b"skipped" => c.skipped_message = Some(attr(&e, "message")?.unwrap_or_default()),
                    _ => {}
                }
                if !empty {
                    inside = Some((e.name().as_ref().to_vec(), String::new()));
                }
            }
            Event::Text(t) => {
                if let Some((_, text)) = inside.as_mut() {
                    text.push_str(&t.xml10_content().context("decoding text")?);
                }
            }
            Event::CData(t) => {
                if let Some((_, text)) = inside.as_mut() {
                    text.push_str(&t.decode().context("decoding CDATA")?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, text)) = inside.as_mut() {
                    let name = r.decode().context("decoding an entity")?;
                    match r.resolve_char_ref().context("a character reference")? {
                        Some(ch) => text.push(ch),
                        None => text.push_str(
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .with_context(|| format!("unknown entity &{name};"))?,
                        ),
                    }
                }
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => cases.extend(case.take()),
            Event::End(e) => {
                if let (Some(c), Some((name, text))) = (case.as_mut(), inside.take())
                    && name == e.name().as_ref()
                {
                    match name.as_slice() {
                        b"failure" => c.failure_body = Some(text),
                        b"system-out" => c.system_out = Some(text),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(feature: &str, scenario: &str, outcome: Outcome) -> Case {
        Case {
            feature: feature.into(),
            scenario: scenario.into(),
            file: Some("features/failover.feature".into()),
            line: Some(12),
            seconds: 1.5,
            outcome,
            log: vec![],
            steps: vec![
                Step {
                    text: "Given a cluster with 3 nodes".into(),
                    status: StepStatus::Passed,
                    seconds: Some(2.5),
                    log: vec![],
                },
                Step {
                    text: "Then \"web\" fails over within 1 s".into(),
                    status: StepStatus::Failed,
                    seconds: Some(3.0),
                    log: vec!["⏱ web: fault to switch: 2.000 s (deadline 1 s)".into()],
                },
                Step { text: "And nothing is lost".into(), status: StepStatus::Skipped, seconds: None, log: vec![] },
            ],
        }
    }

    #[test]
    fn a_ci_reader_finds_each_scenario_by_classname_with_its_failure_chain_and_steps() {
        let report = Report {
            cases: vec![
                case(
                    "Failover <fast> & \"right\"",
                    "A late switch",
                    Outcome::failed("root <cause> ]]> here\n  while: checking the switch\n", Some("Then x".into())),
                ),
                case(
                    "Failover <fast> & \"right\"",
                    "A skipped one",
                    Outcome::Skipped { message: "no iptables".into() },
                ),
                case("Other", "Passes", Outcome::Passed),
            ],
            interrupted: false,
        };
        let xml = render(&report);
        let cases = read(&xml).unwrap();
        assert_eq!(cases.len(), 3, "{xml}");
        for c in &cases {
            assert!(c.classname.is_some() && c.name.is_some() && c.file.is_some() && c.line.is_some(), "{c:?}");
        }
        let by = |classname: &str, name: &str| {
            cases
                .iter()
                .find(|c| c.classname.as_deref() == Some(classname) && c.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no {classname}/{name} in {xml}"))
        };
        let late = by("Failover <fast> & \"right\"", "A late switch");
        assert_eq!(late.failure_message.as_deref(), Some("root <cause> ]]> here while: checking the switch"));
        let body = late.failure_body.as_deref().unwrap();
        assert!(body.starts_with("root <cause> ]]> here\nwhile: checking the switch\n"), "{body}");
        assert!(body.ends_with("failed step: Then x"), "{body}");
        assert_eq!(late.file.as_deref(), Some("features/failover.feature"));
        assert_eq!(late.line.as_deref(), Some("12"));
        let out = late.system_out.as_deref().unwrap();
        assert!(
            out.contains("✔  Given a cluster with 3 nodes (2.500 s)\n✘  Then \"web\" fails over within 1 s (3.000 s)\n      ⏱ web: fault to switch: 2.000 s (deadline 1 s)\n-  And nothing is lost"),
            "{out}"
        );
        let skipped = by("Failover <fast> & \"right\"", "A skipped one");
        assert_eq!(skipped.skipped_message.as_deref(), Some("no iptables"));
        assert_eq!(skipped.failure_message, None);
        let passed = by("Other", "Passes");
        assert_eq!((passed.failure_message.as_ref(), passed.skipped_message.as_ref()), (None, None));
        // One suite per feature, with its counts.
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert!(xml.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{xml}");
        assert!(!xml.contains("interrupted"), "{xml}");
    }

    #[test]
    fn an_interrupted_run_says_so() {
        let report = Report { cases: vec![case("F", "S", Outcome::Passed)], interrupted: true };
        let xml = render(&report);
        assert!(xml.contains("<testsuites name=\"hadrill\" tests=\"1\""), "{xml}");
        assert!(xml.contains("interrupted=\"true\""), "{xml}");
        assert!(xml.contains("<property name=\"interrupted\" value=\"true\"/>"), "{xml}");
    }

    #[test]
    fn write_replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("hadrill-junit-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("junit.xml");
        std::fs::write(&path, "<testsuites><testcase name=\"old\"/></testsuites>").unwrap();
        let report = Report { cases: vec![case("F", "new", Outcome::Passed)], interrupted: false };
        write(&path, &report).unwrap();
        let names: Vec<_> =
            read(&std::fs::read_to_string(&path).unwrap()).unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, vec![Some("new".to_string())]);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(files, vec![std::ffi::OsString::from("junit.xml")], "no temporary file left");
        // A directory that does not exist: an error naming the file, the old report untouched.
        let err = write(&dir.join("missing/junit.xml"), &report).unwrap_err();
        assert!(format!("{err:#}").contains("missing/.junit.xml"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
