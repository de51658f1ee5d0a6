@chaos @serial
Feature: A busy primary is not a dead primary
  CPU pressure slows the primary down but it still serves. Failing over would only add an
  outage: the controller must leave the Service on the primary, and the vehicles keep their
  link.

  Scenario: The primary is CPU-stressed
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas
    And 10 vehicles send heartbeats to "dispatch" every 200 ms
    When the primary of "dispatch" is CPU-stressed by 1 worker at 50% for 20 s
    Then "dispatch" stays on the primary for 15 s
    And no vehicle loses its link for more than 2 s
    And the fault ends by itself within 30 s
