// The store's HTTP endpoints: /metrics, /healthz, /readyz, /debug/pprof
// and /debug/ranges.

package store

import (
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rangekv/rangekv/internal/debughttp"
)

func (s *Store) startHTTP() error {
	ranges := func(w http.ResponseWriter, _ *http.Request) {
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(s.Status())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
	ready := func() (bool, string) {
		if s.Draining() {
			return false, "store draining"
		}
		return s.ready.Load(), "store not started or stopping"
	}
	srv, ln, err := debughttp.Start(s.cfg.HTTPAddr, "http-addr", s.reg, ready,
		map[string]http.HandlerFunc{"/debug/ranges": ranges}, &s.wg, s.log)
	if err != nil {
		return err
	}
	s.httpServer, s.httpLn = srv, ln
	return nil
}
