@smoke
Feature: Vehicles keep their cloud link and their session traces through a failover
  A tug stops when its cloud link is gone for more than a few seconds, and operations must be
  able to follow one tug's session across the switch to the standby: its heartbeats stay in
  one trace, served first by the primary, then by the standby, with no break in between.

  Background:
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 2 replicas
    And 20 vehicles send heartbeats to "dispatch" every 200 ms

  Scenario: The primary's pods are killed while vehicles are connected
    When every pod of the primary of "dispatch" is killed
    Then "dispatch" fails over to the standby within 10 s
    And no vehicle loses its link for more than 5 s
    And every vehicle's session trace is continuous
