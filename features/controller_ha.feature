Feature: The failover controller itself is highly available
  The controller runs as two replicas with a leader Lease. When the leader dies in the middle
  of a failover, the follower takes the Lease and completes the failover.

  Scenario: The leader is killed as the primary dies
    Given an embedded cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas
    When the controller's leader is killed
    And every pod of the primary of "dispatch" is killed
    Then "dispatch" fails over to the standby within 30 s
