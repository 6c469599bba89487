package recommend

import (
	_ "embed"
	"net/http"

	"github.com/gamemetrics/gamemetrics/shared/serving"
)

//go:embed openapi.json
var openapiJSON []byte

// routes lists every route recommend serves.
func (r *Recommend) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /{$}", serving.CloudEventHandler(r.Handle, r.log))
	mux.Handle("GET /v1/games/{game}/players/{player}/recommendations", r.api("recommendations", readKey, r.handleRecommendations()))
	mux.Handle("GET /v1/games/{game}/items/{item}/similar", r.api("similar", readKey, r.handleSimilar()))
	mux.Handle("GET /v1/games/{game}/items", r.api("items", adminKey, r.handleGetItems()))
	mux.Handle("PUT /v1/games/{game}/items", r.api("items", adminKey, r.handlePutItems()))
	mux.Handle("GET /v1/games/{game}/recommend/settings", r.api("settings", adminKey, r.handleGetSettings()))
	mux.Handle("PUT /v1/games/{game}/recommend/settings", r.api("settings", adminKey, r.handlePutSettings()))
	mux.Handle("GET /v1/openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapiJSON)
	}))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		serving.WriteJSONError(w, http.StatusNotFound, "not found; the API is described at /v1/openapi.json")
	}))
	return mux
}
