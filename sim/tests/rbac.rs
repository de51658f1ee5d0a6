//! ServiceAccounts are authorized by the stored RBAC objects, as on a real cluster.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

fn status_of(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_gets_403_without_a_binding_and_succeeds_with_one() {
    let sim = support::start(1).await;
    let admin = sim.client().unwrap();
    let sas: Api<ServiceAccount> = Api::default_namespaced(admin.clone());
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "ctl"}})).unwrap())
        .await
        .unwrap();
    let as_sa = sim.service_account_client("default", "ctl").unwrap();
    let pods: Api<Pod> = Api::default_namespaced(as_sa.clone());

    let denied = status_of(pods.list(&ListParams::default()).await.expect_err("no binding yet"));
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        denied.message,
        "pods is forbidden: User \"system:serviceaccount:default:ctl\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );

    let roles: Api<Role> = Api::default_namespaced(admin.clone());
    let role = json!({"metadata": {"name": "pod-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"], "resourceNames": ["leader"]}]});
    roles.create(&PostParams::default(), &serde_json::from_value(role).unwrap()).await.unwrap();
    let bindings: Api<RoleBinding> = Api::default_namespaced(admin.clone());
    let binding = json!({"metadata": {"name": "ctl-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": "default"}]});
    bindings.create(&PostParams::default(), &serde_json::from_value(binding).unwrap()).await.unwrap();

    assert!(pods.list(&ListParams::default()).await.is_ok(), "list allowed by the Role");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .unwrap();
    let denied = status_of(pods.create(&PostParams::default(), &pod).await.expect_err("create is not granted"));
    assert_eq!(denied.code, 403);
    let pods_other_ns: Api<Pod> = Api::namespaced(as_sa.clone(), "kube-system");
    assert_eq!(status_of(pods_other_ns.list(&ListParams::default()).await.expect_err("other namespace")).code, 403);

    // resourceNames: update of "leader" only.
    let cms_admin: Api<ConfigMap> = Api::default_namespaced(admin.clone());
    for name in ["leader", "other"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        cms_admin.create(&PostParams::default(), &cm).await.unwrap();
    }
    let cms: Api<ConfigMap> = Api::default_namespaced(as_sa.clone());
    let leader = cms_admin.get("leader").await.unwrap();
    assert!(cms.replace("leader", &PostParams::default(), &leader).await.is_ok());
    let other = cms_admin.get("other").await.unwrap();
    let denied =
        status_of(cms.replace("other", &PostParams::default(), &other).await.expect_err("not in resourceNames"));
    assert!(denied.message.starts_with("configmaps \"other\" is forbidden"), "{}", denied.message);

    // A ClusterRoleBinding grants cluster-wide.
    let crs: Api<ClusterRole> = Api::all(admin.clone());
    let cr = json!({"metadata": {"name": "pod-lister"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]});
    crs.create(&PostParams::default(), &serde_json::from_value(cr).unwrap()).await.unwrap();
    let crbs: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let crb = json!({"metadata": {"name": "ctl-lists-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-lister"},
        "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": "default"}]});
    crbs.create(&PostParams::default(), &serde_json::from_value(crb).unwrap()).await.unwrap();
    assert!(pods_other_ns.list(&ListParams::default()).await.is_ok(), "cluster-wide list via ClusterRoleBinding");
    let all: Api<Pod> = Api::all(as_sa.clone());
    assert!(all.list(&ListParams::default()).await.is_ok());

    // Deleting the ServiceAccount revokes its token.
    sas.delete("ctl", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(pods.list(&ListParams::default()).await.expect_err("token revoked")).code, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_kubeconfig_is_unrestricted() {
    let sim = support::start(1).await;
    let kc = sim.kubeconfig();
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    assert!(user.token.is_some(), "the admin kubeconfig carries a token");
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "kube-system");
    assert!(pods.list(&ListParams::default()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_names_also_govern_a_watch_of_that_one_object() {
    use k8s_openapi::api::coordination::v1::Lease;
    let sim = support::start(1).await;
    let admin = sim.client().unwrap();
    let sas: Api<ServiceAccount> = Api::default_namespaced(admin.clone());
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "elector"}})).unwrap())
        .await
        .unwrap();
    let roles: Api<Role> = Api::default_namespaced(admin.clone());
    let role = json!({"metadata": {"name": "lease"}, "rules": [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch"], "resourceNames": ["leader"]}]});
    roles.create(&PostParams::default(), &serde_json::from_value(role).unwrap()).await.unwrap();
    let bindings: Api<RoleBinding> = Api::default_namespaced(admin.clone());
    let binding = json!({"metadata": {"name": "elector-lease"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lease"},
        "subjects": [{"kind": "ServiceAccount", "name": "elector", "namespace": "default"}]});
    bindings.create(&PostParams::default(), &serde_json::from_value(binding).unwrap()).await.unwrap();
    let leases: Api<Lease> = Api::default_namespaced(sim.service_account_client("default", "elector").unwrap());
    assert!(leases.list(&ListParams::default().fields("metadata.name=leader")).await.is_ok());
    assert_eq!(status_of(leases.list(&ListParams::default()).await.expect_err("unnamed list")).code, 403);
    assert_eq!(
        status_of(leases.list(&ListParams::default().fields("metadata.name=other")).await.expect_err("other name"))
            .code,
        403
    );
}
