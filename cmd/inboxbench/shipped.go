package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// shippedConfig is the module's inboxmq.yaml, the configuration inboxmq
// ships with, with each of overrides (YAML documents, in order) merged
// into it: mappings key by key, anything else replaced. So a broker under
// test runs the shipped defaults except what a benchmark on one machine
// must change (addresses, data dir, secret, accounts, log level, the
// per-IP and per-user rate limits), and a default changed in inboxmq.yaml
// is measured without touching the harness.
func shippedConfig(overrides ...string) ([]byte, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "inboxmq.yaml")
	base, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shipped config: %w", err)
	}
	doc, err := yamlMapping(base)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, o := range overrides {
		if len(bytes.TrimSpace([]byte(o))) == 0 {
			continue
		}
		over, err := yamlMapping([]byte(o))
		if err != nil {
			return nil, fmt.Errorf("config override %q: %w", clip(o), err)
		}
		mergeYAML(doc, over)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return out.Bytes(), nil
}

// yamlMapping parses one YAML document whose top level is a mapping.
func yamlMapping(b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	return doc.Content[0], nil
}

// mergeYAML merges the mapping src into the mapping dst: a key in both
// whose values are both mappings is merged recursively; otherwise src's
// value replaces dst's, and keys only in src are appended (inboxmq
// rejects unknown keys, so a misspelt override fails at start-up).
func mergeYAML(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		key, val := src.Content[i], src.Content[i+1]
		j := mappingIndex(dst, key.Value)
		switch {
		case j < 0:
			dst.Content = append(dst.Content, key, val)
		case dst.Content[j+1].Kind == yaml.MappingNode && val.Kind == yaml.MappingNode:
			mergeYAML(dst.Content[j+1], val)
		default:
			dst.Content[j+1] = val
		}
	}
}

// mappingIndex is the index of key's node in mapping m, -1 if absent.
func mappingIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}
