# GameMetrics — see README.md. Every target installs what it needs itself.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export GOFLAGS ?= -buildvcs=false

# Debian packages (redis-server, postgresql-15-hll, and chromium for the
# dashboard test) are installed by `make deps` / `make test-deps` when
# running as root; otherwise the exact command is printed.
VEGETA := $(BIN)/vegeta

.PHONY: all deps test-deps apt-install build dev dev-reset test test-go lint lint-imports validate bench bench-ingest bench-process bench-eventing bench-retain bench-e2e bench-report fuzz image deploy clean monitoring chaos

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

## validate: Knative/eventing manifests, func.yaml, Terraform and chaos/mesh, checked offline
validate:
	cd knative/validate && $(GO) test ./...
	cd chaos/validate && $(GO) vet ./... && $(GO) test ./...
	terraform fmt -check -recursive terraform

## fuzz: a short run of every fuzz target
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseRequest -fuzztime 30s ./functions/ingest/
	$(GO) test -run '^$$' -fuzz FuzzMember -fuzztime 30s ./shared/events/
	$(GO) test -run '^$$' -fuzz FuzzParseManifests -fuzztime 30s ./shared/eventing/
	$(GO) test -run '^$$' -fuzz FuzzParseDuration -fuzztime 30s ./shared/eventing/
	$(GO) test -run '^$$' -fuzz FuzzPassThroughMakesTheSDKsRequest -fuzztime 30s ./shared/eventing/
	$(GO) test -run '^$$' -fuzz FuzzDecodePending -fuzztime 30s -fuzzminimizetime 5s ./functions/process/
	$(GO) test -run '^$$' -fuzz FuzzDecodeNDJSON -fuzztime 30s ./shared/archive/
	$(GO) test -run '^$$' -fuzz FuzzRequestParameters -fuzztime 30s ./functions/report/

$(VEGETA):
	GOBIN=$(BIN) $(GO) install github.com/tsenart/vegeta/v12@v12.13.0

## bench: measured speed of every path (figures are recorded in README.md)
bench: deps build $(VEGETA) bench-ingest bench-process bench-eventing bench-retain bench-e2e bench-report

# Seeds 1,000,000 players / 10,000,000 events over 90 days through the process
# batch writer (about 4 minutes here), then measures report latency.
bench-report:
	$(GO) test -run '^$$' -bench BenchmarkReport -benchtime 50x -timeout 60m ./functions/report/

bench-retain:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./functions/retain/

bench-e2e:
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 40000x -timeout 20m ./e2e/

bench-process:
	$(GO) test -run '^$$' -bench . ./functions/process/

bench-eventing:
	$(GO) test -run '^$$' -bench BenchmarkUnorderedDelivery -benchtime 40000x ./shared/eventing/

bench-ingest: build $(VEGETA)
	$(GO) run ./e2e/bench/ingest -gamemetrics $(BIN)/gamemetrics -vegeta $(VEGETA)
	$(GO) test -run '^$$' -bench ServeHTTP -benchtime 3s ./functions/ingest/
	$(GO) test -run '^$$' -bench Validate ./shared/events/

## image: one image for every function (FUNCTION selects); see knative/README.md
IMAGE ?= registry.example.com/gamemetrics/gamemetrics:latest
image:
	@command -v func >/dev/null || { echo "make image needs the Knative func CLI >= v0.48 (knative-v1.21); see README.md, Deploying" >&2; exit 1; }
	FUNC_ENABLE_HOST_BUILDER=true func build --builder host --image $(IMAGE)

## deploy ENV=dev|staging|production: build and push, then apply knative/ and eventing/
ENV ?= dev
deploy:
	@case "$(ENV)" in dev|staging|production) ;; *) echo "ENV must be dev, staging or production" >&2; exit 1;; esac
	@for t in func crane kubectl; do command -v $$t >/dev/null || { echo "make deploy needs $$t on PATH (crane: go install github.com/google/go-containerregistry/cmd/crane@latest)" >&2; exit 1; }; done
	FUNC_ENABLE_HOST_BUILDER=true func build --builder host --image $(IMAGE) --push
	knative/deploy.sh $(ENV) "$$(crane digest --full-ref $(IMAGE))"

clean:
	rm -rf $(BIN)
