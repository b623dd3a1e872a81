package config

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"
)

// redacted stands in for a secret in printed configs.
const redacted = "<redacted>"

// YAML renders c with two-space indents, the way SPEC.md writes it;
// durations come out as "30s". The admin token is a secret (a check's
// output ends up in CI logs and bug reports): when set, it is printed as
// <redacted>. notes adds a line comment to keys, by path ("engine.loops"),
// for what only the running process knows, such as what 0 resolves to.
func (c *Config) YAML(notes map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, err
	}
	if tok := nodeAt(&doc, "admin.token"); tok != nil && tok.Value != "" {
		tok.Value, tok.Style = redacted, 0
		tok.LineComment = "set, not printed"
	}
	dropOtherProtocolKeys(mappingValue(&doc, "services"))
	for path, note := range notes {
		if n := nodeAt(&doc, path); n != nil {
			n.LineComment = note
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dropOtherProtocolKeys removes from each service the keys of the other
// protocol, which it does not have (a UDP service's timeouts would print
// as 0s).
func dropOtherProtocolKeys(services *yaml.Node) {
	if services == nil || services.Kind != yaml.SequenceNode {
		return
	}
	for _, svc := range services.Content {
		protocol := ProtocolTCP
		if p := mappingValue(svc, "protocol"); p != nil && p.Value == ProtocolUDP {
			protocol = ProtocolUDP
		}
		kept := svc.Content[:0]
		for i := 0; i+1 < len(svc.Content); i += 2 {
			if want, ok := protocolKeys[svc.Content[i].Value]; ok && want != protocol {
				continue
			}
			kept = append(kept, svc.Content[i], svc.Content[i+1])
		}
		svc.Content = kept
	}
}

// nodeAt returns the value node at a dotted key path of a YAML document,
// or nil.
func nodeAt(n *yaml.Node, path string) *yaml.Node {
	for key := range strings.SplitSeq(path, ".") {
		n = mappingValue(n, key)
	}
	return n
}

// mappingValue returns the value node of key in a YAML mapping node, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
