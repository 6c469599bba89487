// Package serving defines what a GameMetrics function is: the Knative func
// instanced shape (Handle plus optional lifecycle methods), the errors that
// carry an HTTP status, and the adapter that serves Handle over HTTP in
// CloudEvents binary or structured mode. `gamemetrics serve`, the root
// bundle that `func build` packages, and the tests all use the same value.
package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Names of the functions, as used by `gamemetrics serve` and $FUNCTION.
const (
	Ingest    = "ingest"
	Process   = "process"
	Recommend = "recommend"
	Notify    = "notify"
	Retain    = "retain"
	Report    = "report"
)

// Names lists every function in the order `gamemetrics dev` starts them.
func Names() []string { return []string{Ingest, Process, Recommend, Notify, Retain, Report} }

// Function is a GameMetrics function: the CloudEvents face of the Knative
// func template, the HTTP face it is served with, and its health.
type Function interface {
	// Handle processes one CloudEvent and may answer with one.
	Handle(ctx context.Context, e event.Event) (*event.Event, error)
	// ServeHTTP is the function's whole HTTP surface (for most functions,
	// CloudEvents delivered to "/"; ingest and report add their APIs).
	http.Handler
	// Ready reports whether dependencies answer, for readiness probes.
	Ready(ctx context.Context) (bool, error)
	// Stop finishes in-flight work and releases the function's resources.
	Stop(ctx context.Context) error
}

// Error is a failure with the HTTP status a delivery should get. Knative's
// KafkaSource retries 5xx, 404, 408, 409 and 429 and sends other 4xx to the
// dead-letter sink, so the status decides whether an event is retried.
type Error struct {
	Status int
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// Reject is a permanent failure: the event can never be processed.
func Reject(status int, format string, args ...any) error {
	return &Error{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// Transient is a failure worth retrying (a dependency is down or slow).
func Transient(reason string, err error) error {
	return &Error{Status: http.StatusServiceUnavailable, Reason: reason, Err: err}
}

// StatusOf returns the HTTP status for err: its own if it is an *Error,
// 500 (retried) for anything else, so an unexpected error is never dropped.
func StatusOf(err error) int {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Status
	}
	return http.StatusInternalServerError
}

// CloudEventHandler serves h over HTTP: it decodes a binary or structured
// CloudEvent, calls Handle, and answers 200 with the reply event in binary
// mode, 202 with no reply, or the error's status with its reason as JSON.
func CloudEventHandler(h func(context.Context, event.Event) (*event.Event, error), log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			WriteJSONError(w, http.StatusMethodNotAllowed, "POST a CloudEvent")
			return
		}
		msg := cehttp.NewMessageFromHttpRequest(r)
		defer msg.Finish(nil)
		if msg.ReadEncoding() == binding.EncodingUnknown {
			WriteJSONError(w, http.StatusUnsupportedMediaType, "not a CloudEvent: send binary (ce-* headers) or structured mode")
			return
		}
		ev, err := binding.ToEvent(r.Context(), msg)
		if err != nil {
			WriteJSONError(w, http.StatusBadRequest, "invalid CloudEvent: "+err.Error())
			return
		}
		ctx := cehttp.WithRequestDataAtContext(r.Context(), r)
		reply, err := h(ctx, *ev)
		if err != nil {
			status := StatusOf(err)
			if status >= 500 {
				log.Warn("event not processed, will be retried", "eventid", ev.ID(), "type", ev.Type(), "status", status, "err", err)
			} else {
				log.Info("event rejected", "eventid", ev.ID(), "type", ev.Type(), "status", status, "err", err)
			}
			WriteJSONError(w, status, err.Error())
			return
		}
		if reply == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if err := cehttp.WriteResponseWriter(r.Context(), binding.ToMessage(reply), http.StatusOK, w); err != nil {
			log.Error("write reply", "eventid", ev.ID(), "err", err)
		}
	})
}
