package criconfig

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// doc is a TOML document or table as go-toml decodes it into a generic map: tables are
// docs, arrays []any, integers int64, floats float64, and dates go-toml's local types.
type doc = map[string]any

// parseTOML decodes a config file. Errors name the file and, for syntax errors, the line
// and column.
func parseTOML(file string, b []byte) (doc, error) {
	m := doc{}
	if err := toml.Unmarshal(b, &m); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s: invalid TOML at line %d, column %d: %w", file, row, col, err)
		}
		return nil, fmt.Errorf("%s: invalid TOML: %w", file, err)
	}
	if m == nil {
		m = doc{}
	}
	return m, nil
}

// marshalTOML encodes a document the way containerd's own `config default` does (tables
// indented), and checks that decoding the result gives the document back, so a quirk of
// the encoder can never change a CRI config's meaning unnoticed.
func marshalTOML(m doc) ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode TOML: %w", err)
	}
	back := doc{}
	if err := toml.Unmarshal(buf.Bytes(), &back); err != nil {
		return nil, fmt.Errorf("encoded TOML does not decode: %w", err)
	}
	if !reflect.DeepEqual(back, m) {
		return nil, errors.New("encoded TOML decodes to a different document")
	}
	return buf.Bytes(), nil
}

// tableAt returns the table at keys, nil if some table on the way is missing. A key that
// holds something other than a table is an error naming the dotted key.
func tableAt(file string, m doc, keys ...string) (doc, error) {
	t := m
	for i, k := range keys {
		v, ok := t[k]
		if !ok {
			return nil, nil
		}
		next, ok := v.(doc)
		if !ok {
			return nil, fmt.Errorf("%s: %s is a %s, not a table", file, dotted(keys[:i+1]...), tomlType(v))
		}
		t = next
	}
	return t, nil
}

// ensureTable returns the table at keys, creating the missing ones.
func ensureTable(file string, m doc, keys ...string) (doc, error) {
	t := m
	for i, k := range keys {
		v, ok := t[k]
		if !ok {
			v = doc{}
			t[k] = v
		}
		next, ok := v.(doc)
		if !ok {
			return nil, fmt.Errorf("%s: %s is a %s, not a table", file, dotted(keys[:i+1]...), tomlType(v))
		}
		t = next
	}
	return t, nil
}

// deleteTable removes the table at keys and then every table on the way that is left
// empty, so that removing a table eci added leaves no empty husk behind. It reports
// whether there was a table to remove.
func deleteTable(file string, m doc, keys ...string) (bool, error) {
	parent, err := tableAt(file, m, keys[:len(keys)-1]...)
	if err != nil || parent == nil {
		return false, err
	}
	last := keys[len(keys)-1]
	if _, ok := parent[last]; !ok {
		return false, nil
	}
	delete(parent, last)
	for n := len(keys) - 1; n > 0; n-- {
		t, _ := tableAt(file, m, keys[:n]...)
		if len(t) > 0 {
			break
		}
		up, _ := tableAt(file, m, keys[:n-1]...)
		delete(up, keys[n-1])
	}
	return true, nil
}

// lookup returns the value at keys, if every table on the way exists.
func lookup(m doc, keys ...string) (any, bool) {
	t := m
	for _, k := range keys[:len(keys)-1] {
		next, ok := t[k].(doc)
		if !ok {
			return nil, false
		}
		t = next
	}
	v, ok := t[keys[len(keys)-1]]
	return v, ok
}

// deepCopy copies the maps and slices of a decoded document; the leaves are values.
func deepCopy(v any) any {
	switch v := v.(type) {
	case doc:
		c := make(doc, len(v))
		for k, e := range v {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = deepCopy(e)
		}
		return c
	default:
		return v
	}
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// dotted renders a key path the way it is written in TOML, for messages:
// plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.eci.
func dotted(keys ...string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		if bareKey.MatchString(k) {
			parts[i] = k
		} else {
			parts[i] = "'" + k + "'"
		}
	}
	return strings.Join(parts, ".")
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case doc:
		return "table"
	default:
		return "date or time"
	}
}
