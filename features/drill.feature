@chaos
Feature: A randomised fault drill
  Operations rehearse with faults they did not choose. The drill picks one fault with a seeded
  random choice, printed so that a failed drill can be replayed with the same seed.

  Scenario: A random primary fault
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica
    When a random fault from "primary-pod-kill, primary-pod-failure, primary-container-kill" is injected with seed 2026
    Then "dispatch" fails over to the standby within 15 s
