package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// lookupPTR sends one DNS PTR query for the IPv4 address ip to server over
// UDP and returns the first name in the answer, without a trailing dot.
func lookupPTR(server string, ip net.IP, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("udp", server, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	const id = 0x7a3b
	if _, err := c.Write(ptrQuery(id, ip)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return parsePTRAnswer(buf[:n], id)
}

// ptrQuery builds a recursive query for d.c.b.a.in-addr.arpa PTR IN.
func ptrQuery(id uint16, ip net.IP) []byte {
	q := make([]byte, 12, 64)
	binary.BigEndian.PutUint16(q[0:], id)
	binary.BigEndian.PutUint16(q[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(q[4:], 1)      // QDCOUNT
	name := fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", ip[3], ip[2], ip[1], ip[0])
	for _, label := range strings.Split(name, ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 12, 0, 1) // root, TYPE PTR, CLASS IN
}

var errNoPTR = errors.New("no PTR record in the answer")

// parsePTRAnswer returns the first PTR name of a response to query id.
func parsePTRAnswer(m []byte, id uint16) (string, error) {
	if len(m) < 12 || binary.BigEndian.Uint16(m) != id || m[2]&0x80 == 0 {
		return "", errors.New("not a response to our query")
	}
	if rcode := m[3] & 0x0f; rcode != 0 {
		return "", fmt.Errorf("dns rcode %d", rcode)
	}
	qd, an := int(binary.BigEndian.Uint16(m[4:])), int(binary.BigEndian.Uint16(m[6:]))
	off := 12
	for range qd {
		_, next, err := readName(m, off)
		if err != nil {
			return "", err
		}
		off = next + 4
	}
	for range an {
		_, next, err := readName(m, off)
		if err != nil {
			return "", err
		}
		if next+10 > len(m) {
			return "", errors.New("truncated record")
		}
		typ := binary.BigEndian.Uint16(m[next:])
		rdlen := int(binary.BigEndian.Uint16(m[next+8:]))
		rdata := next + 10
		if rdata+rdlen > len(m) {
			return "", errors.New("truncated record data")
		}
		if typ == 12 {
			name, _, err := readName(m, rdata)
			return name, err
		}
		off = rdata + rdlen
	}
	return "", errNoPTR
}

// readName decodes a possibly compressed name at off and returns it with
// the offset just past it in the record.
func readName(m []byte, off int) (string, int, error) {
	var labels []string
	end := -1
	for jumps := 0; ; {
		if off >= len(m) {
			return "", 0, errors.New("name runs past the message")
		}
		l := int(m[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			return strings.Join(labels, "."), end, nil
		case l&0xc0 == 0xc0:
			if off+1 >= len(m) {
				return "", 0, errors.New("truncated pointer")
			}
			if jumps++; jumps > 16 {
				return "", 0, errors.New("name pointer loop")
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(m[off:]) & 0x3fff)
		case l&0xc0 != 0:
			return "", 0, errors.New("unknown label type")
		default:
			if off+1+l > len(m) {
				return "", 0, errors.New("label runs past the message")
			}
			labels = append(labels, string(m[off+1:off+1+l]))
			off += 1 + l
		}
	}
}
