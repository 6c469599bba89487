package validate

import (
	"fmt"
	"strings"
)

// Problem is one violated rule, located precisely enough to fix it.
type Problem struct {
	// File is the kustomize directory, manifest file or .tf file.
	File string
	// Resource is "Kind/name" for manifests or the block address for HCL.
	Resource string
	// Field is the offending field path, if known.
	Field string
	// Message says what is wrong.
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Resource != "" {
		b.WriteString(": ")
		b.WriteString(p.Resource)
	}
	if p.Field != "" {
		b.WriteString(": ")
		b.WriteString(p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// Problems is a list of problems.
type Problems []Problem

// Strings renders every problem on its own line.
func (ps Problems) String() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func problemf(file, resource, field, format string, args ...any) Problem {
	return Problem{File: file, Resource: resource, Field: field, Message: fmt.Sprintf(format, args...)}
}
