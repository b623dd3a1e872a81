// Package docker discovers the replicas of tierlb services through the Docker
// Engine API: it lists the containers that carry tierlb labels (or match a
// configured selector), follows the daemon's event stream, and hands each
// service a full list of backends.Spec after every change.
//
// The provider finds its own container first, so that it dials every replica
// on a network the proxy really shares (see address.go), drains a replica as
// soon as Docker announces it is being stopped, and keeps serving the last
// known backends while the engine is unreachable:
//
//	p, err := docker.New(docker.Config{}, []docker.ServiceSelector{{Name: "app"}}, sink, docker.Options{Logger: log})
//	if err != nil { ... }
//	go p.Run(ctx)          // lists, follows events, relists every ResyncInterval
//	ok, why := p.Ready()   // for /readyz: false until the first full sync
//	p.Explain()            // every container seen, routed or not, and why
//
// When the engine is a Swarm manager (Config.Swarm), services are selected
// by their labels too and their tasks on every node become backends, dialed
// on an overlay the proxy shares (swarm.go, task.go); Swarm sends no task
// events, so tasks are relisted on service, node and local container
// events, quickly while Swarm acts on a service, and every SwarmPoll.
//
// All calls into the Sink come from Run's goroutine, one at a time.
package docker
