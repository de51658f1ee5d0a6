Feature: The failover controller itself is highly available
  The controller runs as two replicas with a leader Lease. When the leader dies just as the
  primary fails, the follower takes the Lease once it expires and completes the failover.

  Scenario: The leader is killed as the primary fails
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica
    When the controller's leader is killed
    And the scenario "primary-pod-failure" is injected with "duration=90s"
    Then "dispatch" fails over to the standby within 30 s
    And the controller reports the cause naming the dead pods
