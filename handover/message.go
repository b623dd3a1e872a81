package handover

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the hand-over protocol this tierlb speaks. Both sides must
// speak the same one: a changed message is a new version.
const Version = 1

const (
	magic     = "TLBH"
	headerLen = 12 // magic 4 | version 1 | type 1 | descriptors 2 | body length 4
	maxBody   = 64 << 10

	// maxFDsPerMessage keeps each record far below the kernel's SCM_MAX_FD
	// (253), which some C libraries cannot even reach: HAProxy's transfer
	// of 253 at once failed on musl.
	maxFDsPerMessage = 64

	// MaxSockets bounds one hand-over: a few services with port ranges and
	// a UDP socket per loop stay far below it; a peer offering more is not
	// a tierlb.
	MaxSockets = 1 << 14
)

// msgType is a message's type; the exchange is
// hello → offer → sockets… → ready → ack, or error from either side.
type msgType uint8

const (
	msgHello msgType = iota + 1
	msgOffer
	msgSockets
	msgReady
	msgAck
	msgError
)

func (t msgType) String() string {
	switch t {
	case msgHello:
		return "hello"
	case msgOffer:
		return "offer"
	case msgSockets:
		return "sockets"
	case msgReady:
		return "ready"
	case msgAck:
		return "ack"
	case msgError:
		return "error"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// ErrProtocol is wrapped by every error about a malformed or unexpected
// message from the peer.
var ErrProtocol = errors.New("hand-over protocol error")

// VersionError is a peer that speaks another protocol version.
type VersionError struct{ Peer int }

func (e *VersionError) Error() string {
	return fmt.Sprintf("peer speaks hand-over protocol version %d, this tierlb speaks %d (upgrade through a version that speaks both, or restart)", e.Peer, Version)
}

// The message bodies.
type (
	helloBody struct {
		PID     int    `json:"pid"`
		Version string `json:"version"` // the tierlb version, for logs
	}
	offerBody struct {
		PID     int    `json:"pid"`
		Version string `json:"version"`
		Sockets int    `json:"sockets"`
	}
	socketsBody struct {
		Sockets []Desc `json:"sockets"`
	}
	emptyBody struct{}
	errorBody struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}
)

// The codes of an error message. busy and handed_over tell a successor to
// retry: the path will name a process that can hand over.
const (
	codeBusy       = "busy"
	codeHandedOver = "handed_over"
	codeRefused    = "refused"
	codeProtocol   = "protocol"
)

// message is one decoded record: its type, how many descriptors its header
// announces, and its JSON body.
type message struct {
	typ  msgType
	nfds int
	body []byte
}

// encode builds one record.
func encode(typ msgType, nfds int, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody || nfds > maxFDsPerMessage {
		return nil, fmt.Errorf("%s message too large: %d bytes, %d descriptors", typ, len(b), nfds)
	}
	rec := make([]byte, headerLen, headerLen+len(b))
	copy(rec, magic)
	rec[4] = Version
	rec[5] = byte(typ)
	binary.BigEndian.PutUint16(rec[6:], uint16(nfds))
	binary.BigEndian.PutUint32(rec[8:], uint32(len(b)))
	return append(rec, b...), nil
}

// decode checks one record's header and returns it with its body; the
// body is only decoded once the type is the one expected (decodeBody).
func decode(rec []byte) (message, error) {
	if len(rec) < headerLen {
		return message{}, fmt.Errorf("%w: record of %d bytes is shorter than the %d-byte header", ErrProtocol, len(rec), headerLen)
	}
	if string(rec[:4]) != magic {
		return message{}, fmt.Errorf("%w: peer is not a tierlb hand-over socket (magic %q)", ErrProtocol, rec[:4])
	}
	if v := int(rec[4]); v != Version {
		return message{}, &VersionError{Peer: v}
	}
	m := message{typ: msgType(rec[5]), nfds: int(binary.BigEndian.Uint16(rec[6:]))}
	if m.typ < msgHello || m.typ > msgError {
		return message{}, fmt.Errorf("%w: unknown message %s", ErrProtocol, m.typ)
	}
	if m.nfds > maxFDsPerMessage {
		return message{}, fmt.Errorf("%w: %s message announces %d descriptors (at most %d)", ErrProtocol, m.typ, m.nfds, maxFDsPerMessage)
	}
	if m.nfds > 0 && m.typ != msgSockets {
		return message{}, fmt.Errorf("%w: %s message announces %d descriptors", ErrProtocol, m.typ, m.nfds)
	}
	n := binary.BigEndian.Uint32(rec[8:])
	if n > maxBody {
		return message{}, fmt.Errorf("%w: %s body of %d bytes (at most %d)", ErrProtocol, m.typ, n, maxBody)
	}
	if got := len(rec) - headerLen; uint32(got) != n {
		return message{}, fmt.Errorf("%w: %s message truncated: body of %d bytes announced, %d received", ErrProtocol, m.typ, n, got)
	}
	m.body = rec[headerLen:]
	return m, nil
}

// decodeBody decodes a message of type want into v, strictly: unknown
// fields or trailing data mean a peer this version does not understand.
// An error message from the peer becomes a *PeerError.
func decodeBody(m message, want msgType, v any) error {
	if m.typ == msgError && want != msgError {
		var e errorBody
		if err := decodeBody(m, msgError, &e); err != nil {
			return err
		}
		return &PeerError{Code: e.Code, Msg: e.Error}
	}
	if m.typ != want {
		return fmt.Errorf("%w: got a %s message, expected %s", ErrProtocol, m.typ, want)
	}
	d := json.NewDecoder(bytes.NewReader(m.body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrProtocol, m.typ, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%w: %s body: data after the JSON value", ErrProtocol, m.typ)
	}
	return nil
}

// PeerError is an error the peer reported in an error message.
type PeerError struct {
	Code string
	Msg  string
}

func (e *PeerError) Error() string { return "peer: " + e.Msg }

// retry reports whether the successor should ask again at the path.
func (e *PeerError) retry() bool { return e.Code == codeBusy || e.Code == codeHandedOver }
