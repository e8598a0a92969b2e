package policy

import (
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
)

// Scheme knows the core types and eci's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

func clientgoScheme() *runtime.Scheme { return clientgoscheme.Scheme }

func fieldsNodeName(node string) fields.Selector {
	return fields.OneTermEqualSelector("spec.nodeName", node)
}
