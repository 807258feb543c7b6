package event

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"reflect"
	"testing"
)

func TestDecodeEncodeKeepsNumbersAndCharacters(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "big integer", in: `{"n":9223372036854775808,"f":1.50}`, want: `{"f":1.50,"n":9223372036854775808}`},
		{name: "html characters", in: `{"s":"<a href='x'>&</a>"}`, want: `{"s":"<a href='x'>&</a>"}`},
		{name: "nested", in: `{"b":{"y":[1,"2",null]},"a":true}`, want: `{"a":true,"b":{"y":[1,"2",null]}}`},
		{name: "escapes", in: `{"s":"a\"b\\c\n\u0001\u2028é\u00e9\ud83d\ude00"}`, want: `{"s":"a\"b\\c\n\u0001\u2028éé😀"}`},
		{name: "escaped key", in: `{"a\u0062":1}`, want: `{"ab":1}`},
		{name: "space", in: " { \"a\" : [ 1 , { } , [ ] ] } ", want: `{"a":[1,{},[]]}`},
		{name: "empty", in: `{}`, want: `{}`},
		{name: "not an object", in: `[1]`, wantErr: true},
		{name: "null", in: `null`, wantErr: true},
		{name: "trailing data", in: `{} {}`, wantErr: true},
		{name: "invalid", in: `{"a":}`, wantErr: true},
		{name: "bad number", in: `{"a":01}`, wantErr: true},
		{name: "bad utf8", in: "{\"a\":\"\xff\"}", wantErr: true},
		{name: "unterminated", in: `{"a":[1,2`, wantErr: true},
		{name: "bad literal", in: `{"a":tru}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Decode([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Decode(%s) succeeded", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := Encode([]byte("prefix:"), doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out); got != "prefix:"+tt.want {
				t.Fatalf("got %s, want prefix:%s", got, tt.want)
			}
		})
	}
}

func TestEncodeGoValues(t *testing.T) {
	tests := []struct {
		in      any
		want    string
		wantErr bool
	}{
		{in: 1.5, want: `1.5`},
		{in: 1e21, want: `1e+21`},
		{in: 1e-7, want: `1e-7`},
		{in: float64(100), want: `100`},
		{in: 42, want: `42`},
		{in: int64(-7), want: `-7`},
		{in: map[string]string{"a": "b"}, want: `{"a":"b"}`},
		{in: json.Number("x1"), wantErr: true},
		{in: math.NaN(), wantErr: true},
		{in: "bad \xff utf8", want: `"bad \ufffd utf8"`},
	}
	for _, tt := range tests {
		out, err := Encode(nil, Doc{"v": tt.in})
		if tt.wantErr {
			if err == nil {
				t.Errorf("Encode(%#v) = %s, want an error", tt.in, out)
			}
			continue
		}
		if err != nil || string(out) != `{"v":`+tt.want+`}` {
			t.Errorf("Encode(%#v) = %s, %v; want {\"v\":%s}", tt.in, out, err, tt.want)
		}
	}
}

// stdDecode and stdEncode are encoding/json's view, which Decode and Encode
// must agree with.
func stdDecode(b []byte) (Doc, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var doc Doc
	err := d.Decode(&doc)
	return doc, err
}

func stdEncode(doc Doc) []byte {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	_ = e.Encode(doc)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"testdata/single.json", "testdata/batch-go.json", "testdata/batch-next.json"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"s":"\u2028\u0000<>&","n":-0.5e-3,"l":[true,false,null,{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// On any input, selective decoding must not panic.
		onlyType := func(k string) bool { return k == "type" }
		sel, _, selErr := DecodeSelected(b, onlyType)
		doc, err := Decode(b)
		if err != nil {
			return
		}
		if selErr != nil || !reflect.DeepEqual(sel["type"], doc["type"]) {
			t.Fatalf("DecodeSelected(%q) = %v, %v; Decode gives type %v", b, sel, selErr, doc["type"])
		}
		want, err := stdDecode(b)
		if err != nil {
			t.Fatalf("Decode accepted %q, encoding/json says %v", b, err)
		}
		if !reflect.DeepEqual(doc, want) {
			t.Fatalf("Decode(%q) = %#v, encoding/json %#v", b, doc, want)
		}
		out, err := Encode(nil, doc)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if std := stdEncode(want); !bytes.Equal(out, std) {
			t.Fatalf("Encode = %s, encoding/json %s", out, std)
		}
		// Spliced, with every member copied or every member encoded, the
		// event reads back the same.
		for _, all := range []bool{false, true} {
			d2, m, err := DecodeMembers(b)
			if err != nil {
				t.Fatalf("DecodeMembers: %v", err)
			}
			spliced, err := EncodeSplice(nil, d2, m, func(string) bool { return all })
			if err != nil {
				t.Fatalf("EncodeSplice: %v", err)
			}
			back, err := Decode(spliced)
			if err != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("EncodeSplice(changed=%v) = %s: reads back %#v, %v", all, spliced, back, err)
			}
		}
	})
}

func BenchmarkDecodeEncode(b *testing.B) {
	rec := []byte(`{"type":"track","event":"Order Completed","messageId":"bench-00000001","userId":"user-1","anonymousId":"anon-1","properties":{"order_id":"o-1","total":27.50,"revenue":25.00,"currency":"USD","coupon":"SPRING","discount":2.5,"shipping":3,"tax":2.0,"affiliation":"web","products":[{"sku":"45790-32","name":"Monopoly","price":19.99,"quantity":1}]},"context":{"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout"},"ip":"203.0.113.9","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"},"timestamp":"2026-12-01T10:00:00.000Z","receivedAt":"2026-12-01T10:00:00.120Z","sentAt":"2026-12-01T10:00:00.100Z","originalTimestamp":"2026-12-01T09:59:59.980Z"}`)
	b.Run("conflux", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		var out []byte
		for b.Loop() {
			doc, err := Decode(rec)
			if err != nil {
				b.Fatal(err)
			}
			out, _ = Encode(out[:0], doc)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			doc, _ := stdDecode(rec)
			_ = stdEncode(doc)
		}
	})
}

func TestEncodeSpliceKeepsUnchangedMembers(t *testing.T) {
	rec := `{"type":"track", "event":"A","properties":{"b":1,"a":2},"context":{"z":  "kept as sent","ip":"1.2.3.4"},"n":1.50}`
	tests := []struct {
		name    string
		change  func(Doc)
		changed []string
		want    string
	}{
		// Space between top-level members is not kept; inside them it is.
		{name: "nothing changed", change: func(Doc) {}, want: `{"type":"track","event":"A","properties":{"b":1,"a":2},"context":{"z":  "kept as sent","ip":"1.2.3.4"},"n":1.50}`},
		{name: "one member changed", changed: []string{"properties"},
			change: func(d Doc) { d["properties"].(map[string]any)["c"] = "new" },
			want:   `{"type":"track","event":"A","properties":{"a":2,"b":1,"c":"new"},"context":{"z":  "kept as sent","ip":"1.2.3.4"},"n":1.50}`},
		{name: "deleted and added", changed: []string{"event"},
			change: func(d Doc) { delete(d, "event"); d["zz"] = true; d["aa"] = json.Number("7") },
			want:   `{"type":"track","properties":{"b":1,"a":2},"context":{"z":  "kept as sent","ip":"1.2.3.4"},"n":1.50,"aa":7,"zz":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, m, err := DecodeMembers([]byte(rec))
			if err != nil {
				t.Fatal(err)
			}
			tt.change(doc)
			out, err := EncodeSplice(nil, doc, m, func(k string) bool {
				for _, c := range tt.changed {
					if c == k {
						return true
					}
				}
				return false
			})
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Fatalf("got  %s\nwant %s", out, tt.want)
			}
			if !json.Valid(out) {
				t.Fatalf("not valid JSON: %s", out)
			}
		})
	}
}

func TestEncodeSpliceWithRepeatedKeyKeepsAddedField(t *testing.T) {
	doc, m, err := DecodeMembers([]byte(`{"type":"identify","x":1,"x":2,"messageId":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	doc["traits"] = map[string]any{"a": true}
	out, err := EncodeSplice(nil, doc, m, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(out)
	if err != nil || !reflect.DeepEqual(back, doc) {
		t.Fatalf("EncodeSplice = %s: reads back %v, %v; want %v", out, back, err, doc)
	}
}

func TestDecodeSelectedLeavesTheRestAsItWas(t *testing.T) {
	rec := `{"type":"track","context":{"ip": "1.2.3.4"},"properties":{"a":1},"messageId":"m"}`
	doc, m, err := DecodeSelected([]byte(rec), func(k string) bool { return k == "type" || k == "properties" })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["context"]; ok || len(doc) != 2 {
		t.Fatalf("decoded %v, want only type and properties", doc)
	}
	if raw, ok := m.Undecoded("context"); !ok || string(raw) != `{"ip": "1.2.3.4"}` {
		t.Fatalf("Undecoded(context) = %s, %v", raw, ok)
	}
	if _, ok := m.Undecoded("type"); ok {
		t.Fatal("type reported undecoded")
	}
	doc["properties"].(map[string]any)["b"] = true
	out, err := EncodeSplice(nil, doc, m, func(k string) bool { return k == "properties" })
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"track","context":{"ip": "1.2.3.4"},"properties":{"a":1,"b":true},"messageId":"m"}`; string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	// A member the Doc gained under an undecoded key replaces it.
	doc["context"] = map[string]any{"new": true}
	out, _ = EncodeSplice(nil, doc, m, func(string) bool { return false })
	if want := `{"type":"track","context":{"new":true},"properties":{"a":1},"messageId":"m"}`; string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	// Undecoded members are skipped, not validated; truncated input still
	// fails and never reads out of bounds.
	for _, bad := range []string{`{"type":"t","context":`, `{"type":"t","context":{"a":"`, `{"type":"t","context":[1,`} {
		if _, _, err := DecodeSelected([]byte(bad), func(k string) bool { return k == "type" }); err == nil {
			t.Errorf("DecodeSelected(%s) succeeded", bad)
		}
	}
}
