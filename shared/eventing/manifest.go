package eventing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The resources the runtime understands, by apiVersion and kind.
const (
	kindKafkaSource   = "KafkaSource"
	kindPingSource    = "PingSource"
	kindKafkaSink     = "KafkaSink"
	kindKustomization = "Kustomization"
	kindService       = "Service"

	apiSourcesV1      = "sources.knative.dev/v1"
	apiSourcesV1beta1 = "sources.knative.dev/v1beta1"
	apiEventingAlpha  = "eventing.knative.dev/v1alpha1"
	apiKustomize      = "kustomize.config.k8s.io/v1beta1"
	apiServing        = "serving.knative.dev/v1"

	// labelKeyType chooses how a KafkaSource turns record keys into the
	// key extension: string (default), int, float or byte-array.
	labelKeyType = "kafkasources.sources.knative.dev/key-type"
)

// Manifests is what a directory of eventing manifests declares, after
// strict decoding and validation.
type Manifests struct {
	KafkaSources []KafkaSource
	PingSources  []PingSource
	KafkaSinks   []KafkaSink
}

// ObjectMeta is the part of Kubernetes metadata the runtime reads.
// Namespace is filled in from the Kustomization when the file leaves it out.
type ObjectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Origin says where a resource was declared, for error messages.
type Origin struct {
	File string
	Line int
}

func (o Origin) String() string { return fmt.Sprintf("%s:%d", o.File, o.Line) }

// KReference points at another resource (duckv1.KReference).
type KReference struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Name       string `yaml:"name"`
	Namespace  string `yaml:"namespace"`
}

// Destination is a sink: a reference to a resource, or a URI (duckv1.Destination).
type Destination struct {
	Ref *KReference `yaml:"ref"`
	URI string      `yaml:"uri"`
}

// DeliverySpec is the retry and dead-letter policy (duckv1.DeliverySpec).
type DeliverySpec struct {
	DeadLetterSink *Destination `yaml:"deadLetterSink"`
	Retry          *int32       `yaml:"retry"`
	// BackoffPolicy is "exponential" (default) or "linear".
	BackoffPolicy string `yaml:"backoffPolicy"`
	// BackoffDelay is an ISO-8601 duration such as PT0.2S.
	BackoffDelay string `yaml:"backoffDelay"`
	// Timeout is the ISO-8601 per-request timeout.
	Timeout string `yaml:"timeout"`
}

// CEOverrides adds extensions to every event a source sends.
type CEOverrides struct {
	Extensions map[string]string `yaml:"extensions"`
}

// SecretKeyRef names one key of a Secret.
type SecretKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

// SecretValue is a value taken from a Secret.
type SecretValue struct {
	SecretKeyRef *SecretKeyRef `yaml:"secretKeyRef"`
}

// KafkaNet is how a production KafkaSource authenticates. The local runtime
// reads it only to validate it: it connects with its own Kafka options.
type KafkaNet struct {
	SASL *struct {
		Enable   bool         `yaml:"enable"`
		User     *SecretValue `yaml:"user"`
		Password *SecretValue `yaml:"password"`
		Type     *SecretValue `yaml:"type"`
	} `yaml:"sasl"`
	TLS *struct {
		Enable bool         `yaml:"enable"`
		Cert   *SecretValue `yaml:"cert"`
		Key    *SecretValue `yaml:"key"`
		CACert *SecretValue `yaml:"caCert"`
	} `yaml:"tls"`
}

// KafkaSourceSpec is the spec of a sources.knative.dev KafkaSource.
type KafkaSourceSpec struct {
	// BootstrapServers is required, but the runtime connects to the cluster
	// it was given instead.
	BootstrapServers []string `yaml:"bootstrapServers"`
	Topics           []string `yaml:"topics"`
	ConsumerGroup    string   `yaml:"consumerGroup"`
	// InitialOffset is "earliest" or "latest" (default).
	InitialOffset string `yaml:"initialOffset"`
	// Consumers is how many group members the runtime runs (default 1).
	Consumers *int32 `yaml:"consumers"`
	// Ordering is "ordered" (default) or "unordered".
	Ordering    string        `yaml:"ordering"`
	Delivery    *DeliverySpec `yaml:"delivery"`
	Net         *KafkaNet     `yaml:"net"`
	CEOverrides *CEOverrides  `yaml:"ceOverrides"`
	Sink        *Destination  `yaml:"sink"`
}

// KafkaSource is a sources.knative.dev/v1beta1 (or v1) KafkaSource.
type KafkaSource struct {
	APIVersion string          `yaml:"apiVersion"`
	Kind       string          `yaml:"kind"`
	Metadata   ObjectMeta      `yaml:"metadata"`
	Spec       KafkaSourceSpec `yaml:"spec"`
	Origin     Origin          `yaml:"-"`
}

// PingSourceSpec is the spec of a sources.knative.dev/v1 PingSource.
type PingSourceSpec struct {
	// Schedule is a cron expression with an optional leading seconds
	// field (default "* * * * *").
	Schedule string `yaml:"schedule"`
	// Timezone is an IANA zone name (default UTC).
	Timezone    string       `yaml:"timezone"`
	ContentType string       `yaml:"contentType"`
	Data        string       `yaml:"data"`
	DataBase64  string       `yaml:"dataBase64"`
	CEOverrides *CEOverrides `yaml:"ceOverrides"`
	Sink        *Destination `yaml:"sink"`
}

// PingSource is a sources.knative.dev/v1 PingSource.
type PingSource struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   ObjectMeta     `yaml:"metadata"`
	Spec       PingSourceSpec `yaml:"spec"`
	Origin     Origin         `yaml:"-"`
}

// KafkaSinkSpec is the spec of an eventing.knative.dev/v1alpha1 KafkaSink.
type KafkaSinkSpec struct {
	Topic            string   `yaml:"topic"`
	BootstrapServers []string `yaml:"bootstrapServers"`
	// ContentMode is "structured" (default) or "binary".
	ContentMode       string `yaml:"contentMode"`
	NumPartitions     *int32 `yaml:"numPartitions"`
	ReplicationFactor *int16 `yaml:"replicationFactor"`
	Auth              *struct {
		Secret *struct {
			Ref *struct {
				Name string `yaml:"name"`
			} `yaml:"ref"`
		} `yaml:"secret"`
	} `yaml:"auth"`
}

// KafkaSink is an eventing.knative.dev/v1alpha1 KafkaSink.
type KafkaSink struct {
	APIVersion string        `yaml:"apiVersion"`
	Kind       string        `yaml:"kind"`
	Metadata   ObjectMeta    `yaml:"metadata"`
	Spec       KafkaSinkSpec `yaml:"spec"`
	Origin     Origin        `yaml:"-"`
}

// kustomization is the part of a Kustomization the runtime follows: which
// files to load and which namespace to put them in. Anything that would
// change the resources (patches, name prefixes, ...) is refused, because
// the runtime would otherwise run something other than what kustomize builds.
type kustomization struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   ObjectMeta `yaml:"metadata"`
	Namespace  string     `yaml:"namespace"`
	Labels     []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
		IncludeTemplates bool              `yaml:"includeTemplates"`
	} `yaml:"labels"`
	CommonLabels      map[string]string `yaml:"commonLabels"`
	CommonAnnotations map[string]string `yaml:"commonAnnotations"`
	Resources         []string          `yaml:"resources"`
}

// kustomizationFiles are the names kustomize looks for, in its order.
func kustomizationFiles() []string {
	return []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}
}

// Load reads the eventing manifests under dir. When dir holds a
// kustomization, the files (and directories) in its resources list are
// loaded and its namespace applies to them; otherwise every *.yaml and
// *.yml file is. Every document is decoded strictly: an unknown apiVersion
// or kind, an unknown field or an invalid value is an error naming the file,
// line, resource and field. Resources without a namespace get defaultNS.
func Load(dir, defaultNS string) (*Manifests, error) {
	m := &Manifests{}
	if err := m.loadDir(dir, defaultNS, map[string]bool{}); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manifests) loadDir(dir, ns string, seen map[string]bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if seen[abs] {
		return fmt.Errorf("%s: kustomization resources form a cycle", dir)
	}
	seen[abs] = true
	for _, name := range kustomizationFiles() {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		k, err := parseKustomization(path, data)
		if err != nil {
			return err
		}
		if k.Namespace != "" {
			ns = k.Namespace
		}
		for _, r := range k.Resources {
			rpath := filepath.Join(dir, r)
			st, err := os.Stat(rpath)
			if err != nil {
				return fmt.Errorf("%s: resource %q: %w", path, r, err)
			}
			if st.IsDir() {
				if err := m.loadDir(rpath, ns, seen); err != nil {
					return err
				}
				continue
			}
			if err := m.loadFile(rpath, ns, k.Namespace != ""); err != nil {
				return err
			}
		}
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			files = append(files, filepath.Join(dir, n))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return fmt.Errorf("%s: no kustomization and no YAML files", dir)
	}
	for _, f := range files {
		if err := m.loadFile(f, ns, false); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifests) loadFile(path, ns string, forceNS bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	parsed, err := parseManifests(path, data)
	if err != nil {
		return err
	}
	setNS := func(meta *ObjectMeta) {
		if forceNS || meta.Namespace == "" {
			meta.Namespace = ns
		}
	}
	for i := range parsed.KafkaSources {
		setNS(&parsed.KafkaSources[i].Metadata)
	}
	for i := range parsed.PingSources {
		setNS(&parsed.PingSources[i].Metadata)
	}
	for i := range parsed.KafkaSinks {
		setNS(&parsed.KafkaSinks[i].Metadata)
	}
	m.KafkaSources = append(m.KafkaSources, parsed.KafkaSources...)
	m.PingSources = append(m.PingSources, parsed.PingSources...)
	m.KafkaSinks = append(m.KafkaSinks, parsed.KafkaSinks...)
	return nil
}

// header is what every Kubernetes document starts with.
type header struct {
	apiVersion, kind, name string
}

func readHeader(n *yaml.Node) header {
	var h header
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "apiVersion":
			h.apiVersion = v.Value
		case "kind":
			h.kind = v.Value
		case "metadata":
			for j := 0; j+1 < len(v.Content); j += 2 {
				if v.Content[j].Value == "name" {
					h.name = v.Content[j+1].Value
				}
			}
		}
	}
	return h
}

func (h header) String() string {
	if h.name == "" {
		return h.kind
	}
	return h.kind + " " + h.name
}

// documents splits a YAML stream into its non-empty documents, keeping
// line numbers relative to the file.
func documents(file string, data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: a document must be a mapping (a Kubernetes resource)", file, root.Line)
		}
		docs = append(docs, root)
	}
}

// ParseManifests decodes the KafkaSource, PingSource and KafkaSink documents
// of one YAML stream strictly and validates them as the Knative webhooks
// would. It is the one parser of these CRDs: the runtime loads its
// manifests through it, and knative/validate checks the rendered overlays
// with it, so what the local runtime runs and what the deploy is checked
// against cannot disagree.
func ParseManifests(file string, data []byte) (*Manifests, error) {
	m, err := parseManifests(file, data)
	if err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseManifests decodes every document of one file.
func parseManifests(file string, data []byte) (*Manifests, error) {
	docs, err := documents(file, data)
	if err != nil {
		return nil, err
	}
	m := &Manifests{}
	for _, n := range docs {
		h := readHeader(n)
		at := Origin{File: file, Line: n.Line}
		switch {
		case h.kind == kindKafkaSource && (h.apiVersion == apiSourcesV1beta1 || h.apiVersion == apiSourcesV1):
			var s KafkaSource
			if err := decodeStrict(n, &s, at, h); err != nil {
				return nil, err
			}
			s.Origin = at
			m.KafkaSources = append(m.KafkaSources, s)
		case h.kind == kindPingSource && h.apiVersion == apiSourcesV1:
			var s PingSource
			if err := decodeStrict(n, &s, at, h); err != nil {
				return nil, err
			}
			s.Origin = at
			m.PingSources = append(m.PingSources, s)
		case h.kind == kindKafkaSink && h.apiVersion == apiEventingAlpha:
			var s KafkaSink
			if err := decodeStrict(n, &s, at, h); err != nil {
				return nil, err
			}
			s.Origin = at
			m.KafkaSinks = append(m.KafkaSinks, s)
		case h.kind == kindKustomization && h.apiVersion == apiKustomize:
			return nil, fmt.Errorf("%s: %s: a Kustomization belongs in kustomization.yaml, not among the resources", at, h)
		default:
			return nil, fmt.Errorf("%s: %s: apiVersion %q kind %q is not something the local eventing runtime runs "+
				"(it runs %s|%s KafkaSource, %s PingSource and %s KafkaSink)",
				at, h, h.apiVersion, h.kind, apiSourcesV1beta1, apiSourcesV1, apiSourcesV1, apiEventingAlpha)
		}
	}
	return m, nil
}

func parseKustomization(file string, data []byte) (*kustomization, error) {
	docs, err := documents(file, data)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s: want exactly one Kustomization document, found %d", file, len(docs))
	}
	n := docs[0]
	h := readHeader(n)
	at := Origin{File: file, Line: n.Line}
	if h.kind != kindKustomization || h.apiVersion != apiKustomize {
		return nil, fmt.Errorf("%s: want apiVersion %s kind Kustomization, found %q %q", at, apiKustomize, h.apiVersion, h.kind)
	}
	var k kustomization
	if err := decodeStrict(n, &k, at, h); err != nil {
		return nil, err
	}
	return &k, nil
}

// decodeStrict checks every key of n against the yaml tags of out's type,
// so an unknown field is reported with its full path, then decodes.
func decodeStrict(n *yaml.Node, out any, at Origin, h header) error {
	budget := maxNodes
	if err := checkFields(n, reflect.TypeOf(out).Elem(), "", &budget); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("%s:%d: %s: %s", at.File, fe.line, h, fe.msg)
		}
		return fmt.Errorf("%s: %s: %w", at, h, err)
	}
	if err := n.Decode(out); err != nil {
		return fmt.Errorf("%s: %s: %w", at, h, err)
	}
	return nil
}

// maxNodes bounds the nodes one document may expand to, aliases included,
// so a hostile alias chain cannot make loading take forever.
const maxNodes = 100_000

type fieldError struct {
	line int
	msg  string
}

func (e *fieldError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// checkFields walks n alongside t and reports the first mapping key that
// t has no field for.
func checkFields(n *yaml.Node, t reflect.Type, path string, budget *int) error {
	if *budget--; *budget < 0 {
		return &fieldError{n.Line, fmt.Sprintf("document is too large (more than %d nodes, counting aliases)", maxNodes)}
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return &fieldError{n.Line, fmt.Sprintf("field %s must be a mapping", orRoot(path))}
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				return &fieldError{k.Line, fmt.Sprintf("unknown field %s (the runtime understands %s here)", p, strings.Join(names, ", "))}
			}
			if err := checkFields(v, ft, p, budget); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &fieldError{n.Line, fmt.Sprintf("field %s must be a list", orRoot(path))}
		}
		for i, c := range n.Content {
			if err := checkFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), budget); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return &fieldError{n.Line, fmt.Sprintf("field %s must be a mapping", orRoot(path))}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), budget); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return &fieldError{n.Line, fmt.Sprintf("field %s must be a single value", orRoot(path))}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}
