package function

import (
	"fmt"
	"net"
	"strings"
)

// checkHostPattern refuses an allow-list entry that is not a host, a
// host:port, or "*." followed by a domain.
func checkHostPattern(h string) error {
	if h == "" || strings.ContainsAny(h, "/ @?#") {
		return fmt.Errorf("allowed host %q is not a host or host:port (no scheme or path)", h)
	}
	rest := strings.TrimPrefix(h, "*.")
	if strings.Contains(rest, "*") {
		return fmt.Errorf("allowed host %q: a wildcard may only start it, as in *.example.com", h)
	}
	return nil
}

// hostAllowed reports whether a URL's host (host or host:port, as in
// url.URL.Host) matches one of the patterns: an entry without a port
// matches the host on any port; "*.example.com" matches its subdomains.
func hostAllowed(patterns []string, hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	for _, p := range patterns {
		p = strings.ToLower(p)
		if strings.EqualFold(p, hostport) {
			return true
		}
		if _, _, err := net.SplitHostPort(p); err == nil {
			continue // with a port: only the exact match above
		}
		p = strings.Trim(p, "[]")
		if d, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+d) {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}
