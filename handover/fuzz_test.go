package handover

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// FuzzDecode: no record crashes the decoder, every error is a protocol or
// version error, and what decodes re-encodes to the same record.
func FuzzDecode(f *testing.F) {
	for _, seed := range []struct {
		typ  msgType
		nfds int
		body any
	}{
		{msgHello, 0, helloBody{PID: 1, Version: "v1"}},
		{msgOffer, 0, offerBody{PID: 1, Sockets: 3}},
		{msgSockets, 1, socketsBody{Sockets: []Desc{{Network: "tcp", Addr: netip.MustParseAddrPort("[::]:80")}}}},
		{msgReady, 0, emptyBody{}},
		{msgError, 0, errorBody{Code: codeBusy, Error: "busy"}},
	} {
		b, err := encode(seed.typ, seed.nfds, seed.body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("TLBH"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, err := decode(rec)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.As(err, new(*VersionError)) {
				t.Fatalf("error %v is neither a protocol nor a version error", err)
			}
			return
		}
		if !bytes.Equal(rec[headerLen:], m.body) || m.nfds > maxFDsPerMessage {
			t.Fatalf("decoded %+v from %q", m, rec)
		}
		bodies := map[msgType]any{
			msgHello: &helloBody{}, msgOffer: &offerBody{}, msgSockets: &socketsBody{},
			msgReady: &emptyBody{}, msgAck: &emptyBody{}, msgError: &errorBody{},
		}
		v := bodies[m.typ]
		if err := decodeBody(m, m.typ, v); err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("body error %v is not a protocol error", err)
			}
			return
		}
		if sb, ok := v.(*socketsBody); ok {
			for _, d := range sb.Sockets {
				_ = d.check()
				_ = d.Matches("tcp", netip.MustParseAddrPort("0.0.0.0:80"))
			}
		}
		again, err := encode(m.typ, m.nfds, v)
		if err != nil {
			return // a body that only grows when re-encoded, past maxBody
		}
		m2, err := decode(again)
		if err != nil || m2.typ != m.typ || m2.nfds != m.nfds {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", m, m2, err)
		}
	})
}
