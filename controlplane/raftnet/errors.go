package raftnet

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned once the Mux has been closed.
	ErrClosed = errors.New("raftnet: mux closed")
	// ErrTransportClosed is returned by a GroupTransport after Close or
	// RemoveGroup.
	ErrTransportClosed = errors.New("raftnet: group transport closed")
	// ErrUnknownGroup means the peer hosts no Raft group of that name (yet).
	ErrUnknownGroup = errors.New("raftnet: unknown raft group")
	// ErrUnknownMethod means the peer has no handler for an RPC method.
	ErrUnknownMethod = errors.New("raftnet: unknown rpc method")
	// ErrBusy means the peer's group did not accept the request in time.
	ErrBusy = errors.New("raftnet: group busy")
	// ErrTimeout means no response arrived within the RPC timeout.
	ErrTimeout = errors.New("raftnet: rpc timed out")
	// ErrBlocked means the link to the peer is cut by Block.
	ErrBlocked = errors.New("raftnet: link blocked")
	// ErrPeerUnreachable means the last dial failed and the next attempt
	// waits for its backoff to expire.
	ErrPeerUnreachable = errors.New("raftnet: peer unreachable")
	// ErrConnClosed means the connection carrying a request went away.
	ErrConnClosed = errors.New("raftnet: connection closed")
	// ErrProtocol means a peer sent something that is not valid raftnet.
	ErrProtocol = errors.New("raftnet: protocol error")
	// ErrPipelineClosed is returned by a closed AppendEntries pipeline.
	ErrPipelineClosed = errors.New("raftnet: pipeline closed")
	// ErrFrameTooLarge means a message does not fit Config.MaxFrameSize.
	ErrFrameTooLarge = errors.New("raftnet: frame too large")
)

// Error codes carried in the op byte of error frames.
const (
	codeRemote        uint8 = 1 // the handler or Raft returned an error
	codeUnknownGroup  uint8 = 2
	codeUnknownMethod uint8 = 3
	codeBusy          uint8 = 4
	codeClosed        uint8 = 5
	codeTimeout       uint8 = 6
	codeProtocol      uint8 = 7
	codeBlocked       uint8 = 8
)

// RemoteError is an error reported by the peer that served a request.
type RemoteError struct {
	// Addr is the peer's Raft address.
	Addr string
	// Code classifies the error; see Unwrap.
	Code uint8
	// Msg is the error text produced on the peer.
	Msg string
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote %s: %s", e.Addr, e.Msg)
}

// Unwrap maps the code to this package's sentinel errors, so that
// errors.Is(err, ErrUnknownGroup) works across the wire.
func (e *RemoteError) Unwrap() error {
	switch e.Code {
	case codeUnknownGroup:
		return ErrUnknownGroup
	case codeUnknownMethod:
		return ErrUnknownMethod
	case codeBusy:
		return ErrBusy
	case codeClosed:
		return ErrTransportClosed
	case codeTimeout:
		return ErrTimeout
	case codeProtocol:
		return ErrProtocol
	case codeBlocked:
		return ErrBlocked
	}
	return nil
}

// errorCode picks the code to send for a local error.
func errorCode(err error) uint8 {
	switch {
	case errors.Is(err, ErrUnknownGroup):
		return codeUnknownGroup
	case errors.Is(err, ErrUnknownMethod):
		return codeUnknownMethod
	case errors.Is(err, ErrBusy):
		return codeBusy
	case errors.Is(err, ErrTransportClosed), errors.Is(err, ErrClosed):
		return codeClosed
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return codeTimeout
	case errors.Is(err, ErrProtocol):
		return codeProtocol
	case errors.Is(err, ErrBlocked):
		return codeBlocked
	}
	return codeRemote
}
