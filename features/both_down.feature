Feature: With both sides down, the controller alerts and leaves the Service alone
  Switching to a standby that is itself down only moves the outage. When both sides are
  unhealthy the controller must not touch the Service and must raise an alert an operator sees
  in `kubectl describe service`.

  Scenario: Standby down, then primary down
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas
    When the standby of "dispatch" is scaled to 0
    And every pod of the primary of "dispatch" is killed
    Then the controller warns that both sides of "dispatch" are down
    And "dispatch" stays on the primary for 5 s
