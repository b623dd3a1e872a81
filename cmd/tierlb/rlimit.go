package main

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// raiseNoFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: every
// proxied connection holds two sockets (and pipes while splicing), and the
// usual soft limit of 1024 would cap a busy proxy at a few hundred clients.
// Failing to raise it is logged, not fatal: tierlb still works, with fewer
// connections.
func raiseNoFileLimit(log *slog.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("read the open files limit", "err", err)
		return
	}
	soft := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("raise the open files limit", "soft", soft, "hard", lim.Max, "err", err)
			return
		}
	}
	log.Info("open files limit", "soft_was", soft, "soft", lim.Cur, "hard", lim.Max)
}
