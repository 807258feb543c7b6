package config_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// firstField returns the path and message of the first field of an error
// body.
func firstField(body map[string]any) (string, string) {
	e, _ := body["error"].(map[string]any)
	fields, _ := e["fields"].([]any)
	if len(fields) == 0 {
		return "", ""
	}
	f, _ := fields[0].(map[string]any)
	p, _ := f["path"].(string)
	m, _ := f["message"].(string)
	return p, m
}

func TestConfigAPIFunctions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newAPI(t, db)

		// Create: version 1, deployed and live at once.
		st, fn := f.call(t, "POST", "/api/v1/functions", `{"id":"redact","name":"Redact","kind":"insert","code":`+jsonString(insertCode)+
			`,"settings":{"key":"s3"},"allowed_hosts":["api.example.com"],"timeout":"2s"}`)
		if st != 201 || fn["version"] != 1.0 || fn["deployed_version"] != 1.0 || fn["origin"] != "api" || fn["timeout"] != "2s" ||
			fn["settings"].(map[string]any)["key"] != "s3" || fn["allowed_hosts"].([]any)[0] != "api.example.com" {
			t.Fatalf("create: %d %v", st, fn)
		}
		if p, ok := f.mgr.Current().Function("redact"); !ok || p.Version() != 1 {
			t.Fatal("new function not live")
		}
		// Created undeployed: saved, not live.
		if st, fn := f.call(t, "POST", "/api/v1/functions", `{"id":"send","kind":"destination","deploy":false,"code":`+jsonString(destCode)+`}`); st != 201 ||
			fn["deployed_version"] != 0.0 || fn["settings"] == nil || fn["allowed_hosts"] == nil {
			t.Fatalf("create undeployed: %d %v", st, fn)
		}
		if _, ok := f.mgr.Current().Function("send"); ok {
			t.Error("an undeployed function is live")
		}

		// Bad input: each answer names its field, the way the other
		// objects' do.
		for _, tc := range []struct {
			method, path, body string
			status             int
			code, field, msg   string
		}{
			{"POST", "/api/v1/functions", `{"id":"f","kind":"insert","code":"async function onTrack(e) {"}`, 400, "validation_error",
				"code", "the code does not compile: SyntaxError: f: Line 1:28 Unexpected end of input"},
			{"POST", "/api/v1/functions", `{"id":"f","kind":"source","code":` + jsonString(insertCode) + `}`, 400, "validation_error",
				"code", "a source function must define onRequest(request, settings)"},
			{"POST", "/api/v1/functions", `{"id":"f","kind":"transform","code":"x"}`, 400, "validation_error", "kind", `"transform" is not a kind of function`},
			{"POST", "/api/v1/functions", `{"id":"f","kind":"insert","code":` + jsonString(insertCode) + `,"timeout":"2m"}`, 400, "validation_error",
				"timeout", "2m is out of range: up to 1m"},
			{"POST", "/api/v1/functions", `{"id":"f","kind":"insert","code":` + jsonString(insertCode) + `,"timeout":"soon"}`, 400, "validation_error",
				"timeout", `"soon" is not a duration`},
			{"POST", "/api/v1/functions", `{"id":"f","kind":"insert","code":` + jsonString(insertCode) + `,"allowed_hosts":["http://x/"]}`, 400, "validation_error",
				"allowed_hosts[0]", `allowed host "http://x/" is not a host`},
			{"POST", "/api/v1/functions", `{"id":"redact","kind":"insert","code":` + jsonString(insertCode) + `}`, 409, "conflict", "", ""},
			{"POST", "/api/v1/functions", `{"id":"f","kind":"insert","cdoe":"x"}`, 400, "invalid_json", "", ""},
			{"GET", "/api/v1/functions/nope", ``, 404, "not_found", "", ""},
			{"PATCH", "/api/v1/functions/nope", `{"code":"x"}`, 404, "not_found", "", ""},
			{"PATCH", "/api/v1/functions/redact", `{"id":"other"}`, 400, "validation_error", "", ""},
			{"PATCH", "/api/v1/functions/redact", `{"kind":"source"}`, 400, "validation_error", "kind", "cannot be changed"},
			{"PATCH", "/api/v1/functions/redact", `{"code":"var x = 1"}`, 400, "validation_error", "code", "insert function must define at least one of"},
			{"POST", "/api/v1/functions/redact/deploy", `{"version":9}`, 404, "not_found", "", ""},
			{"POST", "/api/v1/functions/redact/deploy", `{"version":-1}`, 400, "validation_error", "version", "is not a version"},
			{"POST", "/api/v1/functions/redact/deploy", `{"version":"1"}`, 400, "invalid_json", "", ""},
			{"GET", "/api/v1/functions/redact/versions/0", ``, 400, "validation_error", "", ""},
			{"GET", "/api/v1/functions/redact/versions/x", ``, 400, "validation_error", "", ""},
			{"GET", "/api/v1/functions/redact/versions/9", ``, 404, "not_found", "", ""},
			{"GET", "/api/v1/functions/nope/versions", ``, 404, "not_found", "", ""},
			{"DELETE", "/api/v1/functions/nope", ``, 404, "not_found", "", ""},
			// References from sources and destinations.
			{"POST", "/api/v1/sources", `{"id":"s","function":"nope"}`, 400, "validation_error", "function", `function "nope" does not exist`},
			{"POST", "/api/v1/sources", `{"id":"s","function":"redact"}`, 400, "validation_error", "function", `function "redact" is an insert function, not a source function`},
			{"POST", "/api/v1/destinations", `{"id":"d","type":"function","settings":{"function":"redact"}}`, 400, "validation_error",
				"settings.function", `function "redact" is an insert function, not a destination function`},
			{"POST", "/api/v1/destinations", `{"id":"d","type":"webhook","insert_function":"send"}`, 400, "validation_error",
				"insert_function", `function "send" is a destination function, not an insert function`},
		} {
			st, b := f.call(t, tc.method, tc.path, tc.body)
			field, msg := firstField(b)
			if st != tc.status || code(b) != tc.code || field != tc.field || !strings.Contains(msg, tc.msg) {
				t.Errorf("%s %s %s: %d %v, want %d %s at %q: %q", tc.method, tc.path, tc.body, st, b, tc.status, tc.code, tc.field, tc.msg)
			}
		}

		// Patch: a new version, not deployed unless asked; the rest kept.
		code2 := strings.Replace(insertCode, "true", "false", 1)
		st, fn = f.call(t, "PATCH", "/api/v1/functions/redact", `{"code":`+jsonString(code2)+`}`)
		if st != 200 || fn["version"] != 2.0 || fn["deployed_version"] != 1.0 || fn["code"] != code2 || fn["timeout"] != "2s" || fn["name"] != "Redact" {
			t.Fatalf("patch: %d %v", st, fn)
		}
		if p, _ := f.mgr.Current().Function("redact"); p.Version() != 1 {
			t.Errorf("live version %d after a patch without deploy, want 1", p.Version())
		}
		st, fn = f.call(t, "PATCH", "/api/v1/functions/redact", `{"timeout":null,"deploy":true}`)
		if st != 200 || fn["version"] != 3.0 || fn["deployed_version"] != 3.0 || fn["timeout"] != nil {
			t.Fatalf("patch with deploy: %d %v", st, fn)
		}
		if p, _ := f.mgr.Current().Function("redact"); p.Version() != 3 {
			t.Errorf("live version %d after a patch with deploy, want 3", p.Version())
		}

		// Deploy: rollback to 1, then the latest without a body.
		if st, fn = f.call(t, "POST", "/api/v1/functions/redact/deploy", `{"version":1}`); st != 200 || fn["deployed_version"] != 1.0 || fn["version"] != 3.0 {
			t.Fatalf("rollback: %d %v", st, fn)
		}
		if p, _ := f.mgr.Current().Function("redact"); p.Version() != 1 {
			t.Errorf("live version %d after the rollback, want 1", p.Version())
		}
		if st, fn = f.call(t, "POST", "/api/v1/functions/redact/deploy", ""); st != 200 || fn["deployed_version"] != 3.0 {
			t.Fatalf("deploy latest: %d %v", st, fn)
		}

		// Versions: newest first, without code; one with its code.
		st, b := f.call(t, "GET", "/api/v1/functions/redact/versions", "")
		vs, _ := b["versions"].([]any)
		if st != 200 || len(vs) != 3 {
			t.Fatalf("versions: %d %v", st, b)
		}
		for i, v := range vs {
			v := v.(map[string]any)
			if v["version"] != float64(3-i) || v["code"] != nil || v["deployed"] != (i == 0) || v["function"] != "redact" || v["created_at"] == nil {
				t.Errorf("versions[%d] = %v", i, v)
			}
		}
		if st, v := f.call(t, "GET", "/api/v1/functions/redact/versions/1", ""); st != 200 || v["code"] != insertCode || v["timeout"] != "2s" || v["deployed"] != false {
			t.Errorf("version 1: %d %v", st, v)
		}

		// List and get show the latest content.
		st, b = f.call(t, "GET", "/api/v1/functions", "")
		list, _ := b["functions"].([]any)
		if st != 200 || len(list) != 2 || list[0].(map[string]any)["id"] != "redact" || list[1].(map[string]any)["id"] != "send" {
			t.Fatalf("list: %d %v", st, b)
		}
		if st, fn = f.call(t, "GET", "/api/v1/functions/redact", ""); st != 200 || fn["code"] != code2 {
			t.Errorf("get: %d %v", st, fn)
		}

		// In use: delete refused, naming the users; then allowed.
		if st, b := f.call(t, "POST", "/api/v1/sources", `{"id":"web","insert_function":"redact"}`); st != 201 || b["insert_function"] != "redact" {
			t.Fatalf("source with an insert function: %d %v", st, b)
		}
		if f.mgr.Current().SourceRules("web").InsertFunction == nil {
			t.Error("the source's insert function is not live")
		}
		st, b = f.call(t, "DELETE", "/api/v1/functions/redact", "")
		if e, _ := b["error"].(map[string]any); st != 409 || code(b) != "conflict" || !strings.Contains(e["message"].(string), `sources "web"`) {
			t.Fatalf("delete of a function in use: %d %v", st, b)
		}
		if st, b := f.call(t, "PATCH", "/api/v1/sources/web", `{"insert_function":""}`); st != 200 || b["insert_function"] != nil {
			t.Fatalf("dropping the insert function: %d %v", st, b)
		}
		if st, _ := f.call(t, "DELETE", "/api/v1/functions/redact", ""); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		if _, ok := f.mgr.Current().Function("redact"); ok {
			t.Error("deleted function still live")
		}
		if st, _ := f.call(t, "GET", "/api/v1/functions/redact/versions/1", ""); st != 404 {
			t.Errorf("a deleted function's version: %d", st)
		}
		if st, _ := f.call(t, "GET", "/api/v1/functions", "", ""); st != 401 {
			t.Errorf("no token: %d", st)
		}
	})
}
