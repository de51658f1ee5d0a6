//! `cargo test --test features`: the feature suite against the embedded cluster.

fn main() -> std::process::ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let opts = hadrill::report::RunOptions { cucumber_cli: true, ..Default::default() };
    match rt.block_on(hadrill::report::run_features(opts)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
