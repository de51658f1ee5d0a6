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

  Scenario: The leader is killed just after the primary dies
    The outage starts with the pod kill: the clock of every deadline runs from it, not from the
    later fault on the controller.

    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica
    When every pod of the primary of "dispatch" is killed
    And the controller's leader is killed
    Then "dispatch" fails over to the standby within 30 s
    And the fault is detected within 1 min, located within 5 min and recovered within 10 min
