//! The controller runs with exactly the deploy/controller RBAC: every other e2e test acts as
//! its ServiceAccount; this one checks the grant is no wider than what it uses.

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_has_exactly_the_verbs_it_uses() {
    let env = Env::start().await;
    let role: ClusterRole = Api::all(env.admin.clone()).get("hadrill-controller").await.expect("cluster role");
    let mut grants: Vec<String> = role
        .rules
        .iter()
        .flatten()
        .flat_map(|r| {
            let groups = r.api_groups.clone().unwrap_or_default();
            let resources = r.resources.clone().unwrap_or_default();
            let verbs = r.verbs.clone();
            groups.into_iter().flat_map(move |g| {
                let verbs = verbs.clone();
                resources.clone().into_iter().flat_map(move |res| {
                    let g = g.clone();
                    verbs.clone().into_iter().map(move |v| format!("{g}/{res}:{v}"))
                })
            })
        })
        .collect();
    grants.sort();
    assert_eq!(
        grants,
        [
            "/nodes:list",
            "/nodes:watch",
            "/pods:list",
            "/pods:watch",
            "/services:list",
            "/services:patch",
            "/services:watch",
            "apps/deployments:list",
            "apps/deployments:watch",
            "apps/statefulsets:list",
            "apps/statefulsets:watch",
            "events.k8s.io/events:create",
        ]
    );

    let sa = env.controller_client();
    let services: Api<Service> = Api::namespaced(sa.clone(), NS);
    assert!(services.list(&ListParams::default()).await.is_ok());
    let denied = services.delete("kubernetes", &DeleteParams::default()).await.expect_err("no delete");
    assert!(matches!(denied, kube::Error::Api(s) if s.code == 403));
    let secrets: Api<Secret> = Api::namespaced(sa, NS);
    let denied = secrets.list(&ListParams::default()).await.expect_err("no secrets");
    assert!(matches!(denied, kube::Error::Api(s) if s.code == 403));
}
