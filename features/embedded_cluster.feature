@smoke
Feature: The embedded cluster serves the Kubernetes API
  Tests on machines without Docker need a cluster in under a second that the same
  clients use as on kind: manifests apply unchanged and Kubernetes' own rules hold.

  Scenario: A deployment and its service apply and are listed
    Given an embedded cluster with 3 nodes
    When the manifest "features/manifests/web.yaml" is applied
    Then the cluster lists 3 nodes
    And the deployment "web" wants 2 replicas
    And the service "web" selects pods labelled "app=web"

  Scenario: Re-applying an unchanged manifest is harmless, and a deletion is honoured
    Given an embedded cluster with 1 node
    When the manifest "features/manifests/web.yaml" is applied
    And the manifest "features/manifests/web.yaml" is applied
    Then the deployment "web" wants 2 replicas
    When the deployment "web" is deleted
    Then the deployment "web" is gone
