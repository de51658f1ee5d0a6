@smoke
Feature: A primary that loses every pod fails over to its hot standby
  A tug stops within seconds when its cloud link drops, so every cloud service keeps a hot
  standby. When all pods of the primary are unhealthy, the failover controller must point the
  Service at the standby quickly; when only some are, it must not switch.

  Background:
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas

  Scenario: Every primary pod is killed
    When every pod of the primary of "dispatch" is killed
    Then "dispatch" fails over to the standby within 10 s
    And the controller reports the cause naming the dead pods

  Scenario: One of two primary pods is killed
    When 1 pod of the primary of "dispatch" is killed
    Then "dispatch" stays on the primary for 5 s

  Scenario: The 1-5-10 requirement holds for a dead primary
    Operations must detect a fault within a minute, locate it within five and recover
    within ten.

    When every pod of the primary of "dispatch" is killed
    Then the fault is detected within 1 min, located within 5 min and recovered within 10 min
