package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestLinkerPrunesMethods links tierlb as the image builds it and checks
// that no reachable function can call a method by name (reflect's Method,
// MethodByName: executing a text/template does). One such function makes
// the linker keep every exported method of every type in the binary: 3.4 MB
// of code and read-only data when the status page used html/template, and
// most of what made tierlb's RSS larger than HAProxy's (see The data path
// in the README).
func TestLinkerPrunesMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links the whole binary")
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -dumpdep", "-o", "/dev/null", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v\n%s", err, stderr.Bytes())
	}
	// -dumpdep writes one "caller -> callee" edge per line, the caller
	// marked <ReflectMethod> when it calls a method by name.
	var edges int
	seen := map[string]bool{}
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " -> ") {
			continue
		}
		edges++
		if fn, _, ok := strings.Cut(line, " <ReflectMethod>"); ok && !seen[fn] {
			seen[fn] = true
			t.Errorf("%s calls methods by name, so the linker keeps every exported method", fn)
		}
	}
	if edges < 1000 {
		t.Fatalf("-dumpdep printed %d edges: not the linker's dependency dump", edges)
	}
}
