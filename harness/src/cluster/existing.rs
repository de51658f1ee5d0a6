//! The `existing` cluster provider: a context of the user's kubeconfig. Chaos is destructive,
//! so a context is only used when it is named in the allow list (`--allow-context`, or
//! `HADRILL_ALLOW_CONTEXTS`, comma-separated); the current context is never used implicitly.

use std::path::Path;

use anyhow::{Context, bail};

/// Environment variable listing the contexts hadrill may use (comma-separated); the
/// `--allow-context` flag adds to it.
pub const ALLOW_ENV: &str = "HADRILL_ALLOW_CONTEXTS";
/// Environment variable naming the context to use (the `--context` flag).
pub const CONTEXT_ENV: &str = "HADRILL_CONTEXT";

/// Splits a comma-separated list, dropping blanks.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Refuses `context` unless it is in `allowed`, saying how to allow it.
pub fn check_allowed(context: &str, allowed: &[String]) -> anyhow::Result<()> {
    if context.is_empty() {
        bail!(
            "no kubeconfig context given: name one with --context (hadrill never uses the current context implicitly)"
        );
    }
    if !allowed.iter().any(|a| a == context) {
        bail!(
            "refusing to run chaos against context {context:?}: it is not in the allow list ({}). \
             If this cluster may lose pods and network, pass --allow-context {context} \
             (or set {ALLOW_ENV}={context})",
            if allowed.is_empty() { "empty".to_string() } else { allowed.join(", ") }
        );
    }
    Ok(())
}

/// A client for `context` of `kubeconfig` (default: `$KUBECONFIG`, then ~/.kube/config),
/// after checking that the context is allowed and exists.
pub async fn connect_with(
    kubeconfig: Option<&Path>,
    context: &str,
    allowed: &[String],
) -> anyhow::Result<kube::Client> {
    check_allowed(context, allowed)?;
    let kc = match kubeconfig {
        Some(p) => {
            kube::config::Kubeconfig::read_from(p).with_context(|| format!("reading kubeconfig {}", p.display()))?
        }
        None => kube::config::Kubeconfig::read().context("reading the kubeconfig ($KUBECONFIG or ~/.kube/config)")?,
    };
    if !kc.contexts.iter().any(|c| c.name == context) {
        let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        bail!("the kubeconfig has no context {context:?} (it has: {})", names.join(", "));
    }
    let options = kube::config::KubeConfigOptions { context: Some(context.to_string()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .with_context(|| format!("loading context {context:?}"))?;
    kube::Client::try_from(config).with_context(|| format!("building a client for context {context:?}"))
}

/// [`connect_with`] the default kubeconfig.
pub async fn connect(context: &str, allowed: &[String]) -> anyhow::Result<kube::Client> {
    connect_with(None, context, allowed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_outside_the_allow_list_is_refused_with_the_way_to_allow_it() {
        let err = check_allowed("prod", &["kind-hadrill".into()]).expect_err("refused").to_string();
        assert!(
            err.contains("\"prod\"") && err.contains("kind-hadrill") && err.contains("--allow-context prod"),
            "{err}"
        );
        let err = check_allowed("prod", &[]).expect_err("refused").to_string();
        assert!(err.contains("(empty)") && err.contains(ALLOW_ENV), "{err}");
        assert!(check_allowed("", &["".into()]).is_err());
        check_allowed("kind-hadrill", &split_list(" kind-hadrill, ,k3s")).expect("allowed");
    }

    #[tokio::test]
    async fn an_allowed_context_must_exist_and_connects() {
        sim::install_crypto_provider();
        let dir = std::env::temp_dir().join(format!("hadrill-existing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("kubeconfig");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
             users:\n- name: u\n  user: {}\ncontexts:\n- name: test\n  context: {cluster: c, user: u}\ncurrent-context: test\n",
        )
        .expect("write");
        let allowed = vec!["test".to_string(), "gone".to_string()];
        let err = connect_with(Some(&file), "gone", &allowed).await.map(drop).expect_err("no such context").to_string();
        assert!(err.contains("no context \"gone\"") && err.contains("test"), "{err}");
        connect_with(Some(&file), "test", &allowed).await.expect("a client (not connected yet)");
        assert!(connect_with(Some(&file), "test", &[]).await.is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
