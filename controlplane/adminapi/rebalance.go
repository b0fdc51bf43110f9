package adminapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chronik-stream/chronik/controlplane/assign"
	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// keptRebalances is how many finished rebalances GetRebalanceStatus can
// still name by id.
const keptRebalances = 16

// StartRebalance plans a rebalance and, unless it is a dry run or there is
// nothing to move, starts executing it on the active controller.
func (s *Service) StartRebalance(ctx context.Context, req *connect.Request[adminv1.StartRebalanceRequest]) (*connect.Response[adminv1.StartRebalanceResponse], error) {
	return onController(ctx, s, req, adminv1connect.AdminServiceClient.StartRebalance, s.startRebalance)
}

// GetRebalanceStatus reports the current or last rebalance, or the one
// named, of the active controller.
func (s *Service) GetRebalanceStatus(ctx context.Context, req *connect.Request[adminv1.GetRebalanceStatusRequest]) (*connect.Response[adminv1.GetRebalanceStatusResponse], error) {
	return onController(ctx, s, req, adminv1connect.AdminServiceClient.GetRebalanceStatus,
		func(_ context.Context, m *adminv1.GetRebalanceStatusRequest) (*adminv1.GetRebalanceStatusResponse, error) {
			st, err := s.reb.status(m.GetRebalanceId())
			if err != nil {
				return nil, err
			}
			return &adminv1.GetRebalanceStatusResponse{Status: st}, nil
		})
}

// CancelRebalance stops the running rebalance after the move in flight and
// answers once it has stopped (or the call's deadline passes).
func (s *Service) CancelRebalance(ctx context.Context, req *connect.Request[adminv1.CancelRebalanceRequest]) (*connect.Response[adminv1.CancelRebalanceResponse], error) {
	return onController(ctx, s, req, adminv1connect.AdminServiceClient.CancelRebalance,
		func(ctx context.Context, m *adminv1.CancelRebalanceRequest) (*adminv1.CancelRebalanceResponse, error) {
			st, err := s.reb.cancel(ctx, m.GetRebalanceId())
			if err != nil {
				return nil, err
			}
			return &adminv1.CancelRebalanceResponse{Status: st}, nil
		})
}

func (s *Service) startRebalance(_ context.Context, m *adminv1.StartRebalanceRequest) (*adminv1.StartRebalanceResponse, error) {
	moves := s.plan(s.b.State(), 0)
	resp := &adminv1.StartRebalanceResponse{Moves: movesProto(moves)}
	if m.GetDryRun() || len(moves) == 0 {
		return resp, nil
	}
	id, err := s.reb.start(&job{label: "rebalance", moves: moves})
	if err != nil {
		return nil, err
	}
	resp.RebalanceId = id
	return resp, nil
}

// plan computes the moves that even out replicas and leaders over the live
// brokers, then those that give leaderships back to preferred leaders.
// Broker decommission (if not 0) counts as decommissioning, and a
// decommissioning broker is listed even when it is down so that its
// replicas move off it; other dead brokers keep their replicas.
func (s *Service) plan(st *metadata.State, decommission int32) []assign.Move {
	var brokers []assign.Broker
	for _, id := range slices.Sorted(maps.Keys(st.Brokers)) {
		b := st.Brokers[id]
		dec := b.Decommissioning || id == decommission
		if !hasRole(b, config.RoleBroker) || (!b.Alive && !dec) {
			continue
		}
		brokers = append(brokers, assign.Broker{ID: id, Rack: b.Rack, Draining: b.Draining, Decommissioning: dec})
	}
	current := map[assign.TopicPartition][]int32{}
	for name, t := range st.Topics {
		for _, p := range t.Partitions {
			current[assign.TopicPartition{Topic: name, Partition: p.ID}] = slices.Clone(p.Replicas)
		}
	}
	moves := assign.Plan(brokers, current)
	return append(moves, preferredLeaderMoves(st, moves, decommission)...)
}

// preferredLeaderMoves hands partitions the plan leaves alone back to their
// preferred leader (the first replica) where another node leads them now,
// as after a drain and restart or a failover, provided the preferred
// leader can lead: alive, in sync, neither draining nor decommissioning.
func preferredLeaderMoves(st *metadata.State, planned []assign.Move, decommission int32) []assign.Move {
	touched := map[assign.TopicPartition]bool{}
	for _, m := range planned {
		touched[m.Partition] = true
	}
	var out []assign.Move
	for _, t := range st.SortedTopics() {
		for _, p := range t.Partitions {
			tp := assign.TopicPartition{Topic: t.Name, Partition: p.ID}
			if touched[tp] || len(p.Replicas) == 0 || p.Leader == p.Replicas[0] {
				continue
			}
			want := p.Replicas[0]
			b := st.Brokers[want]
			if want == decommission || b == nil || !b.Alive || b.Draining || b.Decommissioning || !slices.Contains(p.ISR, want) {
				continue
			}
			out = append(out, assign.Move{Kind: assign.LeaderMove, Partition: tp, From: p.Leader, To: want})
		}
	}
	return out
}

func moveProto(m assign.Move) *adminv1.RebalanceMove {
	out := &adminv1.RebalanceMove{Topic: m.Partition.Topic, Partition: m.Partition.Partition}
	switch m.Kind {
	case assign.ReplicaMove:
		out.AddReplica, out.RemoveReplica = m.Add, m.Remove
	case assign.LeaderMove:
		out.NewLeaderId = m.To
	}
	return out
}

func movesProto(moves []assign.Move) []*adminv1.RebalanceMove {
	out := make([]*adminv1.RebalanceMove, len(moves))
	for i, m := range moves {
		out[i] = moveProto(m)
	}
	return out
}

// job is one rebalance: its moves, an optional last step, and its status.
type job struct {
	label  string // for logs: "rebalance", "decommission of node 3"
	moves  []assign.Move
	finish func(ctx context.Context) error // after every move, if set

	// Guarded by rebalancer.mu.
	status    *adminv1.RebalanceStatus
	cancelled bool
	done      chan struct{} // closed once the job has ended
}

// rebalancer runs one job at a time in the goroutine of Service.Run.
type rebalancer struct {
	s    *Service
	jobs chan *job // holds at most the current job

	mu      sync.Mutex
	active  bool // Run is executing jobs
	current *job // queued or running
	history []*job
	seq     int
}

func newRebalancer(s *Service) *rebalancer {
	return &rebalancer{s: s, jobs: make(chan *job, 1)}
}

// run executes jobs until ctx ends. A job still queued or running then
// ends failed.
func (r *rebalancer) run(ctx context.Context) error {
	r.mu.Lock()
	if r.active {
		r.mu.Unlock()
		return errors.New("adminapi: run rebalancer: already running")
	}
	r.active = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.active = false
		select {
		case <-r.jobs:
		default:
		}
		if j := r.current; j != nil {
			r.endLocked(j, adminv1.RebalanceState_REBALANCE_STATE_FAILED, "the controller stopped before it finished")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-r.jobs:
			r.execute(ctx, j)
		}
	}
}

// idle fails while a rebalance is queued or running.
func (r *rebalancer) idle() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idleLocked()
}

// idleLocked is idle for a caller that holds r.mu.
func (r *rebalancer) idleLocked() error {
	if c := r.current; c != nil {
		return errorf(ErrRebalanceRunning, "a rebalance is already running (id %s, %d/%d steps done); follow it with `chronikctl rebalance status` or stop it with `chronikctl rebalance cancel`",
			c.status.GetRebalanceId(), c.status.GetStepsDone(), c.status.GetStepsTotal())
	}
	return nil
}

// start queues j and returns its id.
func (r *rebalancer) start(j *job) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.idleLocked(); err != nil {
		return "", err
	}
	if !r.active {
		return "", errorf(ErrExecutorStopped, "the rebalance executor of node %d is not running", r.s.b.NodeID())
	}
	r.seq++
	now := time.Now()
	id := fmt.Sprintf("rb-%s-%d", now.UTC().Format("20060102T150405"), r.seq)
	j.status = &adminv1.RebalanceStatus{
		RebalanceId: id, State: adminv1.RebalanceState_REBALANCE_STATE_RUNNING,
		StepsTotal: int32(len(j.moves)), StartedAt: timestamppb.New(now),
	}
	j.done = make(chan struct{})
	r.current = j
	r.jobs <- j // never blocks: the channel is empty while there is no current job
	r.s.log.Info("rebalance started", "rebalance_id", id, "what", j.label, "steps", len(j.moves))
	return id, nil
}

// execute carries out j's moves in order, stopping at the first error, at
// a cancel, or when this node stops leading __meta.
func (r *rebalancer) execute(ctx context.Context, j *job) {
	s := r.s
	for i, m := range j.moves {
		if r.stopRequested(j) {
			r.end(j, adminv1.RebalanceState_REBALANCE_STATE_CANCELLED, "")
			return
		}
		r.setStep(j, i, m)
		err := s.checkStillController()
		if err == nil {
			stepCtx, cancel := context.WithTimeout(ctx, s.cfg.StepTimeout)
			err = s.executeMove(stepCtx, m)
			cancel()
		}
		if err != nil {
			r.end(j, adminv1.RebalanceState_REBALANCE_STATE_FAILED,
				fmt.Sprintf("step %d/%d (%s): %v", i+1, len(j.moves), m, err))
			return
		}
		r.stepDone(j)
	}
	if j.finish != nil {
		if r.stopRequested(j) {
			r.end(j, adminv1.RebalanceState_REBALANCE_STATE_CANCELLED, "")
			return
		}
		r.setStep(j, len(j.moves), assign.Move{})
		stepCtx, cancel := context.WithTimeout(ctx, s.cfg.StepTimeout)
		err := j.finish(stepCtx)
		cancel()
		if err != nil {
			r.end(j, adminv1.RebalanceState_REBALANCE_STATE_FAILED, err.Error())
			return
		}
	}
	r.end(j, adminv1.RebalanceState_REBALANCE_STATE_DONE, "")
}

func (r *rebalancer) stopRequested(j *job) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return j.cancelled
}

func (r *rebalancer) setStep(j *job, i int, m assign.Move) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j.status.CurrentMove = nil
	if i < len(j.moves) {
		j.status.CurrentMove = moveProto(m)
	}
}

func (r *rebalancer) stepDone(j *job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j.status.StepsDone++
}

func (r *rebalancer) end(j *job, state adminv1.RebalanceState, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLocked(j, state, msg)
}

// endLocked records how j ended and files it in the history. Caller holds
// r.mu.
func (r *rebalancer) endLocked(j *job, state adminv1.RebalanceState, msg string) {
	if j.status.GetState() != adminv1.RebalanceState_REBALANCE_STATE_RUNNING {
		return
	}
	j.status.State, j.status.Error, j.status.CurrentMove = state, msg, nil
	j.status.FinishedAt = timestamppb.Now()
	close(j.done)
	if r.current == j {
		r.current = nil
	}
	r.history = append(r.history, j)
	if len(r.history) > keptRebalances {
		r.history = slices.Delete(r.history, 0, len(r.history)-keptRebalances)
	}
	log := r.s.log.With("rebalance_id", j.status.GetRebalanceId(), "what", j.label,
		"steps_done", j.status.GetStepsDone(), "steps_total", j.status.GetStepsTotal())
	switch state {
	case adminv1.RebalanceState_REBALANCE_STATE_FAILED:
		log.Warn("rebalance failed", "error", msg)
	case adminv1.RebalanceState_REBALANCE_STATE_CANCELLED:
		log.Info("rebalance cancelled")
	default:
		log.Info("rebalance done")
	}
}

// find returns the job named id, or the current (else last) one for "".
// Caller holds r.mu.
func (r *rebalancer) findLocked(id string) *job {
	if id == "" {
		if r.current != nil {
			return r.current
		}
		if n := len(r.history); n > 0 {
			return r.history[n-1]
		}
		return nil
	}
	if r.current != nil && r.current.status.GetRebalanceId() == id {
		return r.current
	}
	for _, j := range r.history {
		if j.status.GetRebalanceId() == id {
			return j
		}
	}
	return nil
}

func (r *rebalancer) status(id string) (*adminv1.RebalanceStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.findLocked(id)
	switch {
	case j != nil:
		return proto.Clone(j.status).(*adminv1.RebalanceStatus), nil
	case id == "":
		return &adminv1.RebalanceStatus{State: adminv1.RebalanceState_REBALANCE_STATE_IDLE}, nil
	default:
		return nil, errorf(ErrUnknownRebalance, "unknown rebalance %s (the active controller keeps the last %d; a controller that took over since knows only its own)",
			id, keptRebalances)
	}
}

// cancel asks the selected rebalance to stop after its move in flight and
// waits until it has, or ctx ends. A finished rebalance is reported as it
// ended.
func (r *rebalancer) cancel(ctx context.Context, id string) (*adminv1.RebalanceStatus, error) {
	r.mu.Lock()
	j := r.current
	if id != "" {
		j = r.findLocked(id)
	}
	if j == nil {
		r.mu.Unlock()
		if id == "" {
			return nil, errorf(ErrNoRebalance, "no rebalance is running")
		}
		return r.status(id)
	}
	j.cancelled = true
	done := j.done
	r.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return r.status(j.statusID())
}

func (j *job) statusID() string { return j.status.GetRebalanceId() }

// checkStillController fails once this node no longer leads __meta.
func (s *Service) checkStillController() error {
	if m := s.b.Meta(); m.LeaderID != s.b.NodeID() {
		return errorf(ErrLostLeadership, "node %d no longer leads __meta (leader now %d); start the rebalance again on the new controller",
			s.b.NodeID(), m.LeaderID)
	}
	return nil
}

// executeMove carries out one move of a plan.
func (s *Service) executeMove(ctx context.Context, m assign.Move) error {
	switch m.Kind {
	case assign.ReplicaMove:
		return s.moveReplica(ctx, m)
	case assign.LeaderMove:
		return s.movePreferredLeader(ctx, m)
	default:
		return errorf(ErrInvalidRequest, "unknown move kind %d", m.Kind)
	}
}

// moveReplica replaces replica m.Remove of a partition by m.Add without
// ever leaving the group with fewer members than its replication factor:
// add m.Add as an extra replica and let it catch up, move the leadership
// off m.Remove, record the final replica list, remove m.Remove. An extra
// m.Add left by an earlier attempt is taken as the first step done.
func (s *Service) moveReplica(ctx context.Context, m assign.Move) error {
	tp := m.Partition
	name := fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
	st := s.b.State()
	p, err := partitionOf(st, tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	switch {
	case slices.Contains(p.Replicas, m.Add) && !slices.Contains(p.Replicas, m.Remove):
		return nil // done already, by an earlier attempt
	case !slices.Contains(p.Replicas, m.Remove):
		return errorf(ErrStalePlan, "%s has replicas %v now, which the plan did not expect; start a new rebalance", name, p.Replicas)
	case !brokerAlive(st, m.Add):
		return errorf(ErrNotAlive, "node %d is not alive", m.Add)
	}
	if err := s.b.AddReplica(ctx, tp.Topic, tp.Partition, m.Add); err != nil {
		s.rollbackAdd(m)
		return fmt.Errorf("add node %d to %s: %w", m.Add, name, err)
	}
	if err := s.commitReplicaMove(ctx, m); err != nil {
		s.rollbackAdd(m)
		return err
	}
	if err := s.b.RemoveReplica(ctx, tp.Topic, tp.Partition, m.Remove); err != nil {
		return fmt.Errorf("remove node %d from %s (it stays an extra member until removed): %w", m.Remove, name, err)
	}
	return nil
}

// commitReplicaMove moves the leadership off m.Remove if it leads, then
// records the replica list with m.Add in m.Remove's place.
func (s *Service) commitReplicaMove(ctx context.Context, m assign.Move) error {
	tp := m.Partition
	st := s.b.State()
	p, err := partitionOf(st, tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	final := finalReplicas(m, p.Replicas)
	if p.Leader == m.Remove {
		// The new preferred leader takes over when it can (the plan counts
		// on it), else the best in-sync replica.
		to := final[0]
		if b := st.Brokers[to]; to == m.Remove || b == nil || !b.Alive || (to != m.Add && !slices.Contains(p.ISR, to)) {
			leaders, _ := leaderCounts(st)
			to = bestAmong(st, append([]int32{m.Add}, p.ISR...), leaders, m.Remove)
		}
		if to == 0 {
			return errorf(ErrNoCandidate, "no live in-sync replica of %s/%d can take the leadership from node %d",
				tp.Topic, tp.Partition, m.Remove)
		}
		tctx, cancel := context.WithTimeout(ctx, s.cfg.TransferTimeout)
		_, err := s.moveLeader(tctx, tp.Topic, tp.Partition, m.Remove, to, s.cfg.TransferTimeout)
		cancel()
		if err != nil {
			return err
		}
	}
	return s.proposePartition(ctx, tp, func(p *metadata.Partition) (replicas, isr []int32) {
		isr = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == m.Remove })
		if !slices.Contains(isr, m.Add) {
			isr = append(isr, m.Add)
		}
		return finalReplicas(m, p.Replicas), isr
	})
}

// finalReplicas is the replica list after move m, from the current one,
// which may already list m.Add as an extra replica: m.Add takes m.Remove's
// place, so that a move of the first replica moves the preferred leader.
func finalReplicas(m assign.Move, replicas []int32) []int32 {
	without := slices.DeleteFunc(slices.Clone(replicas), func(r int32) bool { return r == m.Add })
	return m.ApplyTo(without)
}

// rollbackAdd takes the extra replica m.Add out of the partition again
// after a move failed half way, so that it keeps the replicas it had. It
// runs even while the executor is stopping, bounded by its own timeout.
func (s *Service) rollbackAdd(m assign.Move) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TransferTimeout)
	defer cancel()
	tp := m.Partition
	if p := s.b.State().Partition(tp.Topic, tp.Partition); p == nil || !slices.Contains(p.Replicas, m.Remove) || p.Leader == m.Add {
		return // recorded after all, or leading: leave it to a later rebalance
	}
	if err := s.b.RemoveReplica(ctx, tp.Topic, tp.Partition, m.Add); err != nil {
		s.log.Warn("roll back added replica", "topic", tp.Topic, "partition", tp.Partition, "node", m.Add, "error", err)
	}
}

// movePreferredLeader makes m.To the first replica of the partition and
// its leader.
func (s *Service) movePreferredLeader(ctx context.Context, m assign.Move) error {
	tp := m.Partition
	p, err := partitionOf(s.b.State(), tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	if !slices.Contains(p.Replicas, m.To) {
		return errorf(ErrStalePlan, "%s/%d has replicas %v now, without node %d; start a new rebalance",
			tp.Topic, tp.Partition, p.Replicas, m.To)
	}
	if p.Replicas[0] != m.To {
		err := s.proposePartition(ctx, tp, func(p *metadata.Partition) ([]int32, []int32) {
			return m.ApplyTo(p.Replicas), nil
		})
		if err != nil {
			return err
		}
	}
	if p.Leader == m.To {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TransferTimeout)
	defer cancel()
	_, err = s.moveLeader(ctx, tp.Topic, tp.Partition, p.Leader, m.To, s.cfg.TransferTimeout)
	return err
}

// proposePartition records new replicas and ISR (nil: unchanged) computed
// from the partition's current state, keeping its leader and epoch, and
// tries again when a leader change overtook it.
func (s *Service) proposePartition(ctx context.Context, tp assign.TopicPartition, change func(*metadata.Partition) (replicas, isr []int32)) error {
	for attempt := 0; ; attempt++ {
		p, err := partitionOf(s.b.State(), tp.Topic, tp.Partition)
		if err != nil {
			return err
		}
		replicas, isr := change(p)
		cmd := &metadata.PartitionStateCmd{Topic: tp.Topic, Partition: tp.Partition,
			Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: replicas, ISR: isr}
		_, err = s.b.Propose(ctx, &metadata.Command{PartitionState: cmd})
		if errors.Is(err, metadata.ErrStaleEpoch) && attempt < 5 {
			continue
		}
		if err != nil {
			return fmt.Errorf("record replicas %v of %s/%d: %w", replicas, tp.Topic, tp.Partition, err)
		}
		return nil
	}
}

// bestAmong picks from ids the node to hand a leadership to: alive, not
// avoid, not decommissioning, active before draining, then the fewest
// leaderships, then the lowest id; 0 when none qualifies.
func bestAmong(st *metadata.State, ids []int32, leaders map[int32]int, avoid int32) int32 {
	var best int32
	var bestKey [3]int
	for _, r := range ids {
		b := st.Brokers[r]
		if r == avoid || b == nil || !b.Alive || b.Decommissioning {
			continue
		}
		key := [3]int{maintenance(b), leaders[r], int(r)}
		if best == 0 || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey = r, key
		}
	}
	return best
}
