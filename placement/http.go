// /metrics, /healthz, /readyz, /debug/pprof and /debug/cluster.

package placement

import (
	"fmt"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rangekv/rangekv/internal/debughttp"
)

func (s *Server) startHTTP() error {
	cluster := func(w http.ResponseWriter, _ *http.Request) {
		if !s.group.isLeader() {
			http.Error(w, fmt.Sprintf("not the placement leader; ask member %d", s.group.leader.Load()), http.StatusMisdirectedRequest)
			return
		}
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(s.clusterStatus())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
	ready := func() (bool, string) {
		return s.ready.Load() && s.group.leader.Load() != 0, "no placement leader known"
	}
	srv, ln, err := debughttp.Start(s.cfg.HTTPAddr, "http-addr", s.reg, ready,
		map[string]http.HandlerFunc{"/debug/cluster": cluster}, &s.wg, s.log)
	if err != nil {
		return err
	}
	s.httpServer, s.httpLn = srv, ln
	return nil
}
