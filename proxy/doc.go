// Package proxy is tierlb's data path: one listener per service, an accept
// loop that picks backends from the service's current pool snapshot, and the
// byte movers that splice between the client and backend sockets.
//
//	svc, err := proxy.NewService(cfg, set, proxy.Options{Logger: log})
//	if err != nil { ... }
//	if err := svc.Listen(); err != nil { ... } // bind now, so bind errors surface early
//	go svc.Serve(ctx)                          // until ctx is done
//	...
//	svc.Shutdown(drainCtx)                     // close the listener, wait, then cut
package proxy
