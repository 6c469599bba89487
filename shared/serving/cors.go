package serving

import "net/http"

// AllowAnyOrigin lets browser pages on any origin read the answer and the
// named response headers. GameMetrics keys travel in the Authorization
// header, never in a cookie, so a page on another origin gains nothing it
// did not already have.
func AllowAnyOrigin(h http.Header, expose string) {
	h.Set("Access-Control-Allow-Origin", "*")
	if expose != "" {
		h.Set("Access-Control-Expose-Headers", expose)
	}
}
