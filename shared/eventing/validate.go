package eventing

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// validate applies the checks of the Knative webhooks that matter to the
// runtime, so a manifest the cluster would refuse is refused here too.
func (m *Manifests) validate() error {
	var errs []error
	seen := map[string]Origin{}
	unique := func(kind string, meta ObjectMeta, at Origin) {
		if meta.Name == "" {
			errs = append(errs, fmt.Errorf("%s: %s: metadata.name is required", at, kind))
			return
		}
		key := kind + "/" + meta.Namespace + "/" + meta.Name
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s %s: already declared at %s", at, kind, meta.Name, prev))
		}
		seen[key] = at
	}
	for _, s := range m.KafkaSources {
		unique(kindKafkaSource, s.Metadata, s.Origin)
		errs = append(errs, prefix(s.Origin, kindKafkaSource, s.Metadata.Name, s.validate())...)
	}
	for _, s := range m.PingSources {
		unique(kindPingSource, s.Metadata, s.Origin)
		errs = append(errs, prefix(s.Origin, kindPingSource, s.Metadata.Name, s.validate())...)
	}
	for _, s := range m.KafkaSinks {
		unique(kindKafkaSink, s.Metadata, s.Origin)
		errs = append(errs, prefix(s.Origin, kindKafkaSink, s.Metadata.Name, s.validate())...)
	}
	return errors.Join(errs...)
}

func prefix(at Origin, kind, name string, errs []error) []error {
	out := make([]error, 0, len(errs))
	for _, err := range errs {
		out = append(out, fmt.Errorf("%s: %s %s: %w", at, kind, name, err))
	}
	return out
}

func (s *KafkaSource) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	sp := s.Spec
	if len(sp.BootstrapServers) == 0 {
		bad("spec.bootstrapServers is required")
	}
	if len(sp.Topics) == 0 {
		bad("spec.topics is required")
	}
	for i, t := range sp.Topics {
		if t == "" {
			bad("spec.topics[%d] is empty", i)
		}
	}
	switch sp.InitialOffset {
	case "", "earliest", "latest":
	default:
		bad("spec.initialOffset %q: want earliest or latest", sp.InitialOffset)
	}
	switch sp.Ordering {
	case "", "ordered", "unordered":
	default:
		bad("spec.ordering %q: want ordered or unordered", sp.Ordering)
	}
	if sp.Consumers != nil && *sp.Consumers < 1 {
		bad("spec.consumers %d: want at least 1", *sp.Consumers)
	}
	if sp.Net != nil && sp.Net.SASL != nil && sp.Net.SASL.Enable {
		if sp.Net.SASL.User == nil || sp.Net.SASL.Password == nil {
			bad("spec.net.sasl: user and password are required when enabled")
		}
	}
	switch kt := s.Metadata.Labels[labelKeyType]; kt {
	case "", "string", "int", "float", "byte-array":
	default:
		bad("metadata.labels[%s] %q: want string, int, float or byte-array", labelKeyType, kt)
	}
	errs = append(errs, validateDelivery("spec.delivery", sp.Delivery)...)
	errs = append(errs, validateOverrides("spec.ceOverrides", sp.CEOverrides)...)
	errs = append(errs, validateDestination("spec.sink", sp.Sink)...)
	return errs
}

func validateDelivery(path string, d *DeliverySpec) []error {
	if d == nil {
		return nil
	}
	var errs []error
	if d.Retry != nil && *d.Retry < 0 {
		errs = append(errs, fmt.Errorf("%s.retry %d: must not be negative", path, *d.Retry))
	}
	switch d.BackoffPolicy {
	case "", "exponential", "linear":
	default:
		errs = append(errs, fmt.Errorf("%s.backoffPolicy %q: want exponential or linear", path, d.BackoffPolicy))
	}
	if d.BackoffDelay != "" {
		if _, err := ParseDuration(d.BackoffDelay); err != nil {
			errs = append(errs, fmt.Errorf("%s.backoffDelay: %w", path, err))
		}
	}
	if d.Timeout != "" {
		if t, err := ParseDuration(d.Timeout); err != nil {
			errs = append(errs, fmt.Errorf("%s.timeout: %w", path, err))
		} else if t <= 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: must be positive", path))
		}
	}
	if d.DeadLetterSink != nil {
		errs = append(errs, validateDestination(path+".deadLetterSink", d.DeadLetterSink)...)
	}
	return errs
}

func validateOverrides(path string, o *CEOverrides) []error {
	if o == nil {
		return nil
	}
	var errs []error
	for name := range o.Extensions {
		if !validExtensionName(name) {
			errs = append(errs, fmt.Errorf("%s.extensions[%s]: extension names are lower-case letters and digits", path, name))
		}
		switch name {
		case "id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time", "data", "data_base64":
			errs = append(errs, fmt.Errorf("%s.extensions[%s]: a CloudEvents attribute cannot be overridden", path, name))
		}
	}
	return errs
}

func validExtensionName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func validateDestination(path string, d *Destination) []error {
	switch {
	case d == nil || (d.Ref == nil && d.URI == ""):
		return []error{fmt.Errorf("%s: ref or uri is required", path)}
	case d.Ref != nil && d.URI != "":
		return []error{fmt.Errorf("%s: the runtime takes either ref or uri, not both", path)}
	case d.Ref != nil:
		var errs []error
		if d.Ref.APIVersion == "" || d.Ref.Kind == "" || d.Ref.Name == "" {
			errs = append(errs, fmt.Errorf("%s.ref: apiVersion, kind and name are required", path))
		}
		return errs
	default:
		u, err := url.Parse(d.URI)
		if err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return []error{fmt.Errorf("%s.uri %q: want an absolute http(s) URL", path, d.URI)}
		}
		return nil
	}
}

func (s *PingSource) validate() []error {
	var errs []error
	sp := s.Spec
	if _, err := parseSchedule(sp.Schedule, sp.Timezone); err != nil {
		errs = append(errs, err)
	}
	if sp.Data != "" && sp.DataBase64 != "" {
		errs = append(errs, errors.New("spec.data and spec.dataBase64 are mutually exclusive"))
	}
	if sp.DataBase64 != "" {
		if _, err := base64.StdEncoding.DecodeString(sp.DataBase64); err != nil {
			errs = append(errs, fmt.Errorf("spec.dataBase64: %w", err))
		}
	}
	if sp.Data != "" && isJSON(sp.ContentType) && !json.Valid([]byte(sp.Data)) {
		errs = append(errs, fmt.Errorf("spec.data: contentType is %s but data is not valid JSON", sp.ContentType))
	}
	errs = append(errs, validateOverrides("spec.ceOverrides", sp.CEOverrides)...)
	errs = append(errs, validateDestination("spec.sink", sp.Sink)...)
	return errs
}

func isJSON(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

func (s *KafkaSink) validate() []error {
	var errs []error
	if s.Spec.Topic == "" {
		errs = append(errs, errors.New("spec.topic is required"))
	}
	if len(s.Spec.BootstrapServers) == 0 {
		errs = append(errs, errors.New("spec.bootstrapServers is required"))
	}
	switch s.Spec.ContentMode {
	case "", "binary", "structured":
	default:
		errs = append(errs, fmt.Errorf("spec.contentMode %q: want binary or structured", s.Spec.ContentMode))
	}
	return errs
}

// Schedule is a parsed PingSource schedule in its time zone.
type Schedule struct {
	spec cron.Schedule
	loc  *time.Location
}

// Next returns the first tick strictly after t, in the schedule's zone.
func (s Schedule) Next(t time.Time) time.Time { return s.spec.Next(t.In(s.loc)) }

// Location is the zone the schedule is evaluated in.
func (s Schedule) Location() *time.Location { return s.loc }

// ParseSchedule parses a PingSource schedule as Knative does: five cron
// fields, or six with a leading seconds field, or a descriptor such as
// @daily; "@every" is refused. An empty schedule is "* * * * *" and an
// empty timezone is UTC.
func ParseSchedule(schedule, timezone string) (Schedule, error) {
	return parseSchedule(schedule, timezone)
}

func parseSchedule(schedule, timezone string) (Schedule, error) {
	if schedule == "" {
		schedule = "* * * * *"
	}
	trimmed := strings.TrimSpace(schedule)
	if strings.HasPrefix(trimmed, "@every") {
		return Schedule{}, fmt.Errorf("spec.schedule %q: @every is not supported", schedule)
	}
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return Schedule{}, fmt.Errorf("spec.schedule %q: set the zone with spec.timezone, not in the schedule", schedule)
	}
	loc := time.UTC
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return Schedule{}, fmt.Errorf("spec.timezone %q: %w", timezone, err)
		}
		loc = l
	}
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	spec, err := p.Parse(trimmed)
	if err != nil {
		return Schedule{}, fmt.Errorf("spec.schedule %q: %w", schedule, err)
	}
	return Schedule{spec: spec, loc: loc}, nil
}
