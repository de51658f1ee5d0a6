@chaos
Feature: Faults injected as Chaos Mesh objects make the primary fail over
  The same faults Chaos Mesh injects on a real cluster (PodChaos, NetworkChaos) are injected
  from the scenario library, and the failover controller must move the Service to the standby
  within the business deadline. Every fault is removed when the scenario ends.

  Background:
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica

  Scenario: The primary's pod is killed by PodChaos
    When the scenario "primary-pod-kill" is injected
    Then "dispatch" fails over to the standby within 10 s
    And the controller reports the cause naming the dead pods

  Scenario: The primary's container is killed and restarts
    A restart within the controller's restart window makes a pod unhealthy, even when the
    kubelet brings the container back at once.

    When the scenario "primary-container-kill" is injected with "container=server"
    Then "dispatch" fails over to the standby within 10 s

  Scenario: The primary loses half of its outgoing packets
    When the scenario "primary-network-loss-50" is injected with "duration=60s"
    Then "dispatch" fails over to the standby within 30 s
    When the fault is removed
