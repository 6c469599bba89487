package serving

import (
	"encoding/json"
	"net/http"
)

// WriteJSON answers status with v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteJSONError answers status with {"error": reason}.
func WriteJSONError(w http.ResponseWriter, status int, reason string) {
	WriteJSON(w, status, struct {
		Error string `json:"error"`
	}{reason})
}
