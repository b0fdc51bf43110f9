// Package raftnet multiplexes every Raft group of a node, plus internal RPC,
// over the node's single Raft-port listener.
//
// A broker may host a thousand or more partition replicas, each its own
// hashicorp/raft group, next to the __meta group. raft.NetworkTransport gives
// every group its own pool of connections with 256 KiB buffers and writes one
// syscall per frame; at that scale the transport alone dominates idle CPU and
// heap. A Mux instead keeps a couple of long-lived TCP connections per peer and
// tags every frame with the group it belongs to.
//
// # Connections
//
// A Mux dials at most two connections ("lanes") to each peer and serves the
// connections its peers dial to it. The control lane carries heartbeats,
// votes, TimeoutNow and internal RPC; the data lane carries AppendEntries with
// entries and InstallSnapshot streams. Splitting them keeps a heartbeat from
// queueing behind a multi-megabyte AppendEntries in the sender's socket. A
// connection starts with a fixed preface and a hello frame naming the dialer's
// advertised Raft address; the acceptor answers with its own hello (or an error
// frame when it refuses the link).
//
// Requests flow from dialer to acceptor, responses back, matched by a
// per-connection request id. Every connection has one reader goroutine and one
// writer goroutine. The writer drains a queue of frames into a bufio.Writer and
// flushes once per batch; on a busy control lane it first waits
// Config.CoalesceDelay, so that heartbeats of many groups share a syscall on
// both ends.
//
// # Frames
//
// Every frame has a 16-byte header followed by a name and a payload:
//
//	0..3   uint32 big-endian: length of name plus payload
//	4      kind: hello, request, response, error, chunk, window, cancel
//	5      op: the Raft message type, the lane, an error code or chunk flags
//	6..7   uint16 big-endian: length of the name
//	8..15  uint64 big-endian: request id
//	       name: the Raft group (requests) or RPC method, or the hello address
//	       payload
//
// Raft messages are encoded with a compact varint encoding of this package (see
// codec.go) rather than msgpack. Log data is written straight from the
// caller's slices and, on the receiving side, decoded as sub-slices of the one
// buffer the frame was read into, so a large entry is copied once per hop.
//
// # Receiving
//
// The reader never blocks on a Raft group. A request for a group that does not
// exist gets an error response at once (replicas are created asynchronously).
// Heartbeats go to the group's heartbeat handler, all other requests to its
// Consumer channel, each through a small per-group queue served by a goroutine
// that exists only while the queue has work; a group whose consumer is slow
// delays only itself, and a request that cannot be handed over within the RPC
// timeout is answered with an error.
//
// # Snapshots
//
// InstallSnapshot sends the request, then the snapshot in chunks, each chunk
// its own frame on the data lane interleaved with other groups' traffic. The
// receiver grants the sender a window of bytes and extends it as Raft reads
// the stream, so neither side holds more than the window in memory.
//
// # Pipelining
//
// With Config.PipelineDepth above 1 (the default is 1: see its comment),
// AppendEntriesPipeline returns a real pipeline: up to PipelineDepth
// AppendEntries of one group are in flight on one data-lane connection at a
// time. Frames on a connection arrive in order and each group's requests are
// handed to Raft in arrival order, so responses come back in send order.
//
// # Faults
//
// Block and Unblock cut and restore all traffic with a peer in both
// directions, for tests that need network partitions.
package raftnet
