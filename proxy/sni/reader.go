// Package sni routes TLS connections by the server name of their
// ClientHello, without terminating TLS.
//
// A Reader frames the ClientHello from the bytes a client has sent so far,
// record by record, so a non-blocking caller learns when the message is
// whole without parsing it again on every read; ServerName then parses it;
// a Matcher, built once per configuration, maps the name to a route.
//
//	var r sni.Reader
//	for {
//		buf = append(buf, readSome()...)
//		n, err := r.Next(buf)
//		if err != nil { ... }  // ErrNotTLS, ErrTooLarge or ErrMalformed
//		if n == 0 { continue } // more to come
//		name, err := sni.ServerName(buf[:n])
//		route, ok := m.Match(name)
//		...                    // send all of buf on, unchanged
//	}
package sni

import "errors"

// MaxSize bounds the bytes a ClientHello may take, its TLS record headers
// included. 16 KiB holds the largest hellos browsers send (post-quantum
// key shares make them ~1.8 KB) many times over.
const MaxSize = 16 << 10

// The ways a client's first bytes fail to be a ClientHello. Errors from
// Reader.Next and ServerName match one of them with errors.Is.
var (
	// ErrNotTLS: the first bytes are not a TLS handshake record (plain
	// HTTP, SSH, an SSLv2 hello, garbage).
	ErrNotTLS = errors.New("not TLS")
	// ErrTooLarge: the ClientHello does not fit in MaxSize bytes.
	ErrTooLarge = errors.New("ClientHello larger than 16 KiB")
	// ErrMalformed: TLS records that do not hold a well-formed ClientHello.
	ErrMalformed = errors.New("malformed ClientHello")
)

const (
	recordHeaderLen    = 5
	handshakeHeaderLen = 4
	recordTypeHS       = 22 // handshake
	typeClientHello    = 1
	// maxPlaintext is TLS's largest record fragment (RFC 8446, 5.1).
	maxPlaintext = 1 << 14
)

// Reader frames a ClientHello across TLS records and reads: each call to
// Next looks only at the records completed since the last one. The zero
// value is ready; Reset readies it for another connection.
type Reader struct {
	off    int     // bytes of the input framed so far: whole records
	got    int     // handshake bytes in those records
	msgEnd int     // handshake header plus body; 0 while the header is incomplete
	hdr    [4]byte // the handshake header, which may span records
}

// Reset forgets the connection read so far.
func (r *Reader) Reset() { *r = Reader{} }

// Next is given every byte the client has sent so far: the same bytes as
// on the previous call, possibly followed by more. It returns 0 and nil
// while the ClientHello is incomplete, and the length of the records
// that hold it once it is whole (what follows them, if anything, was sent
// after the hello). Its errors wrap ErrNotTLS, ErrTooLarge or
// ErrMalformed; a not-TLS verdict may come from the first byte alone.
func (r *Reader) Next(buf []byte) (int, error) {
	if r.off == 0 {
		if err := checkStart(buf); err != nil {
			return 0, err
		}
	}
	for len(buf)-r.off >= recordHeaderLen {
		h := buf[r.off : r.off+recordHeaderLen]
		n := int(h[3])<<8 | int(h[4])
		switch {
		case h[0] != recordTypeHS:
			// A ClientHello is never interleaved with other records.
			return 0, errors.Join(ErrMalformed, errors.New("record of another type inside the ClientHello"))
		case h[1] != 3:
			return 0, errors.Join(ErrMalformed, errors.New("record version is not TLS"))
		case n == 0:
			// RFC 8446, 5.1: handshake fragments are never empty.
			return 0, errors.Join(ErrMalformed, errors.New("empty handshake record"))
		case n > maxPlaintext:
			return 0, errors.Join(ErrMalformed, errors.New("record longer than 16 KiB"))
		case r.off+recordHeaderLen+n > MaxSize:
			return 0, ErrTooLarge
		case len(buf)-r.off-recordHeaderLen < n:
			return 0, nil // the record is incomplete
		}
		if err := r.frame(buf[r.off+recordHeaderLen : r.off+recordHeaderLen+n]); err != nil {
			return 0, err
		}
		r.off += recordHeaderLen + n
		if r.msgEnd > 0 && r.got >= r.msgEnd {
			return r.off, nil
		}
	}
	if r.off+recordHeaderLen >= MaxSize {
		return 0, ErrTooLarge // not even another record header fits
	}
	return 0, nil
}

// frame counts one record's handshake bytes toward the message, reading
// the handshake header from the first four of them.
func (r *Reader) frame(frag []byte) error {
	if r.got < handshakeHeaderLen {
		k := copy(r.hdr[r.got:], frag)
		r.got += k
		frag = frag[k:]
		if r.got < handshakeHeaderLen {
			return nil
		}
		if r.hdr[0] != typeClientHello {
			return errors.Join(ErrMalformed, errors.New("first handshake message is not a ClientHello"))
		}
		body := int(r.hdr[1])<<16 | int(r.hdr[2])<<8 | int(r.hdr[3])
		// Each record of the message costs a header; one at least.
		if recordHeaderLen+handshakeHeaderLen+body > MaxSize {
			return ErrTooLarge
		}
		r.msgEnd = handshakeHeaderLen + body
	}
	r.got += len(frag)
	return nil
}

// checkStart tells a TLS handshake from anything else by the first bytes
// of the first record, as soon as they arrive: content type handshake
// and a 3.x record version.
func checkStart(buf []byte) error {
	if len(buf) >= 1 && buf[0] != recordTypeHS {
		return ErrNotTLS
	}
	if len(buf) >= 2 && buf[1] != 3 {
		return ErrNotTLS
	}
	return nil
}
