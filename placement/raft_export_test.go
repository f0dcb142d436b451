package placement

// LogFirstIndexForTest is the first index of the member's placement Raft
// log (safe while the member runs).
func LogFirstIndexForTest(s *Server) uint64 {
	first, _ := s.group.log.FirstIndex()
	return first
}
