package testkit

import (
	"os/exec"
	"testing"
	"time"
)

func TestProcCollectsStderrAndExitCode(t *testing.T) {
	p := StartProc(t, exec.Command("/bin/sh", "-c", `echo starting >&2; echo "listening port=42" >&2; exit 3`))
	if got := p.WaitLog(t, `port=(\d+)`); got != "42" {
		t.Fatalf("WaitLog gave %q; want 42", got)
	}
	if code := p.Wait(t, 20*time.Second); code != 3 {
		t.Fatalf("exit code %d; want 3", code)
	}
	if p.Alive() {
		t.Fatal("Alive after the process exited")
	}
	if got, want := p.Logs(), "starting\nlistening port=42\n"; got != want {
		t.Fatalf("logs %q; want %q", got, want)
	}
}

func TestProcIsKilledAtCleanup(t *testing.T) {
	var p *Proc
	t.Run("runs", func(t *testing.T) {
		p = StartProc(t, exec.Command("/bin/sleep", "60"))
		if !p.Alive() {
			t.Fatal("not alive right after start")
		}
	})
	select {
	case <-p.Done():
	default:
		t.Fatal("the process outlived its test")
	}
}
