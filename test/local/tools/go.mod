// Small Go tools for the local cluster harness (test/local): a static pause
// binary and dir2image, which turns a directory into an image tarball that
// `ctr images import` loads. Kept out of the main module so that
// go-containerregistry never becomes one of eci's dependencies. The pinned
// Kubernetes and etcd builds live in modules of their own (kubernetes/, etcd/).
module github.com/eci-dev/eci/test/local/tools

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
