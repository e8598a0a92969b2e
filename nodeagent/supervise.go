package nodeagent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/nodeagent/procfsd"
	"github.com/eci-dev/eci/nodeagent/supervisor"
	"github.com/eci-dev/eci/procemu"
	"github.com/eci-dev/eci/procemu/procfs"
	"github.com/eci-dev/eci/runtime/config"
	"github.com/eci-dev/eci/runtime/policy"
)

// Files of the supervisor holder, under the run dir.
const (
	supervisorPIDFile     = "supervisor.pid"
	supervisorMetricsSock = "supervisor-metrics.sock"
)

// runSupervisor is `eci-node supervisor`: the seccomp-notify supervisor, a holder process
// that outlives eci-node restarts (the notify fds it holds are the containers' only
// supervisor: were they closed, every trapped syscall would fail with ENOSYS).
func runSupervisor(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("eci-node supervisor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostRoot := fs.String("host-root", "/host", "where the host's / is mounted in this container")
	configPath := fs.String("config", "", "eci-runtime's settings `file` (default: the host's, under --host-root)")
	reportEvery := fs.Duration("report-every", 10*time.Second, "at most one pod Event per container, syscall and reason in this `interval`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "supervisor")
	if *configPath == "" {
		*configPath = filepath.Join(*hostRoot, config.DefaultPath)
	}
	rc, err := config.LoadFile(*configPath)
	if err != nil {
		return fmt.Errorf("eci-runtime's settings on the host: %w", err)
	}
	if err := procfsd.EscapeCgroups(*hostRoot); err != nil {
		log.Warn("could not leave eci-node's cgroups", "err", err)
	}
	runDir := filepath.Join(*hostRoot, rc.RunDir)
	metrics := supervisor.NewMetrics()
	if err := serveMetricsOn(ctx, filepath.Join(runDir, supervisorMetricsSock), metrics.Registry); err != nil {
		log.Warn("supervisor metrics not served", "err", err)
	}
	srv := &supervisor.Server{
		Socket:   filepath.Join(*hostRoot, policy.SupervisorSocket(rc.RunDir)),
		HostProc: "/proc",
		Log:      log,
		Metrics:  metrics,
		Limit:    &supervisor.Limiter{Every: *reportEvery},
		Report:   func(e supervisor.Event) { reportTrap(runDir, e, log) },
	}
	// sysinfo(2) gets the numbers the /proc emulation shows (the same cgroups, the same
	// renderer), so busybox free agrees with /proc/meminfo.
	if cg, err := os.ReadFile("/proc/1/cgroup"); err == nil {
		resolver := procfsd.RecordResolver{HostRoot: *hostRoot, RunDir: rc.RunDir, Controllers: procfsd.Controllers(cg)}
		srv.Sysinfo = (&sysinfoCache{TTL: procfs.DefaultTTL, Load: func(id string) (procemu.Sysinfo, error) {
			paths, err := resolver.Cgroups(id)
			if err != nil {
				return procemu.Sysinfo{}, err
			}
			v, err := procemu.Gather(*hostRoot, paths, time.Now())
			if err != nil {
				return procemu.Sysinfo{}, err
			}
			return procemu.RenderSysinfo(v), nil
		}}).Get
	}
	pidFile := filepath.Join(runDir, supervisorPIDFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		log.Warn("writing the pid file", "path", pidFile, "err", err)
	}
	defer os.Remove(pidFile)
	return srv.Serve(ctx)
}

// reportTrap spools a pod Event for an audited or refused syscall (the supervisor has
// rate-limited them).
func reportTrap(runDir string, e supervisor.Event, log *slog.Logger) {
	c := e.Container
	if c.PodUID == "" {
		return
	}
	r := policy.Report{
		Kind: policy.KindAudited, Type: "Normal", Reason: "EciSyscallAudited",
		PodUID: c.PodUID, Namespace: c.Namespace, Name: c.Name,
		Policy: c.Policy, Generation: c.Generation, Mode: c.Mode, What: e.Syscall,
		Message: fmt.Sprintf("%s: %s (IsolationPolicy %s)", e.Syscall, e.Reason, c.Policy),
	}
	if e.Denied {
		r.Kind, r.Type, r.Reason = policy.KindDenied, "Warning", "EciSyscallDenied"
		r.Message = fmt.Sprintf("%s denied (%s): %s (IsolationPolicy %s)", e.Syscall, unix.ErrnoName(e.Errno), e.Reason, c.Policy)
	}
	if e.Held > 0 {
		r.Message += fmt.Sprintf("; %d more like it not reported", e.Held)
	}
	if err := policy.Spool(runDir, r); err != nil {
		log.Warn("reporting a trapped syscall", "err", err)
	}
}

// serveMetricsOn serves a registry over a unix socket (root only).
func serveMetricsOn(ctx context.Context, sock string, reg *prometheus.Registry) error {
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return nil
}

// supervisorGatherer adds the supervisor holder's metrics to eci-node's /metrics. When the
// holder does not answer, its metrics are missing and eci_supervisor_up is 0.
type supervisorGatherer struct {
	sock string
}

func (g supervisorGatherer) Gather() ([]*dto.MetricFamily, error) {
	up := 0.0
	var fams []*dto.MetricFamily
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", g.sock)
		}},
	}
	if resp, err := client.Get("http://supervisor/metrics"); err == nil {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		parsed, perr := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if perr == nil && resp.StatusCode == http.StatusOK {
			up = 1
			for _, f := range parsed {
				fams = append(fams, f)
			}
		}
	}
	name, help, typ := "eci_supervisor_up", "1 when eci-node could read the seccomp-notify supervisor's metrics.", dto.MetricType_GAUGE
	fams = append(fams, &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &up}}}})
	return fams, nil
}

// sysinfoCache keeps each container's sysinfo for TTL, as the /proc emulation keeps its
// snapshot: gathering it reads the container's cgroup and tasks (about a millisecond here),
// while a cached answer costs only the trap.
type sysinfoCache struct {
	TTL  time.Duration
	Load func(container string) (procemu.Sysinfo, error)

	mu      sync.Mutex
	entries map[string]sysinfoEntry
}

type sysinfoEntry struct {
	at time.Time
	si procemu.Sysinfo
}

func (c *sysinfoCache) Get(container string) (procemu.Sysinfo, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[container]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.TTL {
		return e.si, nil
	}
	si, err := c.Load(container)
	if err != nil {
		return si, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]sysinfoEntry{}
	}
	for k, old := range c.entries {
		if now.Sub(old.at) >= 10*c.TTL {
			delete(c.entries, k) // containers that stopped asking (or exited)
		}
	}
	c.entries[container] = sysinfoEntry{at: now, si: si}
	return si, nil
}
