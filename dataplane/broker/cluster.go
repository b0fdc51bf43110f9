package broker

// Cluster mode: the node runs the control plane (controller.Controller:
// the __meta group on controller peers, registration and heartbeats on
// broker peers) and replicates every partition it hosts through the
// partition's own Raft group (replica.RaftReplicas). Both share one raftnet
// Mux on the peer's raft_port.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/controller"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
	"github.com/chronik-stream/chronik/dataplane/internal/replica"
)

// openCluster binds the raft port and prepares the controller and the
// partition groups; Run starts them.
func (b *Broker) openCluster() error {
	cl := b.cfg.Cluster
	self := cl.Self()
	ln := b.cfg.RaftListener
	if ln == nil {
		addr := net.JoinHostPort(b.cfg.BindAddr, strconv.Itoa(self.RaftPort))
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listen on raft port %s: %w", addr, err)
		}
	}
	mux, err := raftnet.New(raftnet.Config{Listener: ln, LocalAddr: self.RaftAddr(), Logger: b.cfg.Logger})
	if err != nil {
		ln.Close()
		return fmt.Errorf("start raft port: %w", err)
	}
	b.mux = mux
	b.ctrl, err = controller.New(controller.Config{
		NodeID:         b.cfg.NodeID,
		DataDir:        b.cfg.DataDir,
		Cluster:        cl,
		Mux:            mux,
		Logger:         b.cfg.Logger,
		Registerer:     b.reg,
		AdvertisedHost: b.cfg.AdvertisedHost,
		AdvertisedPort: int32(b.cfg.AdvertisedPort),
	})
	if err != nil {
		b.closeMux()
		return err
	}
	b.meta = b.ctrl.Service()
	b.rr, err = replica.NewRaftReplicas(replica.RaftConfig{
		Config:     b.replicaConfig(int32(cl.MinInsyncReplicas)),
		Mux:        mux,
		Cluster:    cl,
		Registerer: b.reg,
	})
	if err != nil {
		b.closeMux()
		return err
	}
	b.replicas = b.rr
	return nil
}

func (b *Broker) closeMux() {
	if b.mux != nil {
		b.mux.Close()
	}
}

// isBroker reports whether this node serves partitions.
func (b *Broker) isBroker() bool {
	return b.cfg.Cluster == nil || b.cfg.Cluster.Self().HasRole(config.RoleBroker)
}

// awaitCluster returns once the controller has bootstrapped (or joined)
// the cluster and, on a broker peer, the metadata lists this broker alive,
// so that new partitions can be placed on it.
func (b *Broker) awaitCluster(ctx context.Context, ctrlDone <-chan struct{}) error {
	select {
	case <-b.ctrl.Ready():
	case <-ctrlDone:
		return errors.New("control plane stopped before the node joined the cluster")
	case <-ctx.Done():
		return ctx.Err()
	}
	if !b.isBroker() {
		return nil
	}
	for {
		changed := b.meta.Changed()
		if br := b.meta.State().Brokers[b.cfg.NodeID]; br != nil && br.Alive {
			return nil
		}
		select {
		case <-changed:
		case <-ctrlDone:
			return errors.New("control plane stopped before this broker registered")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// metaHandOffTimeout bounds the __meta hand-off at shutdown.
const metaHandOffTimeout = 2 * time.Second

// handOff moves every leadership this node holds (partitions, then
// __meta) to other nodes before it stops, so clients with retries see no
// failed request. Partitions with no other in-sync replica keep theirs.
func (b *Broker) handOff() {
	if b.ctrl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.TransferTimeout)
	defer cancel()
	start := time.Now()
	err := b.rr.TransferAll(ctx)
	if b.ctrl.IsLeader() {
		// A __meta election takes a few hundred milliseconds; longer means
		// the other controllers are stopping too, and waiting helps no one.
		mctx, cancel := context.WithTimeout(ctx, metaHandOffTimeout)
		err = errors.Join(err, b.ctrl.TransferLeadership(mctx, 0))
		cancel()
	}
	if err != nil {
		b.log.Warn("leadership hand-off before shutdown incomplete", "err", err, "took", time.Since(start))
		return
	}
	b.log.Info("leaderships handed off before shutdown", "took", time.Since(start))
}
