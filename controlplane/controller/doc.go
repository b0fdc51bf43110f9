// Package controller is the cluster-mode control plane of a node: the
// `__meta` Raft group on controller peers, the bootstrap that forms it, and
// broker registration, heartbeats and liveness.
//
// # The __meta group
//
// Every controller peer of cluster.toml runs one replica: hashicorp/raft
// over the node's raftnet Mux (group "__meta"), its log and stable store in
// raft-wal under DataDir/meta/wal behind a LogCache, snapshots under
// DataDir/meta/snapshots. The state machine is metadata.State.Apply; a
// snapshot is the image as JSON together with the table of recent proposal
// nonces (see below). The server id of a node is its node id in decimal,
// its address the peer's raft address.
//
// Timers come from [raft]: election_timeout_ms is hashicorp's
// HeartbeatTimeout and ElectionTimeout (raised to ten heartbeat intervals
// if heartbeat_interval_ms asks for slower heartbeats, because hashicorp
// heartbeats every HeartbeatTimeout/10), heartbeat_interval_ms is the
// commit tick, and the leader lease equals the follower timeout.
//
// # Bootstrap
//
// Run logs the deployment guide's coordinator lines, pings the other
// controllers over the raft port (meta.ping) until a majority including
// itself answers, and then bootstraps the group with the controllers of
// cluster.toml, the same configuration on every node, so any majority can
// elect the first leader. A replica with existing state skips the
// bootstrap, and so does a fresh one whose peers run a group formed with
// other members (their cluster id, a hash of the first configuration,
// differs from the one this node would write): the leader adds controllers
// that are in cluster.toml but not in the group once they answer health
// checks.
//
// # Proposals
//
// Service().Propose applies a command on the leader, or forwards it to the
// leader (meta.propose) from any other node, and returns once the local
// image has applied it. It retries across leader changes until its context
// ends. Each proposal carries a random nonce in the log entry's Extensions;
// the state machine remembers the nonces of the last 8192 entries and
// answers a retried proposal with the original outcome, so a retry after a
// lost answer does not apply a command twice. Rejections keep their
// identity across forwarding: errors.Is(err, metadata.ErrTopicExists) holds
// on every node.
//
// # Brokers
//
// A broker peer registers itself (RegisterBroker) once the controller is
// ready and heartbeats to the leader (meta.heartbeat) every broker
// heartbeat interval: [isr] check_interval_ms, 1 s by default. The leader
// marks a broker dead after three intervals without a heartbeat, counted
// from its last heartbeat, from the start of the leader's term, or from
// when the broker was last marked alive, whichever is latest; a dead
// broker's next heartbeat marks it alive again. A broker-only node runs no
// replica: its image comes from long polls (meta.watch) to the
// controllers.
//
// # Metrics
//
// raft_leader, raft_is_leader, raft_term, raft_commit_index,
// raft_applied_index and raft_last_log_index carry
// topic="__meta",partition="0";
// cluster_quorum_size counts the controllers answering health checks and
// cluster_size the nodes of the cluster.
package controller
