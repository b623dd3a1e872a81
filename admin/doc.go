// Package admin is tierlb's operator surface on the admin listener: the
// Prometheus collector over the backends' counters, the JSON API that lists
// services and explains discovery, the runtime drain/ready/maint actions, a
// self-refreshing HTML status page, and optional pprof handlers.
//
// It reads state only through the small Services interface (and the Explain
// and Ready funcs), so cmd/ decides what is served and reloads can swap the
// service list without restarting the server:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(admin.NewCollector(services))
//	srv := admin.New(admin.Options{Listen: "127.0.0.1:9090", Gatherer: reg, Services: services, Logger: log})
//	if err := srv.Listen(); err != nil { ... } // bind now, so bind errors surface early
//	err := srv.Run(ctx)                         // until ctx is done
package admin
