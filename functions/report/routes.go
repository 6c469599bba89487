package report

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gamemetrics/gamemetrics/shared/serving"
)

//go:embed openapi.json
var openapiJSON []byte

//go:embed dashboard
var dashboardFiles embed.FS

// routes lists every route report serves.
func (r *Report) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /{$}", serving.CloudEventHandler(r.Handle, r.log))
	mux.Handle("GET /v1/game", r.api("game", r.handleGame()))
	mux.Handle("GET /v1/games/{game}/metrics/{metric}", r.api("metrics", r.handleMetrics()))
	mux.Handle("GET /v1/games/{game}/retention", r.api("retention", r.handleRetention()))
	mux.Handle("GET /v1/games/{game}/progression", r.api("progression", r.handleProgression()))
	mux.Handle("GET /v1/games/{game}/ltv", r.api("ltv", r.handleLTV()))
	mux.Handle("GET /v1/games/{game}/economy", r.api("economy", r.handleEconomy()))
	mux.Handle("GET /v1/games/{game}/live", r.api("live", r.handleLive()))
	mux.Handle("GET /v1/games/{game}/events", r.api("events", r.handleEvents()))
	mux.Handle("GET /v1/openapi.json", handleOpenAPI())
	mux.Handle("OPTIONS /v1/", handlePreflight())
	assets, _ := fs.Sub(dashboardFiles, "dashboard")
	mux.Handle("GET /{$}", handleDashboard(assets))
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", handleAssets(assets)))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		serving.WriteJSONError(w, http.StatusNotFound, "not found; the API is described at /v1/openapi.json")
	}))
	return mux
}

func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapiJSON)
	})
}

func handleDashboard(assets fs.FS) http.Handler {
	page, _ := fs.ReadFile(assets, "index.html")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(page)
	})
}

func handleAssets(assets fs.FS) http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "index.html" || req.URL.Path == "" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, req)
	})
}
