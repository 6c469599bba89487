//go:build pprof

package main

// Built only with -tags pprof: serves net/http/pprof on $PPROF_ADDR for
// profiling a function under load (see e2e/bench).

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
