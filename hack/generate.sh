#!/usr/bin/env bash
# Regenerates every artifact derived from api/: the deepcopy methods, the CRDs under
# config/crd/bases, and their copies in charts/eci/crds (helm installs crds/ before the
# templates). controller-gen is pinned by the tool directive in go.mod.
# Run from anywhere; "make verify-generate" runs it and fails if the tree changed.
set -euo pipefail
cd "$(dirname "$0")/.."

go tool controller-gen \
	object:headerFile=hack/boilerplate.go.txt paths=./api/... \
	crd paths=./api/... output:crd:dir=config/crd/bases

# RBAC of eci-controller, from the +kubebuilder:rbac markers in controllers/: the ClusterRole
# eci-controller and the leader-election Role. charts/eci/templates/controller-rbac.yaml
# carries the same rules (controllers/rbac_test.go fails when they differ).
go tool controller-gen \
	rbac:roleName=eci-controller paths=./controllers/... output:rbac:dir=config/rbac

mkdir -p charts/eci/crds
rm -f charts/eci/crds/*.yaml
cp config/crd/bases/*.yaml charts/eci/crds/

# The syscall numbers the seccomp-notify supervisor names notifications by (libseccomp, cgo).
CGO_ENABLED=1 go run ./hack/gensyscalls -o nodeagent/supervisor/syscalls_gen.go
