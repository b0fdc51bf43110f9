package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxNodeID is the largest node and peer id the guide allows.
const maxNodeID = 255

// minRaftTimeoutMs is the shortest election or heartbeat timeout
// hashicorp/raft accepts.
const minRaftTimeoutMs = 5

// cluster reads the top-level table and checks the file as a whole.
func (r *reader) cluster(top *table) *Cluster {
	c := &Cluster{File: r.file}
	if top.require("enabled") {
		c.Enabled, _ = top.boolean("enabled")
	}
	nodeOK := top.require("node_id")
	nodeID, ok := top.integer("node_id", 0, 1, maxNodeID)
	nodeOK = nodeOK && ok
	c.NodeID = int32(nodeID)
	rfSet := top.has("replication_factor")
	rf, rfOK := top.integer("replication_factor", DefaultReplicationFactor, 1, maxNodeID)
	isrSet := top.has("min_insync_replicas")
	minISR, isrOK := top.integer("min_insync_replicas", DefaultMinInsyncReplicas, 1, maxNodeID)
	if rt := top.sub("raft"); rt != nil {
		c.Raft = r.raft(rt)
	}
	if it := top.sub("isr"); it != nil {
		c.ISR = r.isr(it)
	}
	peers, peersOK := r.peers(top)
	top.finish()
	c.Peers = peers

	if nodeOK && peersOK {
		if _, found := c.Peer(c.NodeID); !found {
			r.fail("node_id", "node %d is not among the peers", c.NodeID)
		}
	}
	if peersOK {
		rf, rfOK = r.checkRoles(c, rf, rfSet, rfOK)
	}
	if !isrSet && rfOK {
		minISR = min(minISR, rf)
	}
	if isrSet && isrOK && rfOK && minISR > rf {
		r.fail("min_insync_replicas", "%d is more than replication_factor %d", minISR, rf)
	}
	c.ReplicationFactor, c.MinInsyncReplicas = int(rf), int(minISR)
	return c
}

// checkRoles requires a controller and a broker, and a replication factor
// the brokers can hold. It returns the effective replication factor.
func (r *reader) checkRoles(c *Cluster, rf int64, rfSet, rfOK bool) (int64, bool) {
	if len(c.Controllers()) == 0 {
		r.fail("peers", "no peer has the %q role; at least one is needed", RoleController)
	}
	brokers := int64(len(c.Brokers()))
	if brokers == 0 {
		r.fail("peers", "no peer has the %q role; at least one is needed", RoleBroker)
		return rf, false
	}
	if !rfSet {
		return min(rf, brokers), true
	}
	if rfOK && rf > brokers {
		r.fail("replication_factor", "%d is more than the %d peers with the %q role", rf, brokers, RoleBroker)
		return rf, false
	}
	return rf, rfOK
}

// raft reads [raft] and derives the partition-group timings.
func (r *reader) raft(t *table) Raft {
	var rc Raft
	election, eOK := t.millis("election_timeout_ms", DefaultElectionTimeout, minRaftTimeoutMs)
	heartbeat, hOK := t.millis("heartbeat_interval_ms", DefaultHeartbeatInterval, 1)
	snap, _ := t.integer("snapshot_threshold", DefaultSnapshotThreshold, 1, 1<<62)
	if eOK && hOK && heartbeat >= election {
		r.fail(t.key("heartbeat_interval_ms"), "%d must be less than election_timeout_ms (%d)",
			heartbeat.Milliseconds(), election.Milliseconds())
	}
	rc.ElectionTimeout, rc.HeartbeatInterval, rc.SnapshotThreshold = election, heartbeat, uint64(snap)

	rc.PartitionCommitTimeout = max(MinPartitionCommitTimeout, heartbeat)
	rc.PartitionCommitTimeout, _ = t.millis("partition_commit_timeout_ms", rc.PartitionCommitTimeout, 1)
	rc.PartitionHeartbeatTimeout = max(MinPartitionHeartbeatTimeout, election)
	rc.PartitionHeartbeatTimeout, _ = t.millis("partition_heartbeat_timeout_ms", rc.PartitionHeartbeatTimeout, minRaftTimeoutMs)
	rc.PartitionElectionTimeout = rc.PartitionHeartbeatTimeout
	rc.PartitionElectionTimeout, _ = t.millis("partition_election_timeout_ms", rc.PartitionElectionTimeout, minRaftTimeoutMs)
	t.finish()
	return rc
}

// isr reads [isr].
func (r *reader) isr(t *table) ISR {
	var ic ISR
	ic.MaxLag, _ = t.millis("max_lag_ms", DefaultISRMaxLag, 1)
	ic.MaxLagEntries, _ = t.integer("max_lag_entries", DefaultISRMaxLagEntries, 1, 1<<62)
	ic.CheckInterval, _ = t.millis("check_interval_ms", DefaultISRCheckInterval, 1)
	t.finish()
	return ic
}

// peers reads [[peers]] and checks ids and endpoints across peers. ok is
// false when some peer could not be read in full, so that checks on the
// whole set (node_id, roles) would only add noise.
func (r *reader) peers(top *table) ([]Peer, bool) {
	if !top.require("peers") {
		return nil, false
	}
	tables, ok := top.tables("peers")
	if ok && len(tables) == 0 {
		r.fail("peers", "at least one [[peers]] entry is required")
		return nil, false
	}
	var out []Peer
	ids := map[int32]string{}
	endpoints := map[string]string{}
	for _, t := range tables {
		if t == nil {
			continue
		}
		p, pOK := r.peer(t)
		ok = ok && pOK
		if p.ID != 0 {
			if first, dup := ids[p.ID]; dup {
				r.fail(t.key("id"), "duplicate peer id %d (first used by %s)", p.ID, first)
			} else {
				ids[p.ID] = t.path
			}
		}
		if p.Addr != "" && p.RaftPort != 0 {
			r.claim(endpoints, t.key("addr"), p.Addr)
			r.claim(endpoints, t.key("raft_port"), p.RaftAddr())
		}
		out = append(out, p)
	}
	return out, ok
}

// claim records that key listens on hostport, reporting a second claim.
// Hosts compare case-insensitively, as DNS names do.
func (r *reader) claim(endpoints map[string]string, key, hostport string) {
	norm := strings.ToLower(hostport)
	if first, dup := endpoints[norm]; dup {
		r.fail(key, "address %s is already used by %s", hostport, first)
		return
	}
	endpoints[norm] = key
}

// peer reads one [[peers]] entry. Fields that fail to read stay zero; ok is
// false when the id or the roles are unusable, the two things checks across
// the whole peer set rely on.
func (r *reader) peer(t *table) (p Peer, ok bool) {
	idOK := t.require("id")
	id, valid := t.integer("id", 0, 1, maxNodeID)
	if idOK = idOK && valid; idOK {
		p.ID = int32(id)
	}
	kafkaPort := 0
	if t.require("addr") {
		if addr, valid := t.str("addr"); valid {
			if kafkaPort, valid = r.checkAddr(t.key("addr"), addr); valid {
				p.Addr = addr
			}
		}
	}
	p.RaftPort = r.raftPort(t, kafkaPort)
	roles, rolesOK := r.roles(t)
	p.Roles = roles
	p.Rack, _ = t.str("rack")
	t.finish()
	return p, idOK && rolesOK
}

// raftPort reads a peer's raft_port, which defaults to the Kafka port + 1;
// 0 when unusable or unknown.
func (r *reader) raftPort(t *table, kafkaPort int) int {
	if t.has("raft_port") {
		port, _ := t.integer("raft_port", 0, 1, 65535)
		return int(port)
	}
	if kafkaPort == 65535 {
		r.fail(t.key("raft_port"), "required when the Kafka port is 65535 (the default is the Kafka port + 1)")
		return 0
	}
	if kafkaPort == 0 {
		return 0
	}
	return kafkaPort + 1
}

// roles reads a peer's roles; absent means both.
func (r *reader) roles(t *table) ([]Role, bool) {
	if !t.has("roles") {
		return []Role{RoleController, RoleBroker}, true
	}
	names, ok := t.strs("roles")
	if !ok {
		return nil, false
	}
	if len(names) == 0 {
		r.fail(t.key("roles"), "must name at least one role")
		return nil, false
	}
	var roles []Role
	for i, n := range names {
		role := Role(n)
		key := fmt.Sprintf("%s[%d]", t.key("roles"), i)
		switch {
		case role != RoleController && role != RoleBroker:
			r.fail(key, "unknown role %q (want %q or %q)", n, RoleController, RoleBroker)
			ok = false
		case slices.Contains(roles, role):
			r.fail(key, "role %q listed twice", n)
			ok = false
		default:
			roles = append(roles, role)
		}
	}
	return roles, ok
}

// checkAddr validates a host:port Kafka address and returns its port.
func (r *reader) checkAddr(key, addr string) (int, bool) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		r.fail(key, "%q is not host:port", addr)
		return 0, false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		r.fail(key, "%q: port %q is not a number in 1-65535", addr, portStr)
		return 0, false
	}
	if reason := badHost(host); reason != "" {
		r.fail(key, "%q: %s", addr, reason)
		return 0, false
	}
	return port, true
}

// badHost says what is wrong with a host that clients and peers must dial,
// or "" when nothing is.
func badHost(host string) string {
	if host == "" {
		return "host is empty"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			return "host " + host + " is a wildcard address that cannot be dialed"
		}
		return ""
	}
	if len(host) > 253 {
		return "host name is longer than 253 characters"
	}
	for label := range strings.SplitSeq(host, ".") {
		if !validLabel(label) {
			return fmt.Sprintf("host %q is neither an IP address nor a valid DNS name", host)
		}
	}
	return ""
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
