package cliargs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv string
		want Invocation
	}{
		{
			name: "containerd shim create",
			argv: "--root /run/containerd/runc/k8s.io --log /b/log.json --log-format json create --bundle /b --pid-file /b/init.pid abc",
			want: Invocation{
				Globals: Globals{Root: "/run/containerd/runc/k8s.io", Log: "/b/log.json", LogFormat: "json"},
				Verb:    "create", ID: "abc", Bundle: "/b",
			},
		},
		{
			name: "flags after the id and = forms",
			argv: "-root=/r create abc -b /b --console-socket=/s --no-pivot",
			want: Invocation{Globals: Globals{Root: "/r", LogFormat: "text"}, Verb: "create", ID: "abc", Bundle: "/b"},
		},
		{
			name: "run detached",
			argv: "--debug --systemd-cgroup run -d --bundle=. c1",
			want: Invocation{Globals: Globals{Debug: true, SystemdCgroup: true, LogFormat: "text"}, Verb: "run", ID: "c1", Bundle: "."},
		},
		{
			name: "delete force",
			argv: "--root /r delete --force c1",
			want: Invocation{Globals: Globals{Root: "/r", LogFormat: "text"}, Verb: "delete", ID: "c1", Force: true},
		},
		{
			name: "delete -f=false",
			argv: "delete -f=false c1",
			want: Invocation{Globals: Globals{LogFormat: "text"}, Verb: "delete", ID: "c1"},
		},
		{
			name: "other verbs are not parsed",
			argv: "--root /r kill --all c1 9",
			want: Invocation{Globals: Globals{Root: "/r", LogFormat: "text"}, Verb: "kill"},
		},
		{
			name: "version",
			argv: "--version",
			want: Invocation{Globals: Globals{LogFormat: "text"}, Version: true},
		},
		{
			name: "double dash before the id",
			argv: "create --bundle /b -- -weird",
			want: Invocation{Globals: Globals{LogFormat: "text"}, Verb: "create", ID: "-weird", Bundle: "/b"},
		},
		{
			name: "verb help",
			argv: "create --help",
			want: Invocation{Globals: Globals{LogFormat: "text"}, Verb: "create", Help: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := strings.Fields(tt.argv)
			got, err := Parse(args)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.argv, err)
			}
			tt.want.Args = got.Args
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse(%q) =\n %+v\nwant\n %+v", tt.argv, *got, tt.want)
			}
			if got.Verb != "" && !reflect.DeepEqual(got.Args, args[len(args)-len(got.Args):]) {
				t.Errorf("Args %q are not the verb's untouched arguments", got.Args)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"--bogus create x":              "flag provided but not defined: -bogus",
		"--root":                        "flag needs an argument: -root",
		"--log-format xml state x":      "invalid log-format: xml",
		"create --bundle":               "flag needs an argument: -bundle",
		"create --bundle /b":            "requires exactly 1 argument",
		"create --bundle /b a b":        "requires exactly 1 argument",
		"create --weird /b a":           "flag provided but not defined: -weird",
		"create ../../etc":              "invalid container id",
		"delete --force=maybe c":        "invalid boolean value",
		"--debug=maybe state x":         "invalid boolean value",
		"run --bundle /b id/with/slash": "invalid container id",
	}
	for argv, want := range tests {
		_, err := Parse(strings.Fields(argv))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) err = %v, want it to contain %q", argv, err, want)
		}
	}
}
