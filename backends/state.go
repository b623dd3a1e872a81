package backends

import "fmt"

// State is a backend's routing state as operators see it.
type State uint32

const (
	// StateUp takes new connections.
	StateUp State = iota
	// StateDown failed its health checks (active or passive).
	StateDown
	// StateDraining takes no new connections; open ones go on.
	StateDraining
	// StateMaint was put out of rotation by an operator.
	StateMaint
)

func (s State) String() string {
	switch s {
	case StateUp:
		return "up"
	case StateDown:
		return "down"
	case StateDraining:
		return "draining"
	case StateMaint:
		return "maint"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// ParseState parses the names String returns.
func ParseState(s string) (State, error) {
	switch s {
	case "up":
		return StateUp, nil
	case "down":
		return StateDown, nil
	case "draining":
		return StateDraining, nil
	case "maint":
		return StateMaint, nil
	}
	return 0, fmt.Errorf("unknown backend state %q (want up, down, draining or maint)", s)
}
