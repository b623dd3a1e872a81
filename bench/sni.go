package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The SNI scenario: TLS connections routed by the server name in their
// ClientHello to one of two TLS backends, each with its own certificate.
// Each connection is a fresh TCP connection and a full TLS 1.3 handshake (no
// resumption) naming one of the two names in turn, the backend's one-line
// answer, and a close. The backends and the clients run in the bench
// process, so the proxy's own CPU is what is charged per connection.

// sniNames are the two server names routed; a backend answers with its name.
var sniNames = []string{"app.example.com", "api.example.com"}

// SNI load shape: sniConns clients, together at most sniRate new connections
// a second (the h2load -r 300 pace, a little faster), so a run never
// runs its client out of local ports (TIME_WAIT holds each for 60 s).
const (
	sniConns = 16
	sniRate  = 400
)

// tlsBackends are the SNI scenario's backends, one per name.
type tlsBackends struct {
	lns    []net.Listener
	client *tls.Config // trusts both certificates
}

func (b *tlsBackends) addrs() []string {
	var out []string
	for _, ln := range b.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

func (b *tlsBackends) close() {
	for _, ln := range b.lns {
		ln.Close()
	}
}

// startTLSBackends listens on a loopback port per name of sniNames, with a
// fresh self-signed certificate each.
func startTLSBackends() (*tlsBackends, error) {
	b := &tlsBackends{client: &tls.Config{RootCAs: x509.NewCertPool()}}
	for _, name := range sniNames {
		cert, leaf, err := selfSigned(name)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("certificate for %s: %w", name, err)
		}
		b.client.RootCAs.AddCert(leaf)
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true})
		if err != nil {
			b.close()
			return nil, fmt.Errorf("TLS backend for %s: %w", name, err)
		}
		b.lns = append(b.lns, ln)
		go serveName(ln, name)
	}
	return b, nil
}

// serveName answers every connection with name and a newline, then waits
// for the client to close (bounded by a deadline).
func serveName(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, name+"\n"); err != nil {
				return
			}
			io.Copy(io.Discard, c)
		}()
	}
}

func selfSigned(name string) (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// sniResult is one SNI load run.
type sniResult struct {
	done, failed int64
	seconds      float64
	firstErr     error
}

// sniLoad runs conns clients against addr for d, at most rate connections a
// second and rate×d in all; each connection names sniNames in turn and must
// reach the backend for that name.
//
// The run ends by handing out no more connections after d; connections in
// flight then finish (each bounded by its own 5 s), so none is cut off and
// counted as a failure.
func sniLoad(ctx context.Context, addr string, client *tls.Config, conns, rate int, d time.Duration) sniResult {
	run, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	limit := int64(float64(rate) * d.Seconds())
	tokens := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := int64(0); n < limit; n++ {
			select {
			case <-run.Done():
				return
			case <-tick.C:
			}
			select {
			case <-run.Done():
				return
			case tokens <- struct{}{}:
			}
		}
	}()
	var (
		r       sniResult
		done    atomic.Int64
		failed  atomic.Int64
		errOnce sync.Once
		wg      sync.WaitGroup
		next    atomic.Int64
	)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for {
				select {
				case <-run.Done():
					return
				case <-tokens:
				}
				name := sniNames[int(next.Add(1))%len(sniNames)]
				if err := tlsAsk(ctx, addr, name, client); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					errOnce.Do(func() { r.firstErr = err })
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	r.done, r.failed, r.seconds = done.Load(), failed.Load(), time.Since(start).Seconds()
	return r
}

// tlsAsk is one connection: a full handshake naming name, checked against
// name's certificate, and the backend's answer, which must be name.
func tlsAsk(ctx context.Context, addr, name string, base *tls.Config) error {
	cfg := base.Clone()
	cfg.ServerName = name
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != name+"\n" {
		return fmt.Errorf("%q answered for %q", strings.TrimSpace(line), name)
	}
	return nil
}

func runSNI(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	if e.tls == nil {
		return o, errors.New("sni: no TLS backends")
	}
	before := r.cpuTicks()
	res := sniLoad(ctx, r.tlsAddr, e.tls.client, sniConns, sniRate, e.opts.Duration)
	cpu := cpuSeconds(r.cpuTicks() - before)
	if err := r.alive(); err != nil {
		return o, err
	}
	if res.done == 0 {
		return o, fmt.Errorf("sni: no connection completed: %v", res.firstErr)
	}
	o.set("conns_per_s", float64(res.done)/res.seconds)
	o.set("errors", float64(res.failed))
	if res.failed > 0 {
		o.note("%d of %d TLS connections failed, the first: %v", res.failed, res.done+res.failed, res.firstErr)
	}
	o.setPerUnit("cpu_us_per_conn", cpu, float64(res.done), 1e6)
	return o, nil
}
