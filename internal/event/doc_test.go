package event

import "testing"

func TestDecodeEncodeKeepsNumbersAndCharacters(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "big integer", in: `{"n":9223372036854775808,"f":1.50}`, want: `{"f":1.50,"n":9223372036854775808}`},
		{name: "html characters", in: `{"s":"<a href='x'>&</a>"}`, want: `{"s":"<a href='x'>&</a>"}`},
		{name: "nested", in: `{"b":{"y":[1,"2",null]},"a":true}`, want: `{"a":true,"b":{"y":[1,"2",null]}}`},
		{name: "not an object", in: `[1]`, wantErr: true},
		{name: "null", in: `null`, wantErr: true},
		{name: "trailing data", in: `{} {}`, wantErr: true},
		{name: "invalid", in: `{"a":}`, wantErr: true},
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
