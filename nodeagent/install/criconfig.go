package install

import (
	"fmt"

	"github.com/eci-dev/eci/nodeagent/criconfig"
	"github.com/eci-dev/eci/nodeagent/hostcheck"
)

// FileConfig registers the handler in the CRI's config files on the host.
type FileConfig struct {
	HostRoot         string
	CRI              string // containerd or crio
	ContainerdConfig string // host path
	CRIODropInDir    string // host path
	Handler          criconfig.Handler
}

// Install plans and applies the registration.
func (c FileConfig) Install(criVersion string) (bool, string, error) {
	var plan criconfig.Plan
	var err error
	switch c.CRI {
	case "containerd":
		major, merr := hostcheck.Major(criVersion)
		if merr != nil {
			return false, "", merr
		}
		plan, err = criconfig.PlanContainerdInstall(c.HostRoot, c.ContainerdConfig, major, c.Handler)
	case "crio":
		plan, err = criconfig.PlanCRIOInstall(c.HostRoot, c.CRIODropInDir, c.Handler)
	default:
		return false, "", fmt.Errorf("unknown CRI %q", c.CRI)
	}
	if err != nil {
		return false, "", err
	}
	return plan.Changed, plan.Description, plan.Apply(c.HostRoot)
}

// Uninstall plans and applies the removal.
func (c FileConfig) Uninstall() (bool, string, error) {
	var plan criconfig.Plan
	var err error
	switch c.CRI {
	case "containerd":
		plan, err = criconfig.PlanContainerdUninstall(c.HostRoot, c.ContainerdConfig, c.Handler)
	case "crio":
		plan, err = criconfig.PlanCRIOUninstall(c.HostRoot, c.CRIODropInDir, c.Handler)
	default:
		return false, "", fmt.Errorf("unknown CRI %q", c.CRI)
	}
	if err != nil {
		return false, "", err
	}
	return plan.Changed, plan.Description, plan.Apply(c.HostRoot)
}
