//! Leader election on a `coordination.k8s.io/v1` Lease with kube-lease-manager (which takes and
//! renews the lease with server-side apply and relies on field-ownership conflicts).
//!
//! Every replica watches and evaluates; only the holder of the lease acts (patches Services,
//! publishes events). A follower takes over once the lease has expired (lease duration after the
//! leader's last renewal). On shutdown the lease is released.

use std::time::Duration;

use anyhow::{Context, bail};
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

/// Lease settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderSettings {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub lease_namespace: String,
    /// Validity of the lease after each renewal (whole seconds, ≥ 2).
    pub duration: Duration,
    /// How long before expiry the holder renews (whole seconds, ≥ 1, < duration).
    pub grace: Duration,
}

impl Default for LeaderSettings {
    fn default() -> Self {
        LeaderSettings {
            lease_name: "hadrill-controller".into(),
            lease_namespace: "hadrill-system".into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }
}

impl LeaderSettings {
    /// Checks what kube-lease-manager would otherwise panic on.
    pub fn validate(&self) -> anyhow::Result<()> {
        let (d, g) = (self.duration.as_secs(), self.grace.as_secs());
        if g == 0 || d <= g {
            bail!("lease grace ({g}s) must be at least 1s and less than the lease duration ({d}s)");
        }
        Ok(())
    }
}

/// Runs the election until `stop` turns true, publishing whether this instance leads on
/// `leading`; then releases the lease.
pub async fn run(
    client: Client,
    identity: String,
    settings: LeaderSettings,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    settings.validate()?;
    let manager = tokio::select! {
        m = build(client, &identity, &settings) => m?,
        _ = stopped(&mut stop) => return Ok(()),
    };
    tracing::info!(identity, lease = %settings.lease_name, namespace = %settings.lease_namespace, "joined the leader election");
    loop {
        let changed = tokio::select! {
            changed = manager.changed() => changed,
            _ = stopped(&mut stop) => break,
        };
        match changed {
            Ok(is_leader) => {
                tracing::info!(identity, is_leader, "leadership changed");
                leading.send_replace(is_leader);
            }
            Err(e) => {
                tracing::warn!(identity, error = %e, "lease error; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    leading.send_replace(false);
    manager.release().await.context("releasing the lease")?;
    tracing::info!(identity, "released the lease");
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn build(client: Client, identity: &str, s: &LeaderSettings) -> anyhow::Result<LeaseManager> {
    let mut delay = Duration::from_millis(200);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &s.lease_name)
            .with_namespace(&s.lease_namespace)
            .with_identity(identity)
            .with_duration(s.duration.as_secs())
            .with_grace(s.grace.as_secs())
            .build()
            .await;
        match built {
            Ok(m) => return Ok(m),
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up the lease yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_timings_are_checked() {
        assert!(LeaderSettings::default().validate().is_ok());
        let bad = LeaderSettings { grace: Duration::from_secs(15), ..LeaderSettings::default() };
        assert!(bad.validate().is_err());
        let zero = LeaderSettings { grace: Duration::ZERO, ..LeaderSettings::default() };
        assert!(zero.validate().is_err());
    }
}
