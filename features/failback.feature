Feature: After the primary recovers, the Service fails back to it
  With automatic failback, the controller returns the Service to the primary once the primary
  has been healthy for the configured period, and not before.

  Scenario: Automatic failback once the primary is healthy again
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas
    And "dispatch" fails back automatically after 5 s
    When every pod of the primary of "dispatch" is killed
    Then "dispatch" fails over to the standby within 10 s
    And "dispatch" fails back to the primary within 30 s
