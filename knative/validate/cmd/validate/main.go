// Command validate runs every offline deployment check of GameMetrics
// against a repository checkout and exits non-zero on any problem.
//
//	go run ./cmd/validate -root ../..
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gamemetrics/gamemetrics/knative/validate"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	root := fs.String("root", "../..", "repository root (holds knative/, eventing/, terraform/, func.yaml)")
	skipFmt := fs.Bool("skip-fmt", false, "do not run terraform fmt -check")
	tools := fs.Bool("tools", false, "also run terraform init/validate (offline, $TF_CLI_CONFIG_FILE) on every module and environment, and tflint ($TFLINT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	report, err := validate.Repository(ctx, *root, validate.Options{Fmt: !*skipFmt, Tools: *tools})
	if err != nil {
		return err
	}
	if len(report) > 0 {
		fmt.Fprintln(stdout, report.String())
		return fmt.Errorf("%d problem(s)", len(report))
	}
	fmt.Fprintln(stdout, "ok: knative/, eventing/, terraform/, the platform layer, the ArgoCD apps and func.yaml pass every offline check")
	return nil
}
