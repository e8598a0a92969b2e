# eci build and test entry points. Pinned versions live in hack/versions.env.
#
#   make deps        install build/test dependencies (Debian 12, root)
#   make build       bin/eci-runtime and bin/runc
#   make test        deps + build + lint + unit, privileged and e2e lanes (root; what CI runs)
#   make test-go     unit and privileged lanes only (root, no cluster)
#   make test-envtest the CRD's CEL validation, the controller and eci-node's policy sync against a real kube-apiserver
#   make generate    regenerate deepcopy and CRDs (CI: verify-generate fails on a diff)
#   make test-unit   unit tests only (any user, no deps/build)
#   make demo        run a privileged container under eci-runtime and show its isolation (root)
#   make up          bring up eci on a cluster (the local one if KUBECONFIG is unset) and show an isolated pod
#   make down        tear the local cluster down
#   make e2e         the e2e suite against that cluster (starts it if needed)
#   make helm-lint   helm lint --strict of charts/eci
#   make bench       benchmarks in ./bench against bin/
#   make clean       remove bin/ (the runc cache in $(ECI_CACHE_DIR) is kept)

SHELL := /bin/bash
.DEFAULT_GOAL := build
# Prerequisites run in the order written (deps before build before lint).
.NOTPARALLEL:

include hack/versions.env

GO ?= go
export GOFLAGS := -buildvcs=false
export ECI_CACHE_DIR ?= /var/cache/eci

VERSION ?= 0.1.0-dev
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

BIN_DIR := $(CURDIR)/bin
VERSION_PKG := github.com/eci-dev/eci/internal/version
ECI_LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)

.PHONY: all deps build image lint generate verify-generate test test-go test-envtest test-unit demo up down e2e e2e-scale helm-lint bench clean clean-cache bin/eci-runtime bin/eci-node bin/eci-controller bin/runc

all: build

deps:
	bash hack/install-deps.sh

build: bin/eci-runtime bin/eci-node bin/eci-controller bin/runc

# Phony: go's build cache decides what is out of date.
bin/eci-runtime:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(ECI_LDFLAGS)' -o $@ ./cmd/eci-runtime

bin/eci-node:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(ECI_LDFLAGS)' -o $@ ./cmd/eci-node

bin/eci-controller:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(ECI_LDFLAGS)' -o $@ ./cmd/eci-controller

# The eci image (eci-node + the node artifacts) as a tarball, without Docker.
IMAGE_REPO ?= ghcr.io/eci-dev/eci
IMAGE_TAG ?= $(VERSION)
IMAGE_TAR ?= $(BIN_DIR)/eci-image.tar
image: build
	$(GO) run ./hack/mkimage eci -bin $(BIN_DIR) -tag $(IMAGE_REPO):$(IMAGE_TAG) -o $(IMAGE_TAR)

# Phony: hack/build-runc.sh builds runc $(RUNC_VERSION) once per machine and
# copies it from $(ECI_CACHE_DIR) afterwards.
bin/runc:
	bash hack/build-runc.sh $(BIN_DIR)/runc

lint:
	$(GO) vet ./...
	@unformatted=$$(find . -type f -name '*.go' -not -path './.git/*' -not -path './bin/*' \
		-not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l); \
	if [[ -n $$unformatted ]]; then \
		echo "gofmt: these files are not formatted (run gofmt -w on them):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

# Everything CI runs: lint, unit and privileged tests, then the e2e lane on the local
# cluster (built and started if needed, torn down at the end).
test: deps build lint verify-generate test-go
	ECI_E2E_DOWN=1 bash hack/e2e.sh
	$(MAKE) --no-print-directory test-envtest

# Regenerate deepcopy and the CRDs (config/crd, copied into charts/eci/crds) from api/.
generate:
	bash hack/generate.sh

# CI: fail if the committed generated files differ from what generate produces.
verify-generate: generate
	@changed=$$(git status --porcelain -- api config charts/eci/crds nodeagent/supervisor/syscalls_gen.go); \
	if [[ -n $$changed ]]; then \
		echo "generated files are out of date (run make generate and commit):"; \
		echo "$$changed"; git --no-pager diff -- api config charts/eci/crds nodeagent/supervisor/syscalls_gen.go; \
		exit 1; \
	fi

# The CRDs' CEL validation and the controller against a real kube-apiserver (binaries from
# test/local/build.sh).
test-envtest:
	bash test/local/build.sh kubernetes etcd
	KUBEBUILDER_ASSETS=$(ECI_CACHE_DIR)/local/bin ECI_TEST_ENVTEST=1 $(GO) test -count=1 ./api/... ./controllers/... ./nodeagent/policy/...

# Unit and privileged tests, no cluster (root).
test-go:
	ECI_TEST_PRIVILEGED=1 ECI_BIN_DIR=$(BIN_DIR) $(GO) test -count=1 -timeout 30m ./...

test-unit:
	$(GO) test -short ./...

up: deps
	bash hack/up.sh

down:
	bash test/local/cluster.sh down

e2e: deps
	bash hack/e2e.sh

# The slow lane, not in make test: 100 eci pods reading their /proc emulation at once
# (TestProcEmulationAtScale), on the local cluster (started if needed) or KUBECONFIG's.
e2e-scale: deps
	ECI_E2E_SCALE=1 ECI_E2E_RUN='^TestProcEmulationAtScale$$' bash hack/e2e.sh

HELM ?= $(shell command -v helm || echo $(ECI_CACHE_DIR)/local/bin/helm)
helm-lint:
	$(HELM) lint --strict charts/eci

demo: deps build
	$(GO) run ./hack/demo -bin $(BIN_DIR)

bench: build
	bash hack/install-bench-deps.sh
	ECI_BIN_DIR=$(BIN_DIR) $(GO) test -run '^$$' -bench . -benchtime 30x ./bench/

clean:
	rm -rf $(BIN_DIR)

clean-cache:
	rm -f $(ECI_CACHE_DIR)/runc-$(RUNC_VERSION) $(ECI_CACHE_DIR)/runc-$(RUNC_VERSION).recipe
