package adminapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// Headers the service reads and writes.
const (
	// ForwardedHeader marks a call forwarded to the active controller; its
	// value is the forwarding node's id. A call carrying it is never
	// forwarded again.
	ForwardedHeader = "Chronik-Admin-Forwarded"
	// StatusSourceHeader on GetClusterStatus and ListNodes answers says
	// whose image they come from: "controller" or "local".
	StatusSourceHeader = "Chronik-Status-Source"
	// InternalTopicsHeader on GetClusterStatus answers lists, comma
	// separated, the topics of the answer that are internal
	// (__consumer_offsets), which the status message has no field for.
	InternalTopicsHeader = "Chronik-Internal-Topics"
)

// Paths the handler serves, for a broker that mounts it on a mux of its own.
const (
	// ConnectPath prefixes the Connect AdminService procedures.
	ConnectPath = "/" + adminv1connect.AdminServiceName + "/"
	// RESTPath prefixes the deployment guide's REST forms.
	RESTPath = "/admin/"
)

// Defaults of Config fields left zero.
const (
	DefaultTransferTimeout = 10 * time.Second
	DefaultStepTimeout     = 10 * time.Minute
	DefaultPollInterval    = 20 * time.Millisecond
)

// Config configures a Service.
type Config struct {
	// Backend is the node the service runs on. Required.
	Backend Backend
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// HTTPClient carries calls forwarded to the active controller; nil
	// means a plain client. Deadlines come from each call's context.
	HTTPClient *http.Client
	// MinInsyncReplicas is the min.insync.replicas of topics that do not
	// set it (cluster.toml's min_insync_replicas); 0 means 1.
	MinInsyncReplicas int
	// TransferTimeout bounds a leadership transfer whose request gives no
	// timeout, and each leader move of a rebalance.
	TransferTimeout time.Duration
	// StepTimeout bounds one rebalance step, including the new replica's
	// catch-up.
	StepTimeout time.Duration
	// PollInterval is how often a wait re-reads the metadata image and the
	// __meta status when the Backend offers no change signal (a Changed()
	// <-chan struct{} method, as metadata.Service has).
	PollInterval time.Duration
}

// Service serves the admin API of one node.
type Service struct {
	cfg    Config
	b      Backend
	log    *slog.Logger
	client *http.Client
	reb    *rebalancer
}

var _ adminv1connect.AdminServiceHandler = (*Service)(nil)

// New returns a Service over cfg.Backend. Its rebalance executor runs once
// Run is called.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.MinInsyncReplicas <= 0 {
		cfg.MinInsyncReplicas = 1
	}
	if cfg.TransferTimeout <= 0 {
		cfg.TransferTimeout = DefaultTransferTimeout
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = DefaultStepTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	s := &Service{
		cfg:    cfg,
		b:      cfg.Backend,
		log:    cfg.Logger.With("component", "adminapi", "node_id", cfg.Backend.NodeID()),
		client: cfg.HTTPClient,
	}
	s.reb = newRebalancer(s)
	return s
}

// Handler serves the Connect AdminService under ConnectPath and the REST
// forms POST /admin/transfer-leader and POST /admin/rebalance under
// RESTPath. A broker mounts it on its HTTP mux at both prefixes (or at "/"
// below its own more specific routes such as /metrics).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := adminv1connect.NewAdminServiceHandler(s, connect.WithRecover(s.recovered))
	mux.Handle(path, h)
	mux.HandleFunc("POST /admin/transfer-leader", s.restTransferLeader)
	mux.HandleFunc("POST /admin/rebalance", s.restRebalance)
	mux.HandleFunc(RESTPath, s.restUnknown)
	return mux
}

func (s *Service) recovered(_ context.Context, spec connect.Spec, _ http.Header, p any) error {
	s.log.Error("admin call panicked", "procedure", spec.Procedure, "panic", p)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error in %s", spec.Procedure))
}

// Run executes rebalances until ctx ends, then waits for the step in flight
// to stop and returns nil.
func (s *Service) Run(ctx context.Context) error {
	return s.reb.run(ctx)
}

// isController reports whether this node leads __meta.
func (s *Service) isController() bool {
	return s.b.Meta().LeaderID == s.b.NodeID()
}

// route decides where a controller call runs: here (addr == "") or on the
// controller at addr.
func (s *Service) route(h http.Header) (addr string, err error) {
	if s.isController() {
		return "", nil
	}
	if from := h.Get(ForwardedHeader); from != "" {
		return "", errorf(ErrNotController, "node %d is not the active controller either (call forwarded by node %s); retry once __meta has settled on a leader",
			s.b.NodeID(), from)
	}
	addr, ok := s.b.ControllerAddr()
	if leader := s.b.Meta().LeaderID; leader != 0 && (!ok || addr == "") {
		return "", errorf(ErrNoController, "node %d knows no address for the active controller, node %d", s.b.NodeID(), leader)
	}
	if !ok || addr == "" {
		return "", errorf(ErrNoController, "no active controller: __meta has no leader that node %d knows of", s.b.NodeID())
	}
	return addr, nil
}

// clientFor returns a Connect client for the node at a Kafka address.
func (s *Service) clientFor(addr string) adminv1connect.AdminServiceClient {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return adminv1connect.NewAdminServiceClient(s.client, base)
}

// remoteCall is a method of the Connect client, such as
// adminv1connect.AdminServiceClient.StartRebalance.
type remoteCall[Req, Resp any] func(adminv1connect.AdminServiceClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)

// forward sends req to the controller at addr, marked as forwarded. An
// answer from the controller, error or not, is passed back as it is; a
// failure to reach it is Unavailable.
func forward[Req, Resp any](ctx context.Context, s *Service, addr string, req *connect.Request[Req], call remoteCall[Req, Resp]) (*connect.Response[Resp], error) {
	out := connect.NewRequest(req.Msg)
	out.Header().Set(ForwardedHeader, strconv.Itoa(int(s.b.NodeID())))
	resp, err := call(s.clientFor(addr), ctx, out)
	if err == nil {
		// A fresh response, so that none of the controller's transport
		// headers are written back twice.
		fresh := connect.NewResponse(resp.Msg)
		for _, k := range []string{InternalTopicsHeader, StatusSourceHeader} {
			if v := resp.Header().Get(k); v != "" {
				fresh.Header().Set(k, v)
			}
		}
		return fresh, nil
	}
	if connect.IsWireError(err) {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, connectError(ctx.Err())
	}
	return nil, connect.NewError(connect.CodeUnavailable,
		wrapOp(ErrForwardFailed, err, "forward to the active controller at %s", addr))
}

// onController runs local here when this node is the active controller,
// and forwards req to the controller otherwise.
func onController[Req, Resp any](ctx context.Context, s *Service, req *connect.Request[Req], remote remoteCall[Req, Resp],
	local func(context.Context, *Req) (*Resp, error),
) (*connect.Response[Resp], error) {
	addr, err := s.route(req.Header())
	if err != nil {
		return nil, connectError(err)
	}
	if addr != "" {
		return forward(ctx, s, addr, req, remote)
	}
	resp, err := local(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

// fromController forwards a read to the controller when there is one to
// reach, and answers it from this node's image otherwise (no controller,
// controller unreachable or not leading any more). The answer's
// StatusSourceHeader says which.
func fromController[Req, Resp any](ctx context.Context, s *Service, req *connect.Request[Req], remote remoteCall[Req, Resp],
	local func(context.Context, *Req) (*Resp, http.Header, error),
) (*connect.Response[Resp], error) {
	source := "controller"
	addr, err := s.route(req.Header())
	switch {
	case err != nil:
		source = "local"
	case addr != "":
		resp, err := forward(ctx, s, addr, req, remote)
		if err == nil {
			if resp.Header().Get(StatusSourceHeader) == "" {
				resp.Header().Set(StatusSourceHeader, source)
			}
			return resp, nil
		}
		if connect.CodeOf(err) != connect.CodeUnavailable {
			return nil, err
		}
		s.log.Warn("answering from the local metadata image", "procedure", req.Spec().Procedure, "error", err)
		source = "local"
	}
	msg, hdr, err := local(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	resp := connect.NewResponse(msg)
	for k, v := range hdr {
		resp.Header()[k] = v
	}
	resp.Header().Set(StatusSourceHeader, source)
	return resp, nil
}

// errIsCtx reports whether err comes from a context ending.
func errIsCtx(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
