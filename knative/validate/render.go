package validate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Document is one YAML document of a rendered kustomization or fixture.
type Document struct {
	// Source is the kustomize directory or file the document came from.
	Source string
	// Raw is the document exactly as rendered.
	Raw []byte

	APIVersion  string
	Kind        string
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
}

// Ref names the document as Kind/name.
func (d Document) Ref() string { return d.Kind + "/" + d.Name }

// GVK is the apiVersion and kind, e.g. "serving.knative.dev/v1 Service".
func (d Document) GVK() string { return d.APIVersion + " " + d.Kind }

func (d Document) problem(field, format string, args ...any) Problem {
	return problemf(d.Source, d.Ref(), field, format, args...)
}

// Render builds a kustomization directory with `kubectl kustomize`, or
// `kustomize build` when kubectl is not installed.
func Render(ctx context.Context, dir string) ([]byte, error) {
	var cmd *exec.Cmd
	switch {
	case lookPath("kubectl"):
		cmd = exec.CommandContext(ctx, "kubectl", "kustomize", dir)
	case lookPath("kustomize"):
		cmd = exec.CommandContext(ctx, "kustomize", "build", dir)
	default:
		return nil, errors.New("neither kubectl nor kustomize is in PATH: install kubectl (>= 1.27) to render the kustomizations")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("render %s: %v: %s", dir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func lookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// Split cuts a multi-document YAML stream into documents, reading the
// identifying header (apiVersion, kind, metadata) of each. Empty documents
// are skipped.
func Split(source string, data []byte) ([]Document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []Document
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: split YAML: %w", source, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name        string            `json:"name"`
				Namespace   string            `json:"namespace"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, len(docs)+1, err)
		}
		if head.APIVersion == "" && head.Kind == "" && len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if head.APIVersion == "" && head.Kind == "" {
			// A document holding only comments.
			var v any
			if err := yaml.Unmarshal(raw, &v); err == nil && v == nil {
				continue
			}
		}
		docs = append(docs, Document{
			Source:      source,
			Raw:         raw,
			APIVersion:  head.APIVersion,
			Kind:        head.Kind,
			Name:        head.Metadata.Name,
			Namespace:   head.Metadata.Namespace,
			Labels:      head.Metadata.Labels,
			Annotations: head.Metadata.Annotations,
		})
	}
}

// Load renders a kustomization and splits it into documents.
func Load(ctx context.Context, dir string) ([]Document, error) {
	out, err := Render(ctx, dir)
	if err != nil {
		return nil, err
	}
	return Split(dir, out)
}

// LoadFile reads a plain multi-document YAML file (a test fixture).
func LoadFile(path string) ([]Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Split(path, data)
}
