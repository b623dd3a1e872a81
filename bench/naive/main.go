// Command naive is the reference "naive Go proxy": per connection,
// two goroutines doing io.Copy on bare *net.TCPConn, so Go's standard
// library splices with a 1 MiB pipe per direction taken for the whole life
// of the connection. It is a bench column only: what tierlb must beat, and
// proof that the pipe-budget and idle scenarios see the costs they claim to.
//
//	naive --listen 127.0.0.1:9000=127.0.0.1:8080 [--listen ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

type routes []string

func (r *routes) String() string     { return strings.Join(*r, ",") }
func (r *routes) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	var rs routes
	flag.Var(&rs, "listen", "LISTEN=BACKEND, repeatable")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var wg sync.WaitGroup
	for _, r := range rs {
		listen, backend, ok := strings.Cut(r, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "naive: --listen %q: want LISTEN=BACKEND\n", r)
			os.Exit(1)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "naive:", err)
			os.Exit(2)
		}
		context.AfterFunc(ctx, func() { ln.Close() })
		wg.Go(func() { serve(ln, backend) })
	}
	wg.Wait()
}

func serve(ln net.Listener, backend string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go handle(c.(*net.TCPConn), backend)
	}
}

func handle(client *net.TCPConn, backend string) {
	defer client.Close()
	b, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	server := b.(*net.TCPConn)
	defer server.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(server, client)
		server.CloseWrite()
		close(done)
	}()
	io.Copy(client, server)
	client.CloseWrite()
	<-done
}
