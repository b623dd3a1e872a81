// Command whoami is tierlb's own small backend: the server behind the
// benchmark, the Docker example and the Docker tests. It is a static binary
// (CGO_ENABLED=0, standard library only) so images can be FROM scratch.
//
//	whoami --listen :8080 [--name web-1] [--chain http://app:8081/chain] [--echo :9000] [--dns :53]
//
// HTTP/1.1 with keep-alive and pipelining:
//
//	GET /            "Name: NAME\nRemoteAddr: CLIENT\nLocalAddr: LOCAL\n"
//	GET /name        "NAME\n" (what round-robin tests count)
//	GET /chain       "NAME -> NEXT\n": NEXT is what --chain URL answered,
//	                 on a new connection (502 when it fails); "NAME\n"
//	                 without --chain, the last tier
//	GET /bytes/N     N bytes (also /bytes?n=N), up to 1 GiB
//	GET /healthz     200 "ok" (503 with --unhealthy)
//
// NAME is --name, else $NAME, else, inside a Docker container, the container's
// name as Docker's embedded DNS answers for its own address (so scaled
// Compose replicas answer three-tier_app_2, not an ID), else the hostname.
// --echo adds a raw TCP echo listener that honours half-close. --dns adds a
// UDP DNS responder that answers every TXT question with NAME. --probe
// HOST:PORT checks another instance's /healthz and exits 0 or 1, for a
// Docker HEALTHCHECK in an image that has no shell or curl.
// SIGTERM/SIGINT: go on serving for --lame-duck (default 3s, or
// $LAME_DUCK), answering "Connection: close" and 503 on /healthz, so that
// connections a load balancer sends before it hears of the stop are served;
// then stop accepting, close idle connections, let busy ones finish within
// --drain, exit 0.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "HTTP listen address")
	name := fs.String("name", "", "name to report (default $NAME, else the hostname)")
	echo := fs.String("echo", "", "raw TCP echo listen address (off when empty)")
	chain := fs.String("chain", os.Getenv("CHAIN"), "URL that GET /chain calls, the next tier ($CHAIN; empty: the last tier)")
	lameDefault := DefaultLameDuck
	if env := os.Getenv("LAME_DUCK"); env != "" {
		d, err := time.ParseDuration(env)
		if err != nil || d < 0 {
			fmt.Fprintf(os.Stderr, "whoami: LAME_DUCK=%q: want a duration such as 3s or 0\n", env)
			return 1
		}
		lameDefault = d
	}
	lameDuck := fs.Duration("lame-duck", lameDefault, "on SIGTERM, how long to go on serving before closing the listener ($LAME_DUCK)")
	drain := fs.Duration("drain", 10*time.Second, "after the lame-duck period, how long busy connections may finish")
	dns := fs.String("dns", "", "UDP DNS listen address: TXT questions answered with the name (off when empty)")
	unhealthy := fs.Bool("unhealthy", false, "answer 503 on /healthz")
	probe := fs.String("probe", "", "check HOST:PORT/healthz and exit 0 (healthy) or 1")
	verbose := fs.Bool("v", false, "log bad requests")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if err := checkChainURL(*chain); err != nil {
		fmt.Fprintln(os.Stderr, "whoami:", err)
		return 1
	}
	if *probe != "" {
		if err := probeHealth(*probe, 2*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "whoami:", err)
			return 1
		}
		return 0
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &Server{Name: resolveName(*name), Chain: *chain, Unhealthy: *unhealthy, LameDuck: *lameDuck, DrainTimeout: *drain, Logger: log}
	if err := serve(ctx, log, srv, *listen, *echo, *dns); err != nil {
		log.Error("whoami failed", "err", err)
		return 2
	}
	return 0
}

// serve binds both listeners before serving so a bad address fails fast.
func serve(ctx context.Context, log *slog.Logger, srv *Server, listen, echo, dns string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	var eln net.Listener
	if echo != "" {
		if eln, err = net.Listen("tcp", echo); err != nil {
			ln.Close()
			return fmt.Errorf("listen echo: %w", err)
		}
	}
	var dc net.PacketConn
	if dns != "" {
		if dc, err = net.ListenPacket("udp", dns); err != nil {
			ln.Close()
			if eln != nil {
				eln.Close()
			}
			return fmt.Errorf("listen dns: %w", err)
		}
	}
	log.Info("whoami serving", "name", srv.Name, "http", ln.Addr().String(), "chain", srv.Chain, "echo", echo, "dns", dns)
	lameDuck, drain := srv.LameDuck, srv.DrainTimeout
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errs = make([]error, 3)
	)
	context.AfterFunc(ctx, func() { log.Info("whoami stopping: lame duck", "for", lameDuck) })
	wg.Go(func() {
		errs[0] = srv.Serve(ctx, ln)
		cancel() // one listener failing stops the other
	})
	if eln != nil {
		wg.Go(func() {
			errs[1] = (&Echo{LameDuck: lameDuck, DrainTimeout: drain}).Serve(ctx, eln)
			cancel()
		})
	}
	if dc != nil {
		wg.Go(func() {
			errs[2] = (&DNS{Name: srv.Name}).Serve(ctx, dc)
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func resolveName(flagName string) string {
	if flagName != "" {
		return flagName
	}
	if env := os.Getenv("NAME"); env != "" {
		return env
	}
	if _, err := os.Stat("/.dockerenv"); err == nil {
		if n := containerName(1 * time.Second); n != "" {
			return n
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "whoami"
}

// containerName asks Docker's embedded DNS (127.0.0.11, on user-defined
// networks) for the name of this container's own address: it answers
// "CONTAINER.NETWORK.", and Compose names never contain a dot, so the first
// label is the container name. The resolver of the standard library would
// answer from /etc/hosts, where Docker maps the address to the hostname (the
// container ID). "" when nothing answers in time.
func containerName(timeout time.Duration) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() {
			continue
		}
		name, err := lookupPTR("127.0.0.11:53", ipn.IP.To4(), timeout)
		if err != nil {
			continue
		}
		if first, _, _ := strings.Cut(name, "."); first != "" {
			return first
		}
	}
	return ""
}

// probeHealth sends GET /healthz to addr and wants a 2xx status line.
func probeHealth(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("probe %s: read status: %w", addr, err)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || !strings.HasPrefix(fields[1], "2") {
		return fmt.Errorf("probe %s: unhealthy: %q", addr, strings.TrimSpace(line))
	}
	return nil
}
