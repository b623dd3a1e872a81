package health

import "time"

// schedule orders probers by due time: the next probe of an idle prober,
// or the timeout of a probe in flight. It is a binary min-heap that keeps
// each prober's position in prober.index (-1 when absent), so a prober is
// moved or removed in O(log n) without a search, and nothing is allocated
// once the heap has grown to its size.
type schedule struct {
	heap []*prober
}

func (s *schedule) len() int { return len(s.heap) }

// next returns the earliest prober, or nil.
func (s *schedule) next() *prober {
	if len(s.heap) == 0 {
		return nil
	}
	return s.heap[0]
}

// push queues p at p.due.
func (s *schedule) push(p *prober) {
	p.index = len(s.heap)
	s.heap = append(s.heap, p)
	s.up(p.index)
}

// remove takes p out of the queue if it is in it.
func (s *schedule) remove(p *prober) {
	i := p.index
	if i < 0 || i >= len(s.heap) || s.heap[i] != p {
		return
	}
	last := len(s.heap) - 1
	if i != last {
		s.swap(i, last)
	}
	s.heap[last] = nil
	s.heap = s.heap[:last]
	p.index = -1
	if i != last {
		s.down(i)
		s.up(i)
	}
}

// reschedule moves p, already queued, to a new due time.
func (s *schedule) reschedule(p *prober, due time.Time) {
	p.due = due
	if p.index >= 0 {
		s.down(p.index)
		s.up(p.index)
	}
}

// pop removes and returns the earliest prober if it is due at now.
func (s *schedule) pop(now time.Time) *prober {
	if len(s.heap) == 0 || s.heap[0].due.After(now) {
		return nil
	}
	p := s.heap[0]
	s.remove(p)
	return p
}

func (s *schedule) less(i, j int) bool { return s.heap[i].due.Before(s.heap[j].due) }

func (s *schedule) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.heap[i].index = i
	s.heap[j].index = j
}

func (s *schedule) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			return
		}
		s.swap(i, parent)
		i = parent
	}
}

func (s *schedule) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && s.less(r, l) {
			j = r
		}
		if !s.less(j, i) {
			return
		}
		s.swap(i, j)
		i = j
	}
}
