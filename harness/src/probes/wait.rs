//! Waiting for a condition on one object, by watch, with a deadline that names what was
//! awaited and shows the object as it last was.

use std::time::Duration;

use anyhow::{Context, bail};
use kube::Api;
use kube::runtime::wait::await_condition;

/// Upper bound for waits on things the cluster should do by itself (a safety net).
pub const SETTLE: Duration = Duration::from_secs(90);

/// Waits until `cond` holds for `name` (at most [`SETTLE`]); returns the object.
pub async fn until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    cond: impl Fn(&K) -> bool + Send + 'static,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize + Send + 'static,
{
    within(api, name, what, SETTLE, cond).await
}

/// Waits until `cond` holds for `name`, at most `limit`; returns the object.
pub async fn within<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    limit: Duration,
    cond: impl Fn(&K) -> bool + Send + 'static,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize + Send + 'static,
{
    let wait = await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond));
    match tokio::time::timeout(limit, wait).await {
        Ok(found) => {
            found.with_context(|| format!("watching {name} for {what}"))?.with_context(|| format!("{name} is gone"))
        }
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten().and_then(|o| serde_json::to_value(o).ok());
            let status = now.map(|o| o["status"].to_string()).unwrap_or_else(|| "absent".into());
            bail!("{what}: not within {limit:?}; {name} now has status {status}")
        }
    }
}
