// ssa: server-side apply as kube-apiserver does it, for the test API
// server. It runs sigs.k8s.io/structured-merge-diff (the library
// kube-apiserver's field manager is built on, packaged by Debian) over one
// request: the live object with its managedFields, what a manager applied
// or wrote, and prints the object that results, with its managedFields, or
// the conflicts.
//
// Request (JSON on stdin):
//
//	{"operation": "Apply" | "Update", "type": "<schema type name>",
//	 "apiVersion": "apps/v1", "manager": "...", "force": false,
//	 "live": {...} | null, "object": {...}}
//
// Answer (JSON on stdout): {"object": {...}} or {"conflicts": "..."};
// exit 1 with a message on stderr for anything else.
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"sigs.k8s.io/structured-merge-diff/v4/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v4/merge"
	"sigs.k8s.io/structured-merge-diff/v4/typed"
)

//go:embed schema.yaml
var schema string

type request struct {
	Operation  string                 `json:"operation"`
	Type       string                 `json:"type"`
	APIVersion string                 `json:"apiVersion"`
	Manager    string                 `json:"manager"`
	Force      bool                   `json:"force"`
	Live       map[string]interface{} `json:"live"`
	Object     map[string]interface{} `json:"object"`
}

// One entry of metadata.managedFields, as the API shows it.
type entry struct {
	Manager    string          `json:"manager"`
	Operation  string          `json:"operation"`
	APIVersion string          `json:"apiVersion"`
	FieldsType string          `json:"fieldsType"`
	FieldsV1   json.RawMessage `json:"fieldsV1"`
}

// The identity of a manager's entry: kube-apiserver keeps a manager's
// Apply and its Updates (one per apiVersion) apart.
type identity struct {
	Manager    string `json:"manager"`
	Operation  string `json:"operation"`
	APIVersion string `json:"apiVersion,omitempty"`
}

type sameVersion struct{}

func (sameVersion) Convert(v *typed.TypedValue, _ fieldpath.APIVersion) (*typed.TypedValue, error) {
	return v, nil
}
func (sameVersion) IsMissingVersionError(error) bool { return false }

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ssa:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var req request
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("reading the request: %v", err)
	}
	parser, err := typed.NewParser(typed.YAMLObject(schema))
	if err != nil {
		return fmt.Errorf("the schema: %v", err)
	}
	pt := parser.Type(req.Type)
	managers := fieldpath.ManagedFields{}
	live := req.Live
	if live == nil {
		live = map[string]interface{}{}
	}
	if meta, ok := live["metadata"].(map[string]interface{}); ok {
		if err := decodeManaged(meta["managedFields"], managers); err != nil {
			return err
		}
		delete(meta, "managedFields")
	}
	if meta, ok := req.Object["metadata"].(map[string]interface{}); ok {
		delete(meta, "managedFields")
	}
	defaults(live)
	defaults(req.Object)
	liveTV, err := pt.FromUnstructured(live)
	if err != nil {
		return fmt.Errorf("the live object: %v", err)
	}
	objTV, err := pt.FromUnstructured(req.Object)
	if err != nil {
		return fmt.Errorf("the request's object: %v", err)
	}
	updater := merge.Updater{Converter: sameVersion{}}
	version := fieldpath.APIVersion(req.APIVersion)
	var result *typed.TypedValue
	switch req.Operation {
	case "Apply":
		id := key(identity{Manager: req.Manager, Operation: "Apply"})
		result, managers, err = updater.Apply(liveTV, objTV, version, managers, id, req.Force)
	case "Update":
		id := key(identity{Manager: req.Manager, Operation: "Update", APIVersion: req.APIVersion})
		result, managers, err = updater.Update(liveTV, objTV, version, managers, id)
	default:
		return fmt.Errorf("unknown operation %q", req.Operation)
	}
	if conflicts, ok := err.(merge.Conflicts); ok {
		return json.NewEncoder(out).Encode(map[string]string{"conflicts": describe(conflicts)})
	}
	if err != nil {
		return err
	}
	if result == nil {
		// Nothing changed: the live object stands.
		result = liveTV
	}
	object, ok := result.AsValue().Unstructured().(map[string]interface{})
	if !ok {
		return fmt.Errorf("the result is not an object")
	}
	entries, err := encodeManaged(managers)
	if err != nil {
		return err
	}
	meta, _ := object["metadata"].(map[string]interface{})
	if meta == nil {
		meta = map[string]interface{}{}
		object["metadata"] = meta
	}
	meta["managedFields"] = entries
	return json.NewEncoder(out).Encode(map[string]interface{}{"object": object})
}

// describe says what conflicts as kube-apiserver's 409 does.
func describe(conflicts merge.Conflicts) string {
	var lines []string
	for _, c := range conflicts {
		var id identity
		_ = json.Unmarshal([]byte(c.Manager), &id)
		who := fmt.Sprintf("conflict with %q", id.Manager)
		if id.APIVersion != "" {
			who += " using " + id.APIVersion
		}
		lines = append(lines, fmt.Sprintf("%s: %s", who, c.Path.String()))
	}
	sort.Strings(lines)
	noun := "conflict"
	if len(lines) > 1 {
		noun = "conflicts"
	}
	text := fmt.Sprintf("Apply failed with %d %s: ", len(lines), noun)
	for i, l := range lines {
		if i > 0 {
			text += "\n"
		}
		text += l
	}
	return text
}

func key(id identity) string {
	b, _ := json.Marshal(id)
	return string(b)
}

func decodeManaged(raw interface{}, managers fieldpath.ManagedFields) error {
	if raw == nil {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	var entries []entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("managedFields: %v", err)
	}
	for _, e := range entries {
		set := &fieldpath.Set{}
		if err := set.FromJSON(bytes.NewReader(e.FieldsV1)); err != nil {
			return fmt.Errorf("managedFields of %s: %v", e.Manager, err)
		}
		id := identity{Manager: e.Manager, Operation: e.Operation}
		if e.Operation == "Update" {
			id.APIVersion = e.APIVersion
		}
		managers[key(id)] = fieldpath.NewVersionedSet(set, fieldpath.APIVersion(e.APIVersion), e.Operation == "Apply")
	}
	return nil
}

func encodeManaged(managers fieldpath.ManagedFields) ([]entry, error) {
	var entries []entry
	for k, vs := range managers {
		if vs.Set().Empty() {
			continue
		}
		var id identity
		if err := json.Unmarshal([]byte(k), &id); err != nil {
			return nil, err
		}
		fields, err := vs.Set().ToJSON()
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{
			Manager:    id.Manager,
			Operation:  id.Operation,
			APIVersion: string(vs.APIVersion()),
			FieldsType: "FieldsV1",
			FieldsV1:   fields,
		})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Manager != entries[j].Manager {
			return entries[i].Manager < entries[j].Manager
		}
		return entries[i].Operation < entries[j].Operation
	})
	return entries, nil
}

// defaults fills what kube-apiserver's defaulting fills before the field
// manager sees an object and that is a key of an associative list: a
// container port's protocol.
func defaults(object map[string]interface{}) {
	spec, _ := object["spec"].(map[string]interface{})
	template, _ := spec["template"].(map[string]interface{})
	podSpec, _ := template["spec"].(map[string]interface{})
	for _, list := range []string{"containers", "initContainers"} {
		containers, _ := podSpec[list].([]interface{})
		for _, c := range containers {
			container, _ := c.(map[string]interface{})
			ports, _ := container["ports"].([]interface{})
			for _, p := range ports {
				if port, ok := p.(map[string]interface{}); ok {
					if _, set := port["protocol"]; !set {
						port["protocol"] = "TCP"
					}
				}
			}
		}
	}
}
