Feature: A planned node drain is survived as a fault is
  Draining a node (for an upgrade, a kernel patch, a cloud maintenance event) is the most
  common planned disruption a service meets. It goes as `kubectl drain` does: the node is
  cordoned, then its pods are evicted, and the API server refuses an eviction that would break
  a PodDisruptionBudget. Each side of the HA pair has a budget of one unavailable pod. When the
  primary's only pod goes, the controller must switch to the standby within the business
  deadline; when the budget keeps a primary pod serving, it must not switch at all.

  Background:
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas

  Scenario: The node of a one-pod primary is drained
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica
    When the node hosting the primary of "dispatch" is drained
    Then "dispatch" fails over to the standby within 15 s

  Scenario: The node of one of two primary pods is drained
    The budget lets the drain take one primary pod; the other one keeps serving.

    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas
    When the node hosting the primary of "dispatch" is drained
    Then "dispatch" stays on the primary for 10 s
