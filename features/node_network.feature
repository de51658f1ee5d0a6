@chaos @nightly
Feature: A primary whose node loses its network fails over in seconds thanks to black-box probing
  A node that loses its network is only marked NotReady after the node-monitor grace period
  (40 s on Kubernetes 1.35). Vehicles cannot wait that long: the controller's own probes of the
  primary's pods must notice within seconds. Without them, failover waits for the grace period:
  that gap is why black-box probing is on by default. The node is cut by a ChaosBlade node
  network loss, the same object on the embedded cluster and on kind; the spans its pods could not
  export are lost with the node, not counted as broken context.

  Scenario: With black-box probing, failover within seconds
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica
    And 10 vehicles send heartbeats to "dispatch" every 200 ms
    When the node hosting the primary of "dispatch" loses its network for 90 s
    Then "dispatch" fails over to the standby within 10 s
    And no vehicle loses its link for more than 10 s
    And every vehicle's session trace is continuous

  Scenario: Without black-box probing, failover only after the node-monitor grace period
    Given a cluster with 3 nodes
    And the failover controller runs with 2 replicas and black-box probing off
    And an HA service "dispatch" with a primary and a standby deployment of 1 replica
    When the node hosting the primary of "dispatch" loses its network for 90 s
    Then "dispatch" stays on the primary for 20 s
    And "dispatch" fails over to the standby within 70 s
