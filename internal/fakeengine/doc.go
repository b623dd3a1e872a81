// Package fakeengine is a Docker engine in memory that serves the parts of
// the Engine API tierlb's discovery calls, over a real unix socket, so that
// the real tierlb binary can discover thousands of containers that do not
// exist. It negotiates API versions as the daemon does (it is an API 1.41
// engine), filters lists and events as the daemon does, replays its last
// 256 events to a subscriber that asks for them with since/until, emits each
// lifecycle step's events in the daemon's order, and counts every request by
// endpoint.
//
// Every container's address is a loopback address 127.x.y.z; one Loopback
// listener accepts connections on all of them, so that a test routes real
// connections to any container.
//
//	e := fakeengine.New(fakeengine.Options{})
//	sock, err := e.Listen(filepath.Join(dir, "docker.sock"))
//	go e.Serve(ctx)                       // until ctx ends
//	c, err := e.Run("web-1", map[string]string{"tierlb.service": "web"})
//	e.BeginStop(c.ID)                      // kill (SIGTERM): tierlb drains it
//	e.FinishStop(c.ID)                     // die, network disconnect, stop
//	e.Start(c.ID, false)                   // network connect, start (true: and restart)
//	e.Requests()                           // {"GET /containers/json": 1, ...}
//
// With Options.Swarm the engine is also an active Swarm manager (as Docker
// 20.10 reports one) of Options.Nodes nodes: it serves services, tasks and
// nodes with the daemon's filters, and emits scope=swarm service and node
// events. Tasks get loopback addresses as containers do, on the overlay
// fakeoverlay, which a local container joins with ConnectOverlay:
//
//	s, tasks, err := e.CreateService("web", 3, map[string]string{"tierlb.service": "web"})
//	e.ScaleService("web", 2)               // update event; slot 3 desired shutdown
//	e.ReplaceTask(tasks[0].ID)             // a rolling update's step (no event)
//	e.EndTask(tasks[0].ID)                 // its container exited (no event)
//	e.DrainNode("node-2")                  // node update event; its tasks move
//	e.RemoveService("web")                 // remove event; the tasks are forgotten
//
// Without it the Swarm endpoints answer 503 as a daemon outside Swarm mode
// does.
package fakeengine
