package validate

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
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
// the GameMetrics infrastructure rules:
//   - every variable has a type and a non-empty description; variables that
//     name a secret are sensitive and have no literal default;
//   - no attribute or object key naming a password, secret, token or access
//     key is assigned a string literal;
//   - every aws_s3_bucket has a public access block with all four flags
//     true, SSE with aws:kms, versioning Enabled and a lifecycle transition
//     to a colder storage class;
//   - aws_db_instance has storage_encrypted = true and is not public, and
//     the production environment runs it Multi-AZ;
//   - aws_elasticache_replication_group encrypts in transit and at rest and
//     uses an AUTH token;
//   - aws_msk_cluster encrypts client-broker traffic with TLS only and in
//     the cluster, and refuses unauthenticated clients;
//   - every directory under environments/ instantiates the same modules.
func CheckTerraform(root string) []Problem {
	tree, ps := parseTerraform(root)
	if tree == nil {
		return ps
	}
	for _, dir := range sortedKeys(tree.dirs) {
		for _, f := range tree.dirs[dir] {
			ps = append(ps, variableProblems(f)...)
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

func variableProblems(f *tfFile) []Problem {
	var ps []Problem
	for _, b := range blocksOf(f.body, "variable") {
		if len(b.Labels) != 1 {
			continue
		}
		name, where := b.Labels[0], at(f.path, b.DefRange())
		addr := "variable." + name
		if _, ok := b.Body.Attributes["type"]; !ok {
			ps = append(ps, problemf(where, addr, "type", "every variable needs a type"))
		}
		desc, ok := b.Body.Attributes["description"]
		if !ok {
			ps = append(ps, problemf(where, addr, "description", "every variable needs a description"))
		} else if s, lit := stringLiteral(desc.Expr); lit && strings.TrimSpace(s) == "" {
			ps = append(ps, problemf(where, addr, "description", "description is empty"))
		}
		if secretName(name) {
			if s, ok := b.Body.Attributes["sensitive"]; !ok || !isLiteralTrue(s.Expr) {
				ps = append(ps, problemf(where, addr, "sensitive", "%s holds a secret and must be sensitive = true", name))
			}
			if d, ok := b.Body.Attributes["default"]; ok {
				if s, lit := stringLiteral(d.Expr); lit && s != "" {
					ps = append(ps, problemf(where, addr, "default", "secret literal: %s must not have a default value", name))
				}
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

func secretName(name string) bool {
	return secretWordRE.MatchString(name) && !secretMetaRE.MatchString(name)
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
			ps = append(ps, problemf(at(f.path, e.Range()), "", name, "secret literal: use a sensitive variable, random_password or AWS Secrets Manager"))
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
		case "aws_msk_cluster":
			transit := nestedBodies(b.Body, "encryption_info", "encryption_in_transit")
			if len(transit) == 0 {
				ps = append(ps, problemf(where, addr, "encryption_info.encryption_in_transit", "missing: encryption in transit must be explicit"))
			}
			for _, t := range transit {
				if a, ok := t.Attributes["client_broker"]; !ok {
					ps = append(ps, problemf(where, addr, "encryption_info.encryption_in_transit.client_broker", "must be \"TLS\""))
				} else if s, _ := stringLiteral(a.Expr); s != "TLS" {
					ps = append(ps, problemf(where, addr, "encryption_info.encryption_in_transit.client_broker", "must be \"TLS\", got %q", s))
				}
				if a, ok := t.Attributes["in_cluster"]; ok && !isLiteralTrue(a.Expr) {
					ps = append(ps, problemf(where, addr, "encryption_info.encryption_in_transit.in_cluster", "must be true"))
				}
			}
			for _, ca := range nestedBodies(b.Body, "client_authentication") {
				if a, ok := ca.Attributes["unauthenticated"]; ok && !isLiteralFalse(a.Expr) {
					ps = append(ps, problemf(where, addr, "client_authentication.unauthenticated", "must be false"))
				}
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

// envModule is a module block of an environment.
type envModule struct {
	block  *hclsyntax.Block
	file   string
	source string // cleaned path of the module directory
}

func environmentProblems(tree *tfTree) []Problem {
	envRoot := filepath.Join(tree.root, "environments")
	envs := map[string]map[string]envModule{}
	for dir, files := range tree.dirs {
		if filepath.Dir(dir) != envRoot {
			continue
		}
		mods := map[string]envModule{}
		for _, f := range files {
			for _, b := range blocksOf(f.body, "module") {
				if len(b.Labels) != 1 {
					continue
				}
				src := ""
				if a, ok := b.Body.Attributes["source"]; ok {
					src, _ = stringLiteral(a.Expr)
				}
				if strings.HasPrefix(src, ".") {
					src = filepath.Clean(filepath.Join(dir, src))
				}
				mods[b.Labels[0]] = envModule{block: b, file: f.path, source: src}
			}
		}
		envs[filepath.Base(dir)] = mods
	}
	if len(envs) == 0 {
		return nil // a module-only tree (test fixtures); Repository checks the real environments exist
	}

	var ps []Problem
	// Every environment instantiates the union of all modules, from the same source.
	union := map[string]string{}
	for _, name := range sortedKeys(envs) {
		for m, em := range envs[name] {
			if _, ok := union[m]; !ok {
				union[m] = em.source
			}
		}
	}
	for _, name := range sortedKeys(envs) {
		for _, m := range sortedKeys(union) {
			em, ok := envs[name][m]
			switch {
			case !ok:
				ps = append(ps, problemf(filepath.Join(envRoot, name), "module."+m, "", "environment %s does not instantiate module %q (source %s) that other environments use", name, m, union[m]))
			case em.source != union[m]:
				ps = append(ps, problemf(at(em.file, em.block.DefRange()), "module."+m, "source", "source %s differs from %s in other environments", em.source, union[m]))
			}
		}
	}

	if prod, ok := envs["production"]; ok {
		ps = append(ps, multiAZProblems(tree, prod)...)
	}
	return ps
}

// multiAZProblems checks that every aws_db_instance reached from the
// production environment runs Multi-AZ, following var.X one level into the
// module call (and its variable default).
func multiAZProblems(tree *tfTree, prod map[string]envModule) []Problem {
	var ps []Problem
	for _, name := range sortedKeys(prod) {
		em := prod[name]
		files := tree.dirs[em.source]
		for _, db := range resources(files, "aws_db_instance") {
			where := at(fileOf(files, db), db.DefRange())
			a, ok := db.Body.Attributes["multi_az"]
			if !ok {
				ps = append(ps, problemf(where, resourceAddress(db), "multi_az", "missing; production needs Multi-AZ"))
				continue
			}
			if isLiteralTrue(a.Expr) {
				continue
			}
			v, isVar := varReference(a.Expr)
			if !isVar {
				ps = append(ps, problemf(where, resourceAddress(db), "multi_az", "must be true or a variable that production sets to true"))
				continue
			}
			if arg, ok := em.block.Body.Attributes[v]; ok {
				if !isLiteralTrue(arg.Expr) {
					ps = append(ps, problemf(at(em.file, arg.SrcRange), "module."+name, v, "production must pass %s = true (Multi-AZ PostgreSQL)", v))
				}
				continue
			}
			if def, ok := variableDefault(files, v); !ok || !isLiteralTrue(def) {
				ps = append(ps, problemf(at(em.file, em.block.DefRange()), "module."+name, v, "production must pass %s = true (Multi-AZ PostgreSQL); the module default is not true", v))
			}
		}
	}
	return ps
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

// ModulesOf lists the module names each environment instantiates.
func ModulesOf(root string) (map[string][]string, error) {
	tree, ps := parseTerraform(root)
	if tree == nil {
		return nil, fmt.Errorf("%s", Problems(ps))
	}
	out := map[string][]string{}
	envRoot := filepath.Join(root, "environments")
	for dir, files := range tree.dirs {
		if filepath.Dir(dir) != envRoot {
			continue
		}
		for _, f := range files {
			for _, b := range blocksOf(f.body, "module") {
				out[filepath.Base(dir)] = append(out[filepath.Base(dir)], b.Labels[0])
			}
		}
		sort.Strings(out[filepath.Base(dir)])
	}
	return out, nil
}

// TerraformFmt runs `terraform fmt -check -recursive` on dir.
func TerraformFmt(dir string) error {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		return fmt.Errorf("terraform binary not found in PATH: install Terraform >= 1.5 to run `terraform fmt -check -recursive %s`", dir)
	}
	cmd := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", dir)
	// Keep a missing ~/.terraformrc from cluttering the output.
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("terraform fmt -check -recursive %s: %v; run `terraform fmt -recursive %s`:\n%s", dir, err, dir, out)
	}
	return nil
}
