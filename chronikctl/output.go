package main

// Output formatting: every table and JSON form chronikctl prints. Nothing
// here does I/O other than writing to the io.Writer it is given, so the forms
// are tested on their own and by the golden tests.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// table writes aligned columns; cells are separated by two spaces.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// protoJSON encodes m with the proto field names and every field present,
// so scripts can rely on the keys. protojson varies its whitespace on
// purpose; the result is compacted to make it stable.
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return json.RawMessage(b), nil
}

// writeProtoJSON prints m as indented JSON.
func writeProtoJSON(w io.Writer, m proto.Message) error {
	raw, err := protoJSON(m)
	if err != nil {
		return err
	}
	return writeJSON(w, raw)
}

func idOrDash(id int32) string {
	if id == 0 {
		return "-"
	}
	return strconv.Itoa(int(id))
}

func strOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinIDs(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}

func roleNames(roles []adminv1.NodeRole) string {
	var names []string
	for _, r := range roles {
		switch r {
		case adminv1.NodeRole_NODE_ROLE_CONTROLLER:
			names = append(names, "controller")
		case adminv1.NodeRole_NODE_ROLE_BROKER:
			names = append(names, "broker")
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func stateName(s adminv1.NodeState) string {
	switch s {
	case adminv1.NodeState_NODE_STATE_ACTIVE:
		return "active"
	case adminv1.NodeState_NODE_STATE_DRAINING:
		return "draining"
	case adminv1.NodeState_NODE_STATE_DRAINED:
		return "drained"
	case adminv1.NodeState_NODE_STATE_DECOMMISSIONING:
		return "decommissioning"
	}
	return "-"
}

// metaRole is a node's part in __meta: its leader, a voter, or neither.
func metaRole(n *adminv1.Node) string {
	switch {
	case n.GetIsMetaLeader():
		return "leader"
	case slices.Contains(n.GetRoles(), adminv1.NodeRole_NODE_ROLE_CONTROLLER):
		return "voter"
	}
	return "-"
}

// clusterProblems lists why the cluster is degraded; none means healthy.
func clusterProblems(st *adminv1.GetClusterStatusResponse) []string {
	var out []string
	for _, n := range st.GetNodes() {
		if !n.GetAlive() {
			out = append(out, fmt.Sprintf("node %d is down", n.GetNodeId()))
		}
	}
	m := st.GetMeta()
	if m.GetLeaderId() == 0 {
		out = append(out, "__meta has no leader")
	}
	if m.GetVotersAlive() < m.GetQuorumSize() {
		out = append(out, fmt.Sprintf("__meta has no quorum: %d of %d voters alive, %d needed",
			m.GetVotersAlive(), m.GetClusterSize(), m.GetQuorumSize()))
	}
	p := st.GetPartitions()
	if n := p.GetOffline(); n > 0 {
		out = append(out, plural(int(n), "partition")+" offline")
	}
	if n := p.GetUnderReplicated(); n > 0 {
		out = append(out, plural(int(n), "partition")+" under-replicated")
	}
	if n := p.GetUnderMinIsr(); n > 0 {
		out = append(out, plural(int(n), "partition")+" below min.insync.replicas")
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// writeClusterStatus prints the nodes, __meta, the partition summary and
// the verdict; with partitions it adds a row per partition.
func writeClusterStatus(w io.Writer, st *adminv1.GetClusterStatusResponse, partitions bool) error {
	if st.GetClusterId() != "" {
		fmt.Fprintf(w, "Cluster: %s\n\n", st.GetClusterId())
	}
	t := newTable(w, "NODE", "ROLES", "KAFKA", "RAFT", "RACK", "ALIVE", "META", "STATE")
	for _, n := range st.GetNodes() {
		t.row(strconv.Itoa(int(n.GetNodeId())), roleNames(n.GetRoles()), strOrDash(n.GetKafkaAddr()),
			strOrDash(n.GetRaftAddr()), strOrDash(n.GetRack()), yesNo(n.GetAlive()), metaRole(n),
			stateName(n.GetState()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	m, p := st.GetMeta(), st.GetPartitions()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "__meta:      leader %s  term %d  commit %d  applied %d\n",
		idOrDash(m.GetLeaderId()), m.GetTerm(), m.GetCommitIndex(), m.GetAppliedIndex())
	fmt.Fprintf(w, "Quorum:      %d/%d voters alive, %d needed\n",
		m.GetVotersAlive(), m.GetClusterSize(), m.GetQuorumSize())
	fmt.Fprintf(w, "Partitions:  %d total, %d under-replicated, %d offline, %d below min ISR\n",
		p.GetTotal(), p.GetUnderReplicated(), p.GetOffline(), p.GetUnderMinIsr())
	if partitions {
		fmt.Fprintln(w)
		t := newTable(w, "TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR")
		for _, tp := range st.GetTopics() {
			for _, pt := range tp.GetPartitions() {
				t.row(tp.GetTopic(), strconv.Itoa(int(pt.GetPartition())), idOrDash(pt.GetLeaderId()),
					strconv.Itoa(int(pt.GetLeaderEpoch())), joinIDs(pt.GetReplicas()), joinIDs(pt.GetIsr()))
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	problems := clusterProblems(st)
	if len(problems) == 0 {
		_, err := fmt.Fprintln(w, "Status: HEALTHY")
		return err
	}
	fmt.Fprintln(w, "Status: DEGRADED")
	for _, pr := range problems {
		fmt.Fprintf(w, "  - %s\n", pr)
	}
	return nil
}

// clusterStatusJSON is the --json form of `cluster status`.
type clusterStatusJSON struct {
	Healthy  bool            `json:"healthy"`
	Problems []string        `json:"problems"`
	Status   json.RawMessage `json:"status"`
}

func writeClusterStatusJSON(w io.Writer, st *adminv1.GetClusterStatusResponse) error {
	raw, err := protoJSON(st)
	if err != nil {
		return err
	}
	problems := clusterProblems(st)
	if problems == nil {
		problems = []string{}
	}
	return writeJSON(w, clusterStatusJSON{Healthy: len(problems) == 0, Problems: problems, Status: raw})
}

// writeNodes prints the node list.
func writeNodes(w io.Writer, nodes []*adminv1.Node) error {
	t := newTable(w, "NODE", "ROLES", "KAFKA", "RAFT", "RACK", "ALIVE", "META", "STATE", "LEADERS", "REPLICAS")
	for _, n := range nodes {
		t.row(strconv.Itoa(int(n.GetNodeId())), roleNames(n.GetRoles()), strOrDash(n.GetKafkaAddr()),
			strOrDash(n.GetRaftAddr()), strOrDash(n.GetRack()), yesNo(n.GetAlive()), metaRole(n),
			stateName(n.GetState()), strconv.Itoa(int(n.GetLeaderCount())),
			strconv.Itoa(int(n.GetReplicaCount())))
	}
	return t.flush()
}

func groupName(topic string, partition int32) string {
	if topic == "__meta" {
		return "__meta"
	}
	return fmt.Sprintf("%s/%d", topic, partition)
}

// writeLeadershipChanges prints the leaderships that moved.
func writeLeadershipChanges(w io.Writer, changes []*adminv1.LeadershipChange) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "No leadership changed: the requested leaders were already in place.")
		return err
	}
	t := newTable(w, "GROUP", "FROM", "TO", "TERM")
	for _, c := range changes {
		t.row(groupName(c.GetTopic(), c.GetPartition()), idOrDash(c.GetPreviousLeaderId()),
			idOrDash(c.GetNewLeaderId()), strconv.FormatUint(c.GetTerm(), 10))
	}
	return t.flush()
}

// describeMove says in words what one rebalance step does.
func describeMove(m *adminv1.RebalanceMove) string {
	parts := []string{groupName(m.GetTopic(), m.GetPartition())}
	if m.GetAddReplica() != 0 {
		parts = append(parts, fmt.Sprintf("add %d", m.GetAddReplica()))
	}
	if m.GetRemoveReplica() != 0 {
		parts = append(parts, fmt.Sprintf("remove %d", m.GetRemoveReplica()))
	}
	if m.GetNewLeaderId() != 0 {
		parts = append(parts, fmt.Sprintf("leader %d", m.GetNewLeaderId()))
	}
	return strings.Join(parts, " ")
}

// writePlan prints a rebalance plan; id is empty for a dry run.
func writePlan(w io.Writer, id string, moves []*adminv1.RebalanceMove) error {
	if len(moves) == 0 {
		_, err := fmt.Fprintln(w, "Nothing to move: replicas and leaders are already balanced.")
		return err
	}
	if id == "" {
		fmt.Fprintf(w, "Rebalance plan (dry run, not started): %s\n\n", plural(len(moves), "move"))
	} else {
		fmt.Fprintf(w, "Rebalance %s started: %s\n\n", id, plural(len(moves), "move"))
	}
	t := newTable(w, "STEP", "TOPIC", "PARTITION", "ADD", "REMOVE", "LEADER")
	for i, m := range moves {
		t.row(strconv.Itoa(i+1), m.GetTopic(), strconv.Itoa(int(m.GetPartition())),
			idOrDash(m.GetAddReplica()), idOrDash(m.GetRemoveReplica()), idOrDash(m.GetNewLeaderId()))
	}
	return t.flush()
}

func rebalanceStateName(s adminv1.RebalanceState) string {
	switch s {
	case adminv1.RebalanceState_REBALANCE_STATE_IDLE:
		return "idle"
	case adminv1.RebalanceState_REBALANCE_STATE_RUNNING:
		return "running"
	case adminv1.RebalanceState_REBALANCE_STATE_DONE:
		return "done"
	case adminv1.RebalanceState_REBALANCE_STATE_CANCELLED:
		return "cancelled"
	case adminv1.RebalanceState_REBALANCE_STATE_FAILED:
		return "failed"
	}
	return "unknown"
}

func timeOrDash(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// writeRebalanceStatus prints one rebalance's progress.
func writeRebalanceStatus(w io.Writer, st *adminv1.RebalanceStatus) error {
	current := "-"
	if m := st.GetCurrentMove(); m != nil {
		current = describeMove(m)
	}
	t := newTable(w)
	t.row("Rebalance:", strOrDash(st.GetRebalanceId()))
	t.row("State:", rebalanceStateName(st.GetState()))
	t.row("Progress:", fmt.Sprintf("%d/%d steps", st.GetStepsDone(), st.GetStepsTotal()))
	t.row("Current:", current)
	t.row("Started:", timeOrDash(st.GetStartedAt()))
	t.row("Finished:", timeOrDash(st.GetFinishedAt()))
	t.row("Error:", strOrDash(st.GetError()))
	return t.flush()
}

// progressLine is one line of `--wait` output.
func progressLine(st *adminv1.RebalanceStatus) string {
	line := fmt.Sprintf("rebalance %s: %s, %d/%d steps", strOrDash(st.GetRebalanceId()),
		rebalanceStateName(st.GetState()), st.GetStepsDone(), st.GetStepsTotal())
	if m := st.GetCurrentMove(); m != nil && st.GetState() == adminv1.RebalanceState_REBALANCE_STATE_RUNNING {
		line += " (" + describeMove(m) + ")"
	}
	if e := st.GetError(); e != "" {
		line += ": " + e
	}
	return line
}

// topicInfo is one topic as Kafka Metadata describes it.
type topicInfo struct {
	Topic      string          `json:"topic"`
	Internal   bool            `json:"internal"`
	Partitions []partitionInfo `json:"partitions"`
}

// partitionInfo is one partition as Kafka Metadata describes it.
type partitionInfo struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Error       string  `json:"error,omitempty"`
}

// replicationFactor is the largest replica set of the topic.
func (t topicInfo) replicationFactor() int {
	rf := 0
	for _, p := range t.Partitions {
		rf = max(rf, len(p.Replicas))
	}
	return rf
}

// writeTopicDescribe prints topics in the form of kafka-topics --describe
// shown in the deployment guide.
func writeTopicDescribe(w io.Writer, topics []topicInfo) error {
	for _, t := range topics {
		fmt.Fprintf(w, "Topic: %s  PartitionCount: %d  ReplicationFactor: %d\n",
			t.Topic, len(t.Partitions), t.replicationFactor())
		for _, p := range t.Partitions {
			leader := "none"
			if p.Leader >= 0 {
				leader = strconv.Itoa(int(p.Leader))
			}
			line := fmt.Sprintf("  Partition: %d  Leader: %s  Replicas: %s  Isr: %s",
				p.Partition, leader, joinIDs(p.Replicas), joinIDs(p.ISR))
			if p.Error != "" {
				line += "  Error: " + p.Error
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
	}
	return nil
}

// topicSummary is one row of `topic list`.
type topicSummary struct {
	Topic             string `json:"topic"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

func summarizeTopics(topics []topicInfo) []topicSummary {
	out := make([]topicSummary, 0, len(topics))
	for _, t := range topics {
		out = append(out, topicSummary{Topic: t.Topic, Partitions: len(t.Partitions),
			ReplicationFactor: t.replicationFactor(), Internal: t.Internal})
	}
	return out
}

// writeTopicList prints one row per topic.
func writeTopicList(w io.Writer, topics []topicSummary) error {
	t := newTable(w, "TOPIC", "PARTITIONS", "REPLICATION-FACTOR")
	for _, s := range topics {
		t.row(s.Topic, strconv.Itoa(s.Partitions), strconv.Itoa(s.ReplicationFactor))
	}
	return t.flush()
}

// groupSummary is one row of `group list`.
type groupSummary struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

// writeGroupList prints one row per group.
func writeGroupList(w io.Writer, groups []groupSummary) error {
	t := newTable(w, "GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR")
	for _, g := range groups {
		t.row(g.Group, strOrDash(g.State), strOrDash(g.ProtocolType), strconv.Itoa(int(g.Coordinator)))
	}
	return t.flush()
}

// groupInfo is one described consumer group with its offsets and lag.
type groupInfo struct {
	Group        string        `json:"group"`
	State        string        `json:"state"`
	ProtocolType string        `json:"protocol_type"`
	Protocol     string        `json:"protocol"`
	Coordinator  int32         `json:"coordinator"`
	Members      []memberInfo  `json:"members"`
	Offsets      []groupOffset `json:"offsets"`
}

// memberInfo is one group member and what it was assigned.
type memberInfo struct {
	MemberID   string            `json:"member_id"`
	InstanceID string            `json:"instance_id,omitempty"`
	ClientID   string            `json:"client_id"`
	Host       string            `json:"host"`
	Assigned   []topicPartitions `json:"assigned"`
}

// topicPartitions is a topic and some of its partitions.
type topicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// groupOffset is a group's position in one partition. Committed is -1 when
// the group has not committed there; Lag is -1 when it cannot be computed.
type groupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed_offset"`
	LogEnd    int64  `json:"log_end_offset"`
	Lag       int64  `json:"lag"`
	MemberID  string `json:"member_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

func offsetOrDash(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

func assignmentString(as []topicPartitions) string {
	if len(as) == 0 {
		return "-"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprintf("%s[%s]", a.Topic, joinIDs(a.Partitions))
	}
	return strings.Join(parts, " ")
}

// displayHost drops the client's ephemeral port, which says nothing to an
// operator; the JSON form keeps the address as the broker gave it.
func displayHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// writeGroupDescribe prints a group's state, its members with their
// assignments, and per partition the committed offset, log end and lag.
func writeGroupDescribe(w io.Writer, g groupInfo) error {
	protocol := strOrDash(g.ProtocolType)
	if g.Protocol != "" {
		protocol += "/" + g.Protocol
	}
	fmt.Fprintf(w, "Group: %s  State: %s  Protocol: %s  Coordinator: %d  Members: %d\n",
		g.Group, strOrDash(g.State), protocol, g.Coordinator, len(g.Members))
	if len(g.Members) > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT")
		for _, m := range g.Members {
			t.row(m.MemberID, strOrDash(m.ClientID), strOrDash(displayHost(m.Host)), assignmentString(m.Assigned))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(g.Offsets) == 0 {
		_, err := fmt.Fprintln(w, "No committed offsets or assigned partitions.")
		return err
	}
	t := newTable(w, "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER")
	for _, o := range g.Offsets {
		lag := offsetOrDash(o.Lag)
		if o.Error != "" {
			lag = "error: " + o.Error
		}
		t.row(o.Topic, strconv.Itoa(int(o.Partition)), offsetOrDash(o.Committed), offsetOrDash(o.LogEnd),
			lag, strOrDash(o.MemberID))
	}
	return t.flush()
}

// offsetReset is one partition's move by `group reset-offsets`.
type offsetReset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old_offset"`
	New       int64  `json:"new_offset"`
}

// writeOffsetResets prints the old and new offsets of a reset.
func writeOffsetResets(w io.Writer, group string, resets []offsetReset, dryRun bool) error {
	verb := "Reset"
	if dryRun {
		verb = "Would reset (dry run)"
	}
	fmt.Fprintf(w, "%s offsets of group %s:\n\n", verb, group)
	t := newTable(w, "TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET")
	for _, r := range resets {
		t.row(r.Topic, strconv.Itoa(int(r.Partition)), offsetOrDash(r.Old), strconv.FormatInt(r.New, 10))
	}
	return t.flush()
}
