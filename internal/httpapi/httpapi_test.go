package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name, remote, xff string
		want              string
	}{
		{"direct client", "203.0.113.5:4000", "", "203.0.113.5"},
		{"untrusted peer's header ignored", "203.0.113.5:4000", "198.51.100.1", "203.0.113.5"},
		{"trusted proxy", "10.1.2.3:4000", "198.51.100.1", "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:4000", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"spoofed left-most hop ignored", "10.1.2.3:4000", "1.2.3.4, 198.51.100.1", "198.51.100.1"},
		{"garbage hop stops the walk", "10.1.2.3:4000", "198.51.100.1, nonsense", "10.1.2.3"},
		{"only proxies", "10.1.2.3:4000", "10.4.4.4", "10.4.4.4"},
		{"ipv6 loopback proxy", "[::1]:4000", "2001:db8::7", "2001:db8::7"},
		{"ipv4-mapped peer", "[::ffff:203.0.113.5]:4000", "", "203.0.113.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := ClientIP(r, trusted).String(); got != tt.want {
				t.Errorf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	h := Bearer(func() string { return "secret-token" }, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	tests := []struct {
		header string
		want   int
	}{
		{"Bearer secret-token", http.StatusTeapot},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Basic c2VjcmV0LXRva2VuOg==", http.StatusUnauthorized},
		{"", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.header, w.Code, tt.want)
		}
		if w.Code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without WWW-Authenticate", tt.header)
		}
	}
	empty := Bearer(func() string { return "" }, http.NotFoundHandler())
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	empty.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("an empty configured token let a request through: %d", w.Code)
	}
}
