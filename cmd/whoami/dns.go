package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// DNS is a tiny authoritative DNS responder over UDP: every TXT question,
// whatever the name, is answered with the instance's name; other types get
// an empty answer. It is the backend of tierlb's UDP tests and examples
// (`dig @tierlb -p 5353 TXT whoami +short` names the replica that answered).
type DNS struct {
	Name string
}

// Serve answers on c until ctx ends.
func (d *DNS) Serve(ctx context.Context, c net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	buf := make([]byte, 65535)
	out := make([]byte, 0, 512)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns read on %s: %w", c.LocalAddr(), err)
		}
		reply, err := dnsAnswer(out[:0], buf[:n], d.Name)
		if err != nil {
			continue // not a query we can answer even with an error code
		}
		_, _ = c.WriteTo(reply, from)
	}
}

// DNS header flags and codes used here.
const (
	dnsQR       = 0x8000
	dnsAA       = 0x0400
	dnsRD       = 0x0100
	rcodeFormat = 1
	rcodeNotImp = 4
	typeTXT     = 16
	classIN     = 1
)

var errNotQuery = errors.New("not a DNS query")

// dnsAnswer appends to out the response to query q: the question echoed and,
// for a TXT question, one TXT record holding name. A query it cannot parse
// past the header gets FORMERR; an opcode other than QUERY gets NOTIMP.
func dnsAnswer(out, q []byte, name string) ([]byte, error) {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return nil, errNotQuery
	}
	id, flags := binary.BigEndian.Uint16(q), binary.BigEndian.Uint16(q[2:])
	opcode := flags & 0x7800
	head := func(rcode uint16, qd, an uint16) []byte {
		out = binary.BigEndian.AppendUint16(out, id)
		out = binary.BigEndian.AppendUint16(out, dnsQR|opcode|dnsAA|flags&dnsRD|rcode)
		out = binary.BigEndian.AppendUint16(out, qd)
		out = binary.BigEndian.AppendUint16(out, an)
		return append(out, 0, 0, 0, 0) // NSCOUNT, ARCOUNT
	}
	if opcode != 0 {
		return head(rcodeNotImp, 0, 0), nil
	}
	if binary.BigEndian.Uint16(q[4:]) != 1 {
		return head(rcodeFormat, 0, 0), nil
	}
	// The question: an uncompressed name, then type and class.
	off := 12
	for off < len(q) && q[off] != 0 {
		l := int(q[off])
		if l&0xc0 != 0 {
			return head(rcodeFormat, 0, 0), nil
		}
		off += 1 + l
	}
	if off+5 > len(q) {
		return head(rcodeFormat, 0, 0), nil
	}
	question := q[12 : off+5]
	qtype, qclass := binary.BigEndian.Uint16(q[off+1:]), binary.BigEndian.Uint16(q[off+3:])
	if qtype != typeTXT || qclass != classIN {
		out = head(0, 1, 0)
		return append(out, question...), nil
	}
	txt := name[:min(len(name), 255)]
	out = head(0, 1, 1)
	out = append(out, question...)
	out = append(out, 0xc0, 12) // the name: a pointer to the question's
	out = binary.BigEndian.AppendUint16(out, typeTXT)
	out = binary.BigEndian.AppendUint16(out, classIN)
	out = binary.BigEndian.AppendUint32(out, 0) // TTL: never cache, every query reaches a replica
	out = binary.BigEndian.AppendUint16(out, uint16(1+len(txt)))
	out = append(out, byte(len(txt)))
	return append(out, txt...), nil
}
