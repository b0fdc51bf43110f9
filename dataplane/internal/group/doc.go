// Package group is the classic consumer group coordinator: JoinGroup,
// SyncGroup, Heartbeat and LeaveGroup drive each group through Empty,
// PreparingRebalance, CompletingRebalance and Stable (and Dead when it is
// deleted), with session, rebalance and sync timeouts fired by timers that
// Run owns. Assignors run in the clients: the coordinator picks a protocol
// every member supports and relays the leader's assignment.
//
// Committed offsets and group metadata live in a log of their own, the
// __consumer_offsets topic, partitioned by group (PartitionFor) and
// written in Kafka's record formats through OffsetLog. The coordinator of
// a group is the node that leads its partition: Load replays the
// partition's log when this node becomes its leader, Unload forgets it
// when it stops. Each loaded partition has one writer goroutine that
// appends records in order, batching what queues up while an append is in
// flight; memory follows the log only once an append is done. When a
// partition's log has grown enough, the writer checkpoints: it writes the
// live state again and moves the log start past everything older.
//
// Kafka error codes are protocol outcomes and are returned as codes, never
// as Go errors.
package group
