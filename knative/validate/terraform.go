package validate

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/mod/semver"
)

// tfFile is one parsed .tf or .tfvars file.
type tfFile struct {
	path string
	body *hclsyntax.Body
}

// tfTree is every Terraform file under a root, grouped by directory (a
// Terraform module is a directory).
type tfTree struct {
	root string
	dirs map[string][]*tfFile
}

// CheckTerraform parses every .tf and .tfvars file under root and enforces
// the GameMetrics rules that neither `terraform validate` nor tflint checks
// (TerraformValidate and TFLint run those tools):
//   - no secret literals: no attribute or object key naming a password,
//     secret, token or access key is assigned a string literal, and
//     variables that name a secret are sensitive without a default;
//   - encryption: aws_db_instance has storage_encrypted = true and is not
//     public; aws_elasticache_replication_group encrypts in transit and at
//     rest and uses an AUTH token; every aws_s3_bucket has a public access
//     block with all four flags true, SSE with aws:kms, versioning Enabled
//     and a lifecycle transition to a colder storage class;
//   - environments are thin: each directory under environments/ calls the
//     one composition module and declares no resources of its own;
//   - production runs PostgreSQL Multi-AZ, followed from the environment's
//     values through the module calls down to the aws_db_instance.
func CheckTerraform(root string) []Problem {
	tree, ps := parseTerraform(root)
	if tree == nil {
		return ps
	}
	for _, dir := range sortedKeys(tree.dirs) {
		for _, f := range tree.dirs[dir] {
			ps = append(ps, secretVariableProblems(f)...)
			ps = append(ps, secretLiteralProblems(f)...)
			ps = append(ps, resourceProblems(f)...)
		}
		ps = append(ps, bucketProblems(tree.dirs[dir])...)
	}
	ps = append(ps, environmentProblems(tree)...)
	return ps
}

func parseTerraform(root string) (*tfTree, []Problem) {
	tree := &tfTree{root: root, dirs: map[string][]*tfFile{}}
	parser := hclparse.NewParser()
	var ps []Problem
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".terraform" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".tf") || strings.HasSuffix(path, ".tfvars")) {
			return nil
		}
		f, diags := parser.ParseHCLFile(path)
		if diags.HasErrors() {
			for _, diag := range diags.Errs() {
				ps = append(ps, problemf(path, "", "", "parse: %v", diag))
			}
			return nil
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			ps = append(ps, problemf(path, "", "", "not native HCL syntax"))
			return nil
		}
		dir := filepath.Dir(path)
		tree.dirs[dir] = append(tree.dirs[dir], &tfFile{path: path, body: body})
		return nil
	})
	if err != nil {
		return nil, append(ps, problemf(root, "", "", "walk: %v", err))
	}
	if len(tree.dirs) == 0 {
		return nil, append(ps, problemf(root, "", "", "no Terraform files found"))
	}
	return tree, ps
}

// at formats a file:line location.
func at(path string, r hcl.Range) string { return fmt.Sprintf("%s:%d", path, r.Start.Line) }

func blockAddress(b *hclsyntax.Block) string {
	return strings.Join(append([]string{b.Type}, b.Labels...), ".")
}

func resourceAddress(b *hclsyntax.Block) string {
	return strings.Join(b.Labels, ".")
}

// literal evaluates an expression that uses no variables or functions.
func literal(e hclsyntax.Expression) (cty.Value, bool) {
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

func isLiteralTrue(e hclsyntax.Expression) bool {
	v, ok := literal(e)
	return ok && v.Type() == cty.Bool && v.True()
}

func isLiteralFalse(e hclsyntax.Expression) bool {
	v, ok := literal(e)
	return ok && v.Type() == cty.Bool && v.False()
}

func stringLiteral(e hclsyntax.Expression) (string, bool) {
	v, ok := literal(e)
	if !ok || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

func blocksOf(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// nestedBodies follows a path of nested block types.
func nestedBodies(body *hclsyntax.Body, path ...string) []*hclsyntax.Body {
	bodies := []*hclsyntax.Body{body}
	for _, typ := range path {
		var next []*hclsyntax.Body
		for _, b := range bodies {
			for _, blk := range blocksOf(b, typ) {
				next = append(next, blk.Body)
			}
		}
		bodies = next
	}
	return bodies
}

func resources(files []*tfFile, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, f := range files {
		for _, b := range blocksOf(f.body, "resource") {
			if len(b.Labels) == 2 && b.Labels[0] == typ {
				out = append(out, b)
			}
		}
	}
	return out
}

func fileOf(files []*tfFile, b *hclsyntax.Block) string {
	for _, f := range files {
		if slices.Contains(f.body.Blocks, b) {
			return f.path
		}
	}
	return ""
}

// secretVariableProblems: a variable that names a secret must be sensitive
// and must not carry a literal default (tflint checks types and
// descriptions of every variable).
func secretVariableProblems(f *tfFile) []Problem {
	var ps []Problem
	for _, b := range blocksOf(f.body, "variable") {
		if len(b.Labels) != 1 || !secretName(b.Labels[0]) {
			continue
		}
		name, where := b.Labels[0], at(f.path, b.DefRange())
		addr := "variable." + name
		if s, ok := b.Body.Attributes["sensitive"]; !ok || !isLiteralTrue(s.Expr) {
			ps = append(ps, problemf(where, addr, "sensitive", "%s holds a secret and must be sensitive = true", name))
		}
		if d, ok := b.Body.Attributes["default"]; ok {
			if s, lit := stringLiteral(d.Expr); lit && s != "" {
				ps = append(ps, problemf(where, addr, "default", "secret literal: %s must not have a default value", name))
			}
		}
	}
	return ps
}

var (
	secretWordRE = regexp.MustCompile(`(?i)(password|passwd|secret|token|access_key|private_key|auth_key|api_key)`)
	// Attributes that name a secret's identifier or metadata, not the secret.
	secretMetaRE = regexp.MustCompile(`(?i)(_arns?|_ids?|_names?|_enabled|_strategy|_version|_length|_list|_type|_rotation_days)$`)
)

// externalSecretsRE names the External Secrets Operator, not a secret.
var externalSecretsRE = regexp.MustCompile(`(?i)^external[-_]secrets$`)

func secretName(name string) bool {
	return secretWordRE.MatchString(name) && !secretMetaRE.MatchString(name) && !externalSecretsRE.MatchString(name)
}

// secretLiteralProblems finds attributes and object keys named like secrets
// that are assigned a non-empty string literal.
func secretLiteralProblems(f *tfFile) []Problem {
	var ps []Problem
	report := func(name string, e hclsyntax.Expression) {
		if !secretName(name) {
			return
		}
		if s, ok := stringLiteral(e); ok && s != "" {
			ps = append(ps, problemf(at(f.path, e.Range()), "", name, "secret literal: use a sensitive variable, an ephemeral aws_secretsmanager_random_password or AWS Secrets Manager"))
		}
	}
	hclsyntax.VisitAll(f.body, func(n hclsyntax.Node) hcl.Diagnostics {
		switch n := n.(type) {
		case *hclsyntax.Block:
			if n.Type == "variable" {
				return nil // defaults are checked by variableProblems
			}
		case *hclsyntax.Attribute:
			report(n.Name, n.Expr)
		case *hclsyntax.ObjectConsExpr:
			for _, item := range n.Items {
				key := hcl.ExprAsKeyword(item.KeyExpr)
				if key == "" {
					if k, ok := item.KeyExpr.(*hclsyntax.ObjectConsKeyExpr); ok {
						key = hcl.ExprAsKeyword(k.Wrapped)
						if key == "" {
							key, _ = stringLiteral(k.Wrapped)
						}
					}
				}
				report(key, item.ValueExpr)
			}
		}
		return nil
	})
	return ps
}

func resourceProblems(f *tfFile) []Problem {
	var ps []Problem
	for _, b := range blocksOf(f.body, "resource") {
		if len(b.Labels) != 2 {
			continue
		}
		where, addr := at(f.path, b.DefRange()), resourceAddress(b)
		attrs := b.Body.Attributes
		switch b.Labels[0] {
		case "aws_db_instance", "aws_rds_cluster":
			if a, ok := attrs["storage_encrypted"]; !ok || !isLiteralTrue(a.Expr) {
				ps = append(ps, problemf(where, addr, "storage_encrypted", "must be true"))
			}
			if a, ok := attrs["publicly_accessible"]; ok && !isLiteralFalse(a.Expr) {
				ps = append(ps, problemf(where, addr, "publicly_accessible", "must be false"))
			}
		case "aws_elasticache_replication_group":
			for _, name := range []string{"transit_encryption_enabled", "at_rest_encryption_enabled"} {
				if a, ok := attrs[name]; !ok || !isLiteralTrue(a.Expr) {
					ps = append(ps, problemf(where, addr, name, "must be true"))
				}
			}
			if _, ok := attrs["auth_token"]; !ok {
				ps = append(ps, problemf(where, addr, "auth_token", "Redis must require AUTH (from random_password or Secrets Manager)"))
			}
		case "aws_s3_bucket":
			if a, ok := attrs["acl"]; ok {
				if s, _ := stringLiteral(a.Expr); strings.HasPrefix(s, "public") {
					ps = append(ps, problemf(where, addr, "acl", "public ACL %q on the archive bucket", s))
				}
			}
		case "aws_s3_bucket_acl":
			if a, ok := attrs["acl"]; ok {
				if s, _ := stringLiteral(a.Expr); strings.HasPrefix(s, "public") {
					ps = append(ps, problemf(where, addr, "acl", "public ACL %q", s))
				}
			}
		}
	}
	return ps
}

// refersTo reports whether an expression references resource typ.name.
func refersTo(e hclsyntax.Expression, typ, name string) bool {
	for _, t := range e.Variables() {
		if t.RootName() != typ || len(t) < 2 {
			continue
		}
		if a, ok := t[1].(hcl.TraverseAttr); ok && a.Name == name {
			return true
		}
	}
	return false
}

// companions returns the resources of typ in the module whose bucket
// attribute references the bucket.
func companions(files []*tfFile, typ string, bucket *hclsyntax.Block) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, r := range resources(files, typ) {
		if a, ok := r.Body.Attributes["bucket"]; ok && refersTo(a.Expr, "aws_s3_bucket", bucket.Labels[1]) {
			out = append(out, r)
		}
	}
	return out
}

var coldStorageClasses = []string{"STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE"}

func bucketProblems(files []*tfFile) []Problem {
	var ps []Problem
	for _, bucket := range resources(files, "aws_s3_bucket") {
		where, addr := at(fileOf(files, bucket), bucket.DefRange()), resourceAddress(bucket)

		pabs := companions(files, "aws_s3_bucket_public_access_block", bucket)
		if len(pabs) == 0 {
			ps = append(ps, problemf(where, addr, "", "no aws_s3_bucket_public_access_block for this bucket"))
		}
		for _, pab := range pabs {
			for _, flag := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
				if a, ok := pab.Body.Attributes[flag]; !ok || !isLiteralTrue(a.Expr) {
					ps = append(ps, problemf(at(fileOf(files, pab), pab.DefRange()), resourceAddress(pab), flag, "must be true: the archive bucket is never public"))
				}
			}
		}

		sses := companions(files, "aws_s3_bucket_server_side_encryption_configuration", bucket)
		kms := false
		for _, sse := range sses {
			for _, def := range nestedBodies(sse.Body, "rule", "apply_server_side_encryption_by_default") {
				if a, ok := def.Attributes["sse_algorithm"]; ok {
					if s, _ := stringLiteral(a.Expr); s == "aws:kms" || s == "aws:kms:dsse" {
						kms = true
					}
				}
			}
		}
		if !kms {
			ps = append(ps, problemf(where, addr, "server_side_encryption", "bucket is not encrypted with SSE-KMS (aws_s3_bucket_server_side_encryption_configuration with sse_algorithm = \"aws:kms\")"))
		}

		versioned := false
		for _, v := range companions(files, "aws_s3_bucket_versioning", bucket) {
			for _, vc := range nestedBodies(v.Body, "versioning_configuration") {
				if a, ok := vc.Attributes["status"]; ok {
					if s, _ := stringLiteral(a.Expr); s == "Enabled" {
						versioned = true
					}
				}
			}
		}
		if !versioned {
			ps = append(ps, problemf(where, addr, "versioning", "versioning must be Enabled (aws_s3_bucket_versioning)"))
		}

		cold := false
		for _, lc := range companions(files, "aws_s3_bucket_lifecycle_configuration", bucket) {
			for _, t := range nestedBodies(lc.Body, "rule", "transition") {
				if a, ok := t.Attributes["storage_class"]; ok {
					if s, _ := stringLiteral(a.Expr); slices.Contains(coldStorageClasses, s) {
						cold = true
					}
				}
			}
		}
		if !cold {
			ps = append(ps, problemf(where, addr, "lifecycle", "no lifecycle rule transitions objects to a colder storage class"))
		}
	}
	return ps
}

// CompositionModule is the module every environment calls, and only it.
const CompositionModule = "modules/platform"

func environmentProblems(tree *tfTree) []Problem {
	envRoot := filepath.Join(tree.root, "environments")
	var ps []Problem
	for _, dir := range sortedKeys(tree.dirs) {
		if filepath.Dir(dir) != envRoot {
			continue
		}
		var calls []*hclsyntax.Block
		for _, f := range tree.dirs[dir] {
			for _, b := range f.body.Blocks {
				switch b.Type {
				case "module":
					calls = append(calls, b)
					src := moduleSource(dir, b)
					if src != filepath.Join(tree.root, CompositionModule) {
						ps = append(ps, problemf(at(f.path, b.DefRange()), blockAddress(b), "source", "environments call only %s (values only), got %s", CompositionModule, src))
					}
				case "resource", "data":
					ps = append(ps, problemf(at(f.path, b.DefRange()), blockAddress(b), "", "environments hold values only: move this into %s", CompositionModule))
				}
			}
		}
		if len(calls) != 1 {
			ps = append(ps, problemf(dir, "", "", "an environment calls %s exactly once, found %d module calls", CompositionModule, len(calls)))
		}
	}
	if envs := tfEnvironments(tree); envs["production"] != nil {
		for _, db := range envs["production"].Find(tree, "aws_db_instance") {
			v, ok := db.Resolve(tree, "multi_az")
			if !ok || v.Type() != cty.Bool || !v.True() {
				ps = append(ps, problemf(db.At(), db.Address, "multi_az", "production must run PostgreSQL Multi-AZ: resolves to %s", db.Describe(tree, "multi_az")))
			}
		}
	}
	return ps
}

func moduleSource(dir string, b *hclsyntax.Block) string {
	src := ""
	if a, ok := b.Body.Attributes["source"]; ok {
		src, _ = stringLiteral(a.Expr)
	}
	if strings.HasPrefix(src, ".") {
		src = filepath.Clean(filepath.Join(dir, src))
	}
	return src
}

// scope is one module instance: its directory and the arguments its caller
// passed, so var.X inside it resolves to the caller's expression.
type scope struct {
	dir    string
	file   string // where the call is (for messages)
	call   *hclsyntax.Block
	parent *scope
	path   string // module.platform.module.rds
}

// tfEnvironments returns the root scope of each directory under environments/.
func tfEnvironments(tree *tfTree) map[string]*scope {
	out := map[string]*scope{}
	envRoot := filepath.Join(tree.root, "environments")
	for dir := range tree.dirs {
		if filepath.Dir(dir) == envRoot {
			out[filepath.Base(dir)] = &scope{dir: dir}
		}
	}
	return out
}

// instance is a resource reached from an environment through module calls.
type instance struct {
	block   *hclsyntax.Block
	file    string
	scope   *scope
	Address string
}

// At is the resource's file:line.
func (r instance) At() string { return at(r.file, r.block.DefRange()) }

// Find returns every resource of type typ reachable from s.
func (s *scope) Find(tree *tfTree, typ string) []instance {
	var out []instance
	for _, f := range tree.dirs[s.dir] {
		for _, b := range f.body.Blocks {
			switch {
			case b.Type == "resource" && len(b.Labels) == 2 && b.Labels[0] == typ:
				out = append(out, instance{block: b, file: f.path, scope: s, Address: strings.TrimPrefix(s.path+"."+resourceAddress(b), ".")})
			case b.Type == "module" && len(b.Labels) == 1:
				child := &scope{dir: moduleSource(s.dir, b), file: f.path, call: b, parent: s, path: strings.TrimPrefix(s.path+".module."+b.Labels[0], ".")}
				if _, ok := tree.dirs[child.dir]; ok && depth(child) < 10 {
					out = append(out, child.Find(tree, typ)...)
				}
			}
		}
	}
	return out
}

func depth(s *scope) int {
	n := 0
	for ; s != nil; s = s.parent {
		n++
	}
	return n
}

// Resolve evaluates attribute name of the resource when it is a literal or
// a chain of var.X references back to literals in the callers (or to
// variable defaults).
func (r instance) Resolve(tree *tfTree, name string) (cty.Value, bool) {
	a, ok := r.block.Body.Attributes[name]
	if !ok {
		return cty.NilVal, false
	}
	return resolve(tree, a.Expr, r.scope)
}

// Describe says what an attribute resolves to, for messages.
func (r instance) Describe(tree *tfTree, name string) string {
	v, ok := r.Resolve(tree, name)
	if !ok {
		return "nothing literal (set it, or pass a literal through every module call)"
	}
	if v.Type() == cty.String {
		return fmt.Sprintf("%q", v.AsString())
	}
	return v.GoString()
}

func resolve(tree *tfTree, e hclsyntax.Expression, s *scope) (cty.Value, bool) {
	if v, ok := literal(e); ok {
		return v, true
	}
	name, isVar := varReference(e)
	if !isVar || s == nil {
		return cty.NilVal, false
	}
	if s.call != nil {
		if arg, ok := s.call.Body.Attributes[name]; ok {
			return resolve(tree, arg.Expr, s.parent)
		}
	}
	if def, ok := variableDefault(tree.dirs[s.dir], name); ok {
		return resolve(tree, def, nil)
	}
	return cty.NilVal, false
}

func varReference(e hclsyntax.Expression) (string, bool) {
	st, ok := e.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(st.Traversal) != 2 || st.Traversal.RootName() != "var" {
		return "", false
	}
	a, ok := st.Traversal[1].(hcl.TraverseAttr)
	return a.Name, ok
}

func variableDefault(files []*tfFile, name string) (hclsyntax.Expression, bool) {
	for _, f := range files {
		for _, b := range blocksOf(f.body, "variable") {
			if len(b.Labels) == 1 && b.Labels[0] == name {
				if d, ok := b.Body.Attributes["default"]; ok {
					return d.Expr, true
				}
			}
		}
	}
	return nil, false
}

// KubernetesVersions resolves the version of every aws_eks_cluster each
// environment creates ("" when it is not a literal along the module calls).
func KubernetesVersions(root string) (map[string][]string, error) {
	tree, ps := parseTerraform(root)
	if tree == nil {
		return nil, fmt.Errorf("%s", Problems(ps))
	}
	out := map[string][]string{}
	for env, s := range tfEnvironments(tree) {
		for _, c := range s.Find(tree, "aws_eks_cluster") {
			v, ok := c.Resolve(tree, "version")
			if ok && v.Type() == cty.String {
				out[env] = append(out[env], v.AsString())
			} else {
				out[env] = append(out[env], "")
			}
		}
	}
	return out, nil
}

// KubernetesVersionProblems reports every environment whose EKS clusters run
// a Kubernetes older than min (knative.dev/pkg's DefaultKubernetesMinVersion:
// below it every Knative controller and webhook exits at start), or whose
// version is not a literal the check can read.
func KubernetesVersionProblems(root, min string) []Problem {
	versions, err := KubernetesVersions(root)
	if err != nil {
		return []Problem{problemf(root, "", "", "%v", err)}
	}
	var ps []Problem
	if len(versions) == 0 {
		ps = append(ps, problemf(filepath.Join(root, "environments"), "", "", "no environment creates an aws_eks_cluster"))
	}
	for _, env := range sortedKeys(versions) {
		for _, v := range versions[env] {
			where := filepath.Join(root, "environments", env)
			switch {
			case v == "":
				ps = append(ps, problemf(where, "aws_eks_cluster", "version", "kubernetes_version must be a literal in the environment (or a module default) so it can be checked against Knative's minimum %s", min))
			case !semver.IsValid("v"+v) || semver.Compare("v"+v, min) < 0:
				ps = append(ps, problemf(where, "aws_eks_cluster", "version", "Kubernetes %s is older than %s, the DefaultKubernetesMinVersion of the pinned knative.dev/pkg: every Knative controller and webhook would exit at start", v, min))
			}
		}
	}
	return ps
}
