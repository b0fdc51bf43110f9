// Package adminapi serves the operator API of a node: the Connect service
// chronik.admin.v1.AdminService and the deployment guide's REST forms
// `POST /admin/transfer-leader` and `POST /admin/rebalance`, all from one
// http.Handler that the broker mounts on its Kafka port. It also owns the
// rebalance executor, which carries out a rebalance plan one move at a time.
//
// # Where a call runs
//
// Every node serves the API. A call that changes the cluster's placement
// (StartRebalance, GetRebalanceStatus, CancelRebalance, DrainNode,
// DecommissionNode, AddNode) runs on the active controller, the leader of
// __meta, because the rebalance executor and its progress live there. A
// node that is not the active controller forwards such a call to the
// controller's Kafka address with the Connect client and marks it with the
// Chronik-Admin-Forwarded header; a node never forwards a call that carries
// the header, so two nodes that disagree about who leads answer Unavailable
// instead of passing a call back and forth.
//
// GetClusterStatus and ListNodes are forwarded too, so that the __meta
// figures (voters alive in particular, which only the leader knows) are the
// leader's. When no controller is known or it cannot be reached, the node
// answers from its own metadata image instead: that image is as fresh as the
// last change this node applied (a follower of __meta learns a commit on the
// next append or heartbeat, 30 ms by default; a broker-only node on its next
// metadata watch), and its liveness flags are the last ones the controller
// wrote before it became unreachable. The response header
// Chronik-Status-Source says which it was: "controller" or "local".
//
// TransferLeader runs on the node that receives it: the Backend hands each
// transfer to wherever the group's leader is.
//
// # Rebalancing
//
// A rebalance plan comes from assign.Plan over the live brokers (a
// decommissioning broker is listed even when it is down, so that its
// replicas move off it). The executor carries the moves out in order. A
// partition group's membership follows its replica list in __meta, so a
// replica move first records the new replica as an extra one (the group's
// leader adds it) and waits until it has caught up, moves the leadership
// away if the leaving replica leads, records the final replica list with
// the new replica in the old one's place (the leader removes the old
// member), and waits until the group no longer has it; the group never has
// fewer members than the replication factor. A move that fails before the
// final list is recorded takes the extra replica out again. A leader move records the new preferred leader and transfers the
// leadership. After the plan's own moves come leader moves that hand every
// other partition back to its preferred leader where that node can lead
// again (after a drain and restart, or a failover). Before each move the executor checks that this node still
// leads __meta; a controller that lost the leadership stops its rebalance
// as failed rather than race the new one. CancelRebalance lets the move in
// flight finish and stops before the next.
//
// # Draining and decommissioning
//
// DrainNode marks a broker draining (no leaderships are given to it) and
// moves every leadership it holds away; Resume clears the mark, and the
// broker calls it once it has started again. DecommissionNode marks a
// broker decommissioning, runs the rebalance that empties it, and removes
// it from __meta (its broker record and its vote) as the rebalance's last
// step.
//
// # Errors
//
// Inner functions return plain errors built on this package's sentinel
// errors; each RPC converts them once, with connectError, to a Connect code
// and a message a person can act on ("unknown node 7", "node 3 is not a
// replica of orders/1"). The REST forms answer the same messages as JSON
// {"error": "..."} with a matching HTTP status.
package adminapi
