package collect

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/confluxcdp/conflux/internal/httpapi"
)

// serveSettings answers analytics-next's (and the mobile SDKs') settings
// request with the smallest document that makes them load and send every
// event to this server (spec §2.2): only the "Segment.io" integration, so no
// device-mode destination code is fetched, and remote telemetry off.
func (a *API) serveSettings(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("writeKey")
	ws := a.workspace()
	if _, ok := ws.SourceByWriteKey(key, a.opts.Now()); !ok {
		httpapi.WriteError(w, http.StatusNotFound, codeNotFound, "no source has this write key")
		return
	}
	protocol, host := publicAddress(r, ws.PublicURL, httpapi.IsTrustedPeer(r, ws.TrustedProxies))
	w.Header().Set("Cache-Control", "public, max-age=60")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"integrations": map[string]any{
			"Segment.io": map[string]any{
				"apiKey":                key,
				"apiHost":               host + "/v1",
				"protocol":              protocol,
				"unbundledIntegrations": []string{},
				"addBundledMetadata":    true,
				"maybeBundledConfigIds": map[string]any{},
			},
		},
		"plan":              map[string]any{"track": map[string]any{"__default": map[string]any{"enabled": true, "integrations": map[string]any{}}}},
		"enabledMiddleware": map[string]any{},
		"metrics":           map[string]any{"sampleRate": 0},
		"remotePlugins":     []any{},
	})
}

// publicAddress returns the scheme and host:port[/path] that clients use to
// reach this server: from the configured public URL, else from the request
// (believing X-Forwarded-Proto/Host only from a trusted proxy).
func publicAddress(r *http.Request, publicURL string, trustedPeer bool) (protocol, host string) {
	if publicURL != "" {
		if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
			return u.Scheme, u.Host + strings.TrimSuffix(u.Path, "/")
		}
	}
	protocol, host = "http", r.Host
	if r.TLS != nil {
		protocol = "https"
	}
	if trustedPeer {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			protocol = p
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "" {
			host = h
		}
	}
	return protocol, host
}
