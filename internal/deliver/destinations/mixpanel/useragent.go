package mixpanel

import "strings"

// browsers are recognized from a user agent in this order: a browser
// built on another names that one too (Edge and Opera say "Chrome",
// Chrome says "Safari"), so the more specific comes first. Each gives the
// token before its version, or "" for none.
var browsers = []struct{ name, marker, version string }{
	{"Opera Mini", "Opera Mini", "Opera Mini/"},
	{"Opera", " OPR/", "OPR/"},
	{"Samsung Internet", "SamsungBrowser/", "SamsungBrowser/"},
	{"Microsoft Edge", "Edg/", "Edg/"},
	{"Microsoft Edge", "EdgA/", "EdgA/"},
	{"Microsoft Edge", "EdgiOS/", "EdgiOS/"},
	{"Microsoft Edge", "Edge/", "Edge/"},
	{"Facebook Mobile", "FBIOS", ""},
	{"Chrome iOS", "CriOS/", "CriOS/"},
	{"Firefox iOS", "FxiOS/", "FxiOS/"},
	{"UC Browser", "UCBrowser/", "UCBrowser/"},
	{"Chrome", "Chrome/", "Chrome/"},
	{"Firefox", "Firefox/", "Firefox/"},
	{"Internet Explorer", "Trident/", "rv:"},
	{"Internet Explorer", "MSIE ", "MSIE "},
	{"Mobile Safari", "Mobile/", "Version/"}, // with Safari/ below
	{"Safari", "Safari/", "Version/"},
}

// parseUserAgent returns the browser ($browser) and its version
// ($browser_version) that a user agent names, as Mixpanel's JavaScript
// library reports them; "" when it is not a browser it knows.
func parseUserAgent(ua string) (name, version string) {
	for _, b := range browsers {
		if !strings.Contains(ua, b.marker) {
			continue
		}
		if b.name == "Mobile Safari" && !strings.Contains(ua, "Safari/") {
			continue // an in-app web view
		}
		if b.version != "" {
			version = versionAfter(ua, b.version)
		}
		return b.name, version
	}
	return "", ""
}

// versionAfter returns the dotted number that follows token in ua.
func versionAfter(ua, token string) string {
	i := strings.Index(ua, token)
	if i < 0 {
		return ""
	}
	rest := ua[i+len(token):]
	end := 0
	for end < len(rest) && (rest[end] == '.' || '0' <= rest[end] && rest[end] <= '9') {
		end++
	}
	return strings.TrimRight(rest[:end], ".")
}
