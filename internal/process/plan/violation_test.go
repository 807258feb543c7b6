package plan

import (
	"regexp"
	"testing"
	"time"
)

func TestViolationEvent(t *testing.T) {
	c := mustCompile(t, shopPlan())
	src := SourceInfo{ID: "src_1", Name: "Acme Store", Slug: "acme_store"}
	now := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("X", 3600))
	v := Violation{Type: Required, Field: "properties.order_id", Description: "properties.order_id is required"}

	tests := []struct {
		name string
		orig string
		want string
	}{
		{
			name: "track",
			orig: `{"type":"track","event":"Order Completed","messageId":"node-1","sentAt":"2026-03-04T04:00:00.000Z",
				"timestamp":"2026-03-04T03:59:59.000Z","receivedAt":"2026-03-04T04:00:01.000Z",
				"context":{"app":{"name":"Shop","version":"2.1"},"library":{"name":"analytics-node","version":"2.1.0"},"ip":"1.2.3.4"},
				"properties":{"total":1}}`,
			want: `{"type":"track","event":"Violation Generated","userId":"schema-violations","messageId":"MSGID",
				"context":{"app":{"name":"Shop","version":"2.1"},"library":{"name":"analytics-node","version":"2.1.0"}},
				"integrations":{},
				"properties":{"appVersion":"2.1","eventMessageID":"node-1","eventName":"Order Completed",
					"eventSentAt":"2026-03-04T04:00:00.000Z","eventTimestamp":"2026-03-04T03:59:59.000Z","eventType":"track",
					"sourceID":"src_1","sourceName":"Acme Store","sourceSlug":"acme_store",
					"trackingPlanID":"tp_shop","trackingPlanName":"Shop",
					"violationDescription":"properties.order_id is required","violationField":"properties.order_id","violationType":"Required"},
				"timestamp":"2026-03-04T04:06:07.890Z","receivedAt":"2026-03-04T04:06:07.890Z","forwardedFromProject":"src_1"}`,
		},
		{
			name: "page without app or sentAt",
			orig: `{"type":"page","name":"Home","messageId":"m-2","timestamp":"2026-03-04T03:59:59.000Z","receivedAt":"2026-03-04T04:00:01.000Z",
				"context":{"library":{"name":"analytics.js"}}}`,
			want: `{"type":"track","event":"Violation Generated","userId":"schema-violations","messageId":"MSGID",
				"context":{"app":null,"library":{"name":"analytics.js"}},
				"integrations":{},
				"properties":{"appVersion":"","eventMessageID":"m-2","eventName":"Home",
					"eventSentAt":"","eventTimestamp":"2026-03-04T03:59:59.000Z","eventType":"page",
					"sourceID":"src_1","sourceName":"Acme Store","sourceSlug":"acme_store",
					"trackingPlanID":"tp_shop","trackingPlanName":"Shop",
					"violationDescription":"properties.order_id is required","violationField":"properties.order_id","violationType":"Required"},
				"timestamp":"2026-03-04T04:06:07.890Z","receivedAt":"2026-03-04T04:06:07.890Z","forwardedFromProject":"src_1"}`,
		},
		{
			name: "identify with a numeric app version",
			orig: `{"type":"identify","userId":"u","messageId":"m-3","timestamp":"t","receivedAt":"r","context":{"app":{"version":3}}}`,
			want: `{"type":"track","event":"Violation Generated","userId":"schema-violations","messageId":"MSGID",
				"context":{"app":{"version":3},"library":null},
				"integrations":{},
				"properties":{"appVersion":"3","eventMessageID":"m-3","eventName":"",
					"eventSentAt":"","eventTimestamp":"t","eventType":"identify",
					"sourceID":"src_1","sourceName":"Acme Store","sourceSlug":"acme_store",
					"trackingPlanID":"tp_shop","trackingPlanName":"Shop",
					"violationDescription":"properties.order_id is required","violationField":"properties.order_id","violationType":"Required"},
				"timestamp":"2026-03-04T04:06:07.890Z","receivedAt":"2026-03-04T04:06:07.890Z","forwardedFromProject":"src_1"}`,
		},
	}
	msgID := regexp.MustCompile(`^sch-[0-9a-f]{32}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := decode(t, tt.orig)
			got := c.ViolationEvent(orig, v, src, now)
			id, _ := got["messageId"].(string)
			if !msgID.MatchString(id) {
				t.Errorf("messageId %q", id)
			}
			got["messageId"] = "MSGID"
			if g, w := encode(t, got), encode(t, decode(t, tt.want)); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
			// The violation event does not share maps with the original.
			if app, ok := got["context"].(map[string]any)["app"].(map[string]any); ok {
				app["version"] = "changed"
				if orig["context"].(map[string]any)["app"].(map[string]any)["version"] == "changed" {
					t.Error("context.app shared with the original")
				}
			}
		})
	}
}

func TestViolationMessageID(t *testing.T) {
	c := mustCompile(t, shopPlan())
	other := mustCompile(t, Plan{ID: "tp_other"})
	orig := decode(t, ev("track", `"event":"Order Completed"`))
	origB := decode(t, `{"type":"track","messageId":"m-2","event":"Order Completed"}`)
	src := SourceInfo{ID: "src_1"}
	v := Violation{Type: Required, Field: "properties.order_id", Description: "properties.order_id is required"}
	t1 := time.Unix(1, 0)
	t2 := time.Unix(2, 0)

	id := func(c *Compiled, orig map[string]any, v Violation, src SourceInfo, now time.Time) string {
		return c.ViolationEvent(orig, v, src, now)["messageId"].(string)
	}
	base := id(c, orig, v, src, t1)
	if got := id(c, decode(t, ev("track", `"event":"Order Completed"`)), v, src, t2); got != base {
		t.Errorf("same event and violation, later: %s, want %s", got, base)
	}
	differ := map[string]string{
		"other message":     id(c, origB, v, src, t1),
		"other source":      id(c, orig, v, SourceInfo{ID: "src_2"}, t1),
		"other plan":        id(other, orig, v, src, t1),
		"other type":        id(c, orig, Violation{Type: TypeMismatch, Field: v.Field, Description: v.Description}, src, t1),
		"other field":       id(c, orig, Violation{Type: v.Type, Field: "properties.total", Description: v.Description}, src, t1),
		"other description": id(c, orig, Violation{Type: v.Type, Field: v.Field, Description: "x"}, src, t1),
	}
	seen := map[string]string{base: "base"}
	for name, got := range differ {
		if prev, ok := seen[got]; ok {
			t.Errorf("%s: messageId %s same as %s", name, got, prev)
		}
		seen[got] = name
	}
}
