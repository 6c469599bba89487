# GameMetrics — see README.md. Every target installs what it needs itself.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export GOFLAGS ?= -buildvcs=false

# Debian packages (redis-server, postgresql-15-hll, and chromium for the
# dashboard test) are installed by `make deps` / `make test-deps` when
# running as root; otherwise the exact command is printed.

.PHONY: all deps test-deps apt-install build dev dev-reset test test-go lint lint-imports validate validate-helm terraform-mirror image-cli bench bench-ingest bench-process bench-eventing bench-retain bench-e2e bench-report bench-notify fuzz image deploy clean monitoring chaos

all: build

# deps: what `make dev` needs; test-deps adds the browser for the dashboard
# test and promtool (Debian prometheus) for the monitoring rules.
deps:
	@$(MAKE) --no-print-directory apt-install PKGS="redis-server:redis-server postgresql-15-hll:/usr/share/postgresql/15/extension/hll.control"
	@$(GO) mod download

test-deps: deps
	@$(MAKE) --no-print-directory apt-install PKGS="chromium:chromium prometheus:promtool"

# apt-install PKGS="package:command-or-file ...": installs the packages whose
# command or file is missing (as root), or prints the command to run.
apt-install:
	@missing=""; \
	for p in $(PKGS); do pkg=$${p%%:*}; probe=$${p#*:}; \
	  if [ "$${probe#/}" != "$$probe" ]; then [ -e "$$probe" ] || missing="$$missing $$pkg"; \
	  else command -v "$$probe" >/dev/null 2>&1 || missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || { echo "apt-get install$$missing failed" >&2; exit 1; }; \
	  else \
	    echo "missing Debian packages:$$missing" >&2; \
	    echo "run: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

build:
	$(GO) build -o $(BIN)/gamemetrics ./cmd/gamemetrics

## dev: the whole platform locally; data stays in .gamemetrics/ (make dev-reset wipes it)
dev: deps build
	$(BIN)/gamemetrics dev

dev-reset:
	rm -rf .gamemetrics

## test: lint, every Go test with -race against the real local stack, offline deploy validation
test: test-deps lint test-go validate

test-go:
	$(GO) test -race -timeout 20m ./...

lint: lint-imports
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# lint-imports: a function (functions/<a>) imports only shared/ packages,
# never another function, and shared/ imports no function. Only non-test
# code counts (a function's tests may seed data through another function);
# the wiring package functions/ and the functionstest harness import them all.
lint-imports:
	@mod=$$($(GO) list -m) && list=$$($(GO) list -f '{{.ImportPath}}{{range .Deps}} {{.}}{{end}}' ./functions/... ./shared/...) || exit 1; \
	bad=0; while read -r pkg deps; do \
	  rel=$${pkg#"$$mod"/}; own=; \
	  case $$rel in functions|functions/functionstest|functions/functionstest/*) continue;; \
	    functions/*) own=$${rel#functions/}; own=functions/$${own%%/*};; esac; \
	  for dep in $$deps; do \
	    d=$${dep#"$$mod"/}; \
	    case $$d in functions|functions/*) ;; *) continue;; esac; \
	    case $$d in "$$own"|"$$own"/*) [ -n "$$own" ] && continue;; esac; \
	    echo "$$rel depends on $$d: a function imports only shared/ packages, and shared/ imports no function" >&2; bad=1; \
	  done; \
	done <<< "$$list"; exit $$bad

## monitoring: promtool checks and unit tests of the alert rules, the dashboard
## and the manifests in monitoring/, against the metrics the code registers
monitoring:
	@$(MAKE) --no-print-directory apt-install PKGS="prometheus:promtool"
	$(GO) test -count=1 ./monitoring/

## chaos: the local chaos experiments (toxiproxy between the functions and
## PostgreSQL/Redis; also part of test-go) and the Chaos Mesh manifests' check
chaos:
	$(GO) test -race -count=1 ./chaos/
	cd chaos/validate && $(GO) test ./...

## validate: everything a deploy applies, checked offline: terraform init
## -backend=false + terraform validate on every module and environment (the
## hashicorp/aws filesystem mirror, discovered), tflint, the Kubernetes
## version Knative needs, the project's HCL rules, the Knative/eventing/
## platform/ArgoCD manifests, deploy.sh's order, func.yaml, chaos/mesh
TFLINT_VERSION := v0.64.0
TFLINT         := $(BIN)/tflint
TF_CLI_CONFIG  := $(BIN)/terraform.rc

validate: $(TFLINT) terraform-mirror validate-helm
	TF_CLI_CONFIG_FILE=$(TF_CLI_CONFIG) terraform fmt -check -recursive terraform
	cd knative/validate && TF_CLI_CONFIG_FILE=$(TF_CLI_CONFIG) TFLINT=$(TFLINT) $(GO) test -timeout 20m ./...
	cd chaos/validate && $(GO) vet ./... && $(GO) test ./...

# validate-helm: the Helm values of monitoring/helm against the keys their
# charts define (monitoring/helm/chart-keys.yaml, offline, always), and
# rendered by helm template when GAMEMETRICS_HELM_CHARTS names a directory of
# the charts (monitoring/tools/helm-charts.sh; helm is installed into bin/ if
# missing). The charts are not in the repository, so a clean clone only
# checks the keys; monitoring/README.md, "Shipping".
HELM_VERSION := v3.22.0
HELM_TESTS   := TestHelm|TestUnknownKeysOfValues|TestLogLabelsAreFewAndBounded|TestTracesReachAlloy|TestAlloyLogFieldsOfAConfig
validate-helm:
	@if [ -n "$${GAMEMETRICS_HELM_CHARTS:-}" ]; then \
	  command -v helm >/dev/null || [ -x $(BIN)/helm ] || GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	  echo "validate-helm: rendering every release with helm template from $$GAMEMETRICS_HELM_CHARTS"; \
	else \
	  echo "validate-helm: GAMEMETRICS_HELM_CHARTS is not set: the values are checked against monitoring/helm/chart-keys.yaml, not rendered (monitoring/README.md, Shipping)"; \
	fi
	cd monitoring && PATH="$(BIN):$$PATH" $(GO) test -count=1 -run '$(HELM_TESTS)' .

$(TFLINT):
	GOBIN=$(BIN) $(GO) install github.com/terraform-linters/tflint@$(TFLINT_VERSION)

# terraform-mirror: writes bin/terraform.rc, the CLI configuration that
# points terraform init at a filesystem mirror of the hashicorp/aws provider
# (the registry is not reachable here). The mirror is found by looking for
# registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*
# anywhere on the machine (below TF_MIRROR_SEARCH), once; TF_PLUGIN_MIRROR=<dir
# holding registry.terraform.io> skips the search. Without a mirror, validate
# stops and says what is missing.
TF_MIRROR_SEARCH ?= /
terraform-mirror:
	@mkdir -p $(BIN); \
	mirror="$${TF_PLUGIN_MIRROR:-}"; \
	if [ -z "$$mirror" ] && [ -f $(TF_CLI_CONFIG) ]; then \
	  mirror=$$(sed -n 's/^ *path *= *"\(.*\)"$$/\1/p' $(TF_CLI_CONFIG)); \
	fi; \
	if [ -z "$$mirror" ] || ! ls "$$mirror"/registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws_* >/dev/null 2>&1; then \
	  f=$$(find $(TF_MIRROR_SEARCH) -xdev \( -path /proc -o -path /sys -o -path /dev -o -name .terraform -o -name .git -o -name node_modules \) -prune \
	       -o -type f -path '*/registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws_*' -print -quit 2>/dev/null); \
	  mirror=$${f%%/registry.terraform.io/*}; \
	fi; \
	if [ -z "$$mirror" ]; then \
	  echo "make validate: no filesystem mirror of the Terraform provider hashicorp/aws on this machine." >&2; \
	  echo "  terraform init -backend=false needs <dir>/registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/terraform-provider-aws_*" >&2; \
	  echo "  (the version terraform/environments/*/.terraform.lock.hcl pins). With network access, create one with" >&2; \
	  echo "  'terraform -chdir=terraform/environments/dev providers mirror <dir>' and run 'make validate TF_PLUGIN_MIRROR=<dir>'." >&2; \
	  exit 1; \
	fi; \
	printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$$mirror" > $(TF_CLI_CONFIG).tmp && mv $(TF_CLI_CONFIG).tmp $(TF_CLI_CONFIG); \
	echo "terraform providers from the filesystem mirror $$mirror"

## fuzz: a short run of every fuzz target
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseRequest -fuzztime 30s ./functions/ingest/
	$(GO) test -run '^$$' -fuzz FuzzDecodeBinary -fuzztime 30s ./functions/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzScan$$' -fuzztime 30s ./shared/events/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateData$$' -fuzztime 30s ./shared/events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime 30s ./shared/events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSONFields$$' -fuzztime 30s ./shared/events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime 30s ./shared/events/
	$(GO) test -run '^$$' -fuzz FuzzParseManifests -fuzztime 30s ./shared/eventing/
	$(GO) test -run '^$$' -fuzz FuzzParseDuration -fuzztime 30s ./shared/eventing/
	$(GO) test -run '^$$' -fuzz FuzzPassThroughMakesTheSDKsRequest -fuzztime 30s ./shared/eventing/
	$(GO) test -run '^$$' -fuzz FuzzDecodePending -fuzztime 30s -fuzzminimizetime 5s ./functions/process/
	$(GO) test -run '^$$' -fuzz FuzzDecodeNDJSON -fuzztime 30s ./shared/archive/
	$(GO) test -run '^$$' -fuzz FuzzRequestParameters -fuzztime 30s ./functions/report/
	$(GO) test -run '^$$' -fuzz FuzzParseItems -fuzztime 30s ./functions/recommend/
	$(GO) test -run '^$$' -fuzz FuzzParseSettingsAndRequests -fuzztime 30s ./functions/recommend/
	$(GO) test -run '^$$' -fuzz FuzzDecodeModel -fuzztime 30s ./functions/recommend/
	$(GO) test -run '^$$' -fuzz FuzzRuleBodies -fuzztime 30s ./functions/notify/

## bench: measured speed of every path (figures are recorded in README.md)
bench: deps build bench-ingest bench-process bench-eventing bench-retain bench-e2e bench-report bench-recommend bench-notify

# Seeds 1,000,000 players / 10,000,000 events over 90 days through the process
# batch writer (about 4 minutes here), then measures report latency.
bench-report:
	$(GO) test -run '^$$' -bench BenchmarkReport -benchtime 50x -timeout 60m ./functions/report/

# Evaluation on a simulated 5,000 × 1,000 game, training time and memory
# of 100,000 × 2,000, and serving latency under wrk (Debian wrk, another
# process) at 1,000,000 players × 10,000 items (seeding and training that
# game takes most of the run). Phases: BENCH_RECOMMEND="-phases eval".
bench-recommend: deps build
	@$(MAKE) --no-print-directory apt-install PKGS="wrk:wrk"
	$(GO) run ./e2e/bench/recommend -gamemetrics $(BIN)/gamemetrics -wrk $$(command -v wrk) $(BENCH_RECOMMEND)

# 10,000 alert rules across 100 games on one tick, then the anomaly
# detector's quality on synthetic weekly-seasonal Poisson series.
bench-notify:
	$(GO) test -run '^$$' -bench TickOf10000 -benchtime 3x -timeout 30m ./functions/notify/
	$(GO) test -count=1 -run AnomalyDetectorQuality -v ./functions/notify/

bench-retain:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./functions/retain/

bench-e2e:
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 40000x -timeout 20m ./e2e/

bench-process:
	$(GO) test -run '^$$' -bench . ./functions/process/

bench-eventing:
	$(GO) test -run '^$$' -bench BenchmarkUnorderedDelivery -benchtime 40000x ./shared/eventing/

# wrk (Debian) loads ingest and a plain net/http server in alternating
# rounds; BENCH_INGEST_FLAGS passes flags on (e.g. -rounds 5 -duration 20s).
bench-ingest: deps build
	@$(MAKE) --no-print-directory apt-install PKGS="wrk:wrk util-linux:taskset"
	$(GO) run ./e2e/bench/ingest -gamemetrics $(BIN)/gamemetrics $(BENCH_INGEST_FLAGS)
	$(GO) test -run '^$$' -bench ServeHTTP -benchtime 3s ./functions/ingest/
	$(GO) test -run '^$$' -bench 'Validate|Decode' ./shared/events/

## image: one image for every function (FUNCTION selects); see knative/README.md
IMAGE ?= registry.example.com/gamemetrics/gamemetrics:latest
image:
	@command -v func >/dev/null || { echo "make image needs the Knative func CLI >= v0.48 (knative-v1.21); see README.md, Deploying" >&2; exit 1; }
	FUNC_ENABLE_HOST_BUILDER=true func build --builder host --image $(IMAGE) --push

## image-cli: the operator CLI image (migration Job, status, replay): a static
## binary on distroless, non-root, pushed without a container engine
CLI_IMAGE ?= registry.example.com/gamemetrics/gamemetrics-cli:latest
CLI_BASE  ?= gcr.io/distroless/static-debian12:nonroot
CRANE     := $(BIN)/crane
$(CRANE):
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@v0.22.1

image-cli: $(CRANE)
	rm -rf $(BIN)/cli-image && mkdir -p $(BIN)/cli-image
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -o $(BIN)/cli-image/gamemetrics ./cmd/gamemetrics
	tar --owner=0 --group=0 --mode=0755 -C $(BIN)/cli-image -cf $(BIN)/cli-image.tar gamemetrics
	# Two tags, because ECR tags are immutable: the bare layer, then the
	# configured image (use a tag per build, e.g. the commit).
	$(CRANE) append --platform linux/amd64 --base $(CLI_BASE) --new_layer $(BIN)/cli-image.tar --new_tag $(CLI_IMAGE)-layer
	$(CRANE) mutate $(CLI_IMAGE)-layer --entrypoint /gamemetrics --user 65532:65532 --tag $(CLI_IMAGE)

## deploy ENV=dev|staging|production IMAGE=<repo>:<tag> CLI_IMAGE=<repo>:<tag>:
## build and push both images, then knative/deploy.sh with their digests
ENV ?= dev
deploy: image image-cli
	@case "$(ENV)" in dev|staging|production) ;; *) echo "ENV must be dev, staging or production" >&2; exit 1;; esac
	@for t in kubectl helm curl; do command -v $$t >/dev/null || { echo "make deploy needs $$t on PATH (knative/README.md)" >&2; exit 1; }; done
	knative/deploy.sh $(ENV) "$$($(CRANE) digest --full-ref $(IMAGE))" "$$($(CRANE) digest --full-ref $(CLI_IMAGE))"

clean:
	rm -rf $(BIN)
