package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// Sentinel errors. The errors this package returns wrap one of them and
// carry a message meant for the operator, without the package prefix.
var (
	ErrInvalidRequest   = errors.New("adminapi: invalid request")
	ErrUnknownNode      = errors.New("adminapi: unknown node")
	ErrUnknownTopic     = errors.New("adminapi: unknown topic")
	ErrUnknownPartition = errors.New("adminapi: unknown partition")
	ErrUnknownRebalance = errors.New("adminapi: unknown rebalance")
	ErrNodeExists       = errors.New("adminapi: node already exists")
	ErrNotReplica       = errors.New("adminapi: node is not a replica")
	ErrNotInSync        = errors.New("adminapi: node is not in sync")
	ErrNotAlive         = errors.New("adminapi: node is not alive")
	ErrNotVoter         = errors.New("adminapi: node is not a __meta voter")
	ErrNoCandidate      = errors.New("adminapi: no node can take the leadership")
	ErrRebalanceRunning = errors.New("adminapi: a rebalance is already running")
	ErrNoRebalance      = errors.New("adminapi: no rebalance")
	ErrLastController   = errors.New("adminapi: last controller")
	ErrNotEnoughBrokers = errors.New("adminapi: not enough brokers")
	ErrStalePlan        = errors.New("adminapi: rebalance plan is stale")
	ErrNoController     = errors.New("adminapi: no active controller")
	ErrNotController    = errors.New("adminapi: not the active controller")
	ErrExecutorStopped  = errors.New("adminapi: rebalance executor is not running")
	ErrLeaderNotElected = errors.New("adminapi: leader not elected in time")
	ErrLostLeadership   = errors.New("adminapi: lost the __meta leadership")
	ErrForwardFailed    = errors.New("adminapi: forward to the active controller")
	ErrNoMetaLeader     = errors.New("adminapi: __meta has no leader")
	ErrPartitionOffline = errors.New("adminapi: partition has no leader")
)

// opError is an error for the operator: a plain message and the sentinel
// that classifies it.
type opError struct {
	kind error
	msg  string
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.kind }

// errorf returns an error of kind whose message is the formatted text.
func errorf(kind error, format string, args ...any) error {
	return &opError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// wrapOp returns an error of kind whose message is "msg: err" and which
// also wraps err.
func wrapOp(kind error, err error, format string, args ...any) error {
	return &wrappedOp{opError{kind: kind, msg: fmt.Sprintf(format, args...) + ": " + err.Error()}, err}
}

type wrappedOp struct {
	opError
	inner error
}

func (e *wrappedOp) Unwrap() []error { return []error{e.kind, e.inner} }

// code classifies err for Connect.
func code(err error) connect.Code {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrLeaderNotElected):
		return connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	case errors.Is(err, ErrInvalidRequest):
		return connect.CodeInvalidArgument
	case errors.Is(err, ErrUnknownNode), errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrUnknownPartition),
		errors.Is(err, ErrUnknownRebalance), errors.Is(err, metadata.ErrUnknownTopic),
		errors.Is(err, metadata.ErrUnknownPartition), errors.Is(err, metadata.ErrUnknownBroker):
		return connect.CodeNotFound
	case errors.Is(err, ErrNodeExists):
		return connect.CodeAlreadyExists
	case errors.Is(err, ErrNoController), errors.Is(err, ErrNotController), errors.Is(err, ErrExecutorStopped),
		errors.Is(err, ErrForwardFailed), errors.Is(err, ErrNoMetaLeader):
		return connect.CodeUnavailable
	case errors.Is(err, ErrNotReplica), errors.Is(err, ErrNotInSync), errors.Is(err, ErrNotAlive),
		errors.Is(err, ErrNotVoter), errors.Is(err, ErrNoCandidate), errors.Is(err, ErrRebalanceRunning),
		errors.Is(err, ErrNoRebalance), errors.Is(err, ErrLastController), errors.Is(err, ErrNotEnoughBrokers),
		errors.Is(err, ErrStalePlan), errors.Is(err, ErrLostLeadership), errors.Is(err, ErrPartitionOffline),
		errors.Is(err, metadata.ErrStaleEpoch):
		return connect.CodeFailedPrecondition
	default:
		return connect.CodeInternal
	}
}

// connectError converts err for a Connect answer. A Connect error (one
// passed back from the controller) keeps its code and message.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	return connect.NewError(code(err), err)
}

// errorMessage is the message of err without Connect's code prefix.
func errorMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// httpStatus maps a Connect code to the status of a REST answer.
func httpStatus(c connect.Code) int {
	switch c {
	case connect.CodeInvalidArgument:
		return http.StatusBadRequest
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeFailedPrecondition:
		return http.StatusConflict
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case connect.CodeCanceled:
		return 499 // client closed the request
	default:
		return http.StatusInternalServerError
	}
}
