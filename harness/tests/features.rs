//! `cargo test --test features`: the feature suite (on the cluster `HADRILL_CLUSTER` names,
//! the embedded one by default). After `--`, feature files or directories and `--tags EXPR`
//! select what runs: `cargo test --test features -- --tags @smoke features/failover.feature`.

fn main() -> std::process::ExitCode {
    let opts = match options(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(hadrill::runner::run_features(opts)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(hadrill::signals::exit_code(&e))
        }
    }
}

/// Feature paths and `--tags`; the flags libtest would take (`--nocapture`, `--test-threads`,
/// ...) mean nothing to a harness-less test and are ignored, as cargo passes some itself.
fn options(args: impl Iterator<Item = String>) -> Result<hadrill::runner::RunOptions, String> {
    let mut opts = hadrill::runner::RunOptions::default();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "--tags" {
            opts.tags = Some(args.next().ok_or("--tags needs a tag expression, e.g. --tags @smoke")?);
        } else if let Some(t) = a.strip_prefix("--tags=") {
            opts.tags = Some(t.to_string());
        } else if a.starts_with('-') {
            // A libtest flag with a value (`--test-threads 1`, `--format pretty`) takes the next word.
            if matches!(a.as_str(), "--test-threads" | "--format" | "--color" | "--skip" | "-Z")
                && args.peek().is_some_and(|v| !v.starts_with('-'))
            {
                args.next();
            }
        } else if let Some(path) = resolve(&a) {
            opts.features.push(path);
        } else {
            // `cargo test --workspace -- NAME` hands every test binary the same filter.
            eprintln!("features: ignoring {a:?} (not a feature file or directory)");
        }
    }
    Ok(opts)
}

/// `arg` as a path: relative to the working directory (the harness crate under `cargo test`),
/// else to the workspace root, so `features/failover.feature` works from either.
fn resolve(arg: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [std::path::PathBuf::from(arg), root.join(arg)].into_iter().find(|p| p.exists())
}
