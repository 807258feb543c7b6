package aggregate

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

type apiClient struct {
	t   *testing.T
	url string
}

// get fetches path with the token and decodes the JSON answer.
func (c apiClient) get(token, path string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+path, nil)
	if token != "" {
		req.SetBasicAuth(token, "")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		c.t.Fatalf("GET %s: %d %s: not JSON", path, resp.StatusCode, b)
	}
	return resp.StatusCode, body, resp.Header
}

func (c apiClient) ok(path string) map[string]any {
	c.t.Helper()
	status, body, _ := c.get("secret-token", path)
	if status != http.StatusOK {
		c.t.Fatalf("GET %s: %d %v", path, status, body)
	}
	return body
}

func TestProfileAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, identity.Settings{})
		// From an hour ago, not the fixture's fixed day: the events
		// endpoint reads only the space's retention back from now.
		f.at = time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
		start := f.at // the events come one minute apart after it
		// Events of one user, from two devices, merged by the identify;
		// then a group call.
		f.apply(
			f.rec("track", `"anonymousId":"a-api-1","event":"Product Viewed","properties":{"sku":"s1"}`),
			f.rec("page", `"anonymousId":"a-api-2","name":"Home"`),
		)
		f.apply(f.rec("identify", `"anonymousId":"a-api-1","userId":"u-api","traits":{"email":"ada+test@example.com","name":"Ada","plan":"free","age":36}`))
		f.apply(f.rec("identify", `"anonymousId":"a-api-2","userId":"u-api","traits":{"plan":"pro"}`))
		f.apply(f.rec("track", `"userId":"u-api","event":"Order Completed","properties":{"total":12.5}`))
		f.apply(f.rec("group", `"userId":"u-api","groupId":"acme","traits":{"name":"Acme","employees":20}`))
		space := profile.Space{ID: "default", AccessToken: "secret-token", Retention: 400 * 24 * time.Hour}
		api := profile.NewAPI(profile.NewReader(db), func() profile.Space { return space }, identity.DefaultRules, nil)
		mux := http.NewServeMux()
		api.Register(mux)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		c := apiClient{t: t, url: srv.URL}
		base := "/v1/spaces/default/collections/users/profiles/"

		t.Run("auth", func(t *testing.T) {
			for _, tok := range []string{"", "wrong"} {
				status, body, h := c.get(tok, base+"user_id:u-api/traits")
				if status != http.StatusUnauthorized || errCode(body) != "authentication_error" || h.Get("Request-Id") == "" {
					t.Errorf("token %q: %d %v (Request-Id %q)", tok, status, body, h.Get("Request-Id"))
				}
			}
			status, body, _ := c.get("secret-token", "/v1/spaces/other/collections/users/profiles/user_id:u-api/traits")
			if status != http.StatusNotFound {
				t.Errorf("other space: %d %v", status, body)
			}
		})
		t.Run("traits from every identifier of the merged profile", func(t *testing.T) {
			for _, id := range []string{"user_id:u-api", "anonymous_id:a-api-1", "anonymous_id:a-api-2", "email:ada%2Btest@example.com"} {
				body := c.ok(base + id + "/traits")
				traits := body["traits"].(map[string]any)
				if traits["plan"] != "pro" || traits["name"] != "Ada" || traits["age"] != 36.0 {
					t.Errorf("%s: traits %v", id, traits)
				}
			}
		})
		t.Run("traits include, limit and next", func(t *testing.T) {
			body := c.ok(base + "user_id:u-api/traits?include=plan,name")
			if tr := body["traits"].(map[string]any); len(tr) != 2 || tr["plan"] != "pro" {
				t.Errorf("include: %v", tr)
			}
			var keys []string
			next := ""
			for range 10 {
				body := c.ok(base + "user_id:u-api/traits?limit=2" + next)
				for k := range body["traits"].(map[string]any) {
					keys = append(keys, k)
				}
				cur := body["cursor"].(map[string]any)
				if !cur["has_more"].(bool) {
					break
				}
				next = "&next=" + cur["next"].(string)
			}
			if strings.Join(sorted(keys), ",") != "age,email,name,plan" {
				t.Errorf("paged traits: %v", keys)
			}
			body = c.ok(base + "user_id:u-api/traits?include=plan&verbose=true")
			v := body["traits"].(map[string]any)["plan"].(map[string]any)
			if v["value"] != "pro" || v["source_id"] != "web" {
				t.Errorf("verbose: %v", v)
			}
		})
		t.Run("events newest first with a cursor", func(t *testing.T) {
			body := c.ok(base + "user_id:u-api/events?limit=2")
			data := body["data"].([]any)
			if len(data) != 2 || data[0].(map[string]any)["type"] != "group" || data[1].(map[string]any)["event"] != "Order Completed" {
				t.Fatalf("first page: %v", data)
			}
			cur := body["cursor"].(map[string]any)
			if !cur["has_more"].(bool) {
				t.Fatalf("cursor: %v", cur)
			}
			all := len(data)
			for cur["has_more"].(bool) {
				body = c.ok(base + "user_id:u-api/events?limit=2&next=" + cur["next"].(string))
				all += len(body["data"].([]any))
				cur = body["cursor"].(map[string]any)
			}
			if all != 6 {
				t.Errorf("%d events over the pages, want 6", all)
			}
			body = c.ok(base + "user_id:u-api/events?sort=asc&limit=1")
			if first := body["data"].([]any)[0].(map[string]any); first["event"] != "Product Viewed" {
				t.Errorf("oldest: %v", first)
			}
			body = c.ok(base + "user_id:u-api/events?include=Order%20Completed,Home")
			if n := len(body["data"].([]any)); n != 2 {
				t.Errorf("include: %d events, want 2", n)
			}
			// A filtered page knows whether another match follows.
			body = c.ok(base + "user_id:u-api/events?include=Home&limit=1")
			if n, more := len(body["data"].([]any)), body["cursor"].(map[string]any)["has_more"]; n != 1 || more != false {
				t.Errorf("include=Home&limit=1: %d events, has_more %v; want 1 and false", n, more)
			}
			body = c.ok(base + "user_id:u-api/events?include=identify&limit=1")
			cur = body["cursor"].(map[string]any)
			if cur["has_more"] != true {
				t.Fatalf("include=identify&limit=1: %v", cur)
			}
			body = c.ok(base + "user_id:u-api/events?include=identify&limit=1&next=" + cur["next"].(string))
			if n, more := len(body["data"].([]any)), body["cursor"].(map[string]any)["has_more"]; n != 1 || more != false {
				t.Errorf("second identify page: %d events, has_more %v; want 1 and false", n, more)
			}
			body = c.ok(base + "user_id:u-api/events?exclude=identify")
			if n := len(body["data"].([]any)); n != 4 {
				t.Errorf("exclude identify: %d events, want 4", n)
			}
			body = c.ok(base + "user_id:u-api/events?end=" + start.Add(2*time.Minute+30*time.Second).Format(time.RFC3339))
			if n := len(body["data"].([]any)); n != 2 {
				t.Errorf("end: %d events, want the first 2", n)
			}
		})
		t.Run("external ids, metadata, links", func(t *testing.T) {
			body := c.ok(base + "user_id:u-api/external_ids?limit=100")
			var ids []string
			for _, e := range body["data"].([]any) {
				m := e.(map[string]any)
				ids = append(ids, m["type"].(string)+":"+m["id"].(string))
				if m["collection"] != "users" || m["encoding"] != "none" || m["source_id"] != "web" {
					t.Errorf("external id %v", m)
				}
			}
			if strings.Join(sorted(ids), ",") != "anonymous_id:a-api-1,anonymous_id:a-api-2,email:ada+test@example.com,user_id:u-api" {
				t.Errorf("external ids: %v", ids)
			}
			body = c.ok(base + "user_id:u-api/external_ids?include=email")
			if n := len(body["data"].([]any)); n != 1 {
				t.Errorf("include=email: %d", n)
			}
			meta := c.ok(base + "anonymous_id:a-api-2/metadata")["metadata"].(map[string]any)
			if meta["first_message_id"] != "m0001" || meta["last_message_id"] != "m0006" || meta["last_source_id"] != "web" {
				t.Errorf("metadata: %v", meta)
			}
			links := c.ok(base + "user_id:u-api/links")["data"].([]any)
			if len(links) != 1 || links[0].(map[string]any)["to_collection"] != "accounts" {
				t.Fatalf("links: %v", links)
			}
			acc := c.ok("/v1/spaces/default/collections/accounts/profiles/group_id:acme/traits")["traits"].(map[string]any)
			if acc["name"] != "Acme" {
				t.Errorf("account traits: %v", acc)
			}
			back := c.ok("/v1/spaces/default/collections/accounts/profiles/group_id:acme/links")["data"].([]any)
			if len(back) != 1 || back[0].(map[string]any)["to_collection"] != "users" {
				t.Errorf("account links: %v", back)
			}
		})
		t.Run("errors", func(t *testing.T) {
			for path, want := range map[string]int{
				base + "user_id:nobody/traits":                                        http.StatusNotFound,
				base + "nocolon/traits":                                               http.StatusBadRequest,
				base + "user_id:u-api/traits?limit=500":                               http.StatusBadRequest,
				base + "user_id:u-api/traits?bogus=1":                                 http.StatusBadRequest,
				base + "user_id:u-api/events?sort=up":                                 http.StatusBadRequest,
				base + "user_id:u-api/events?start=today":                             http.StatusBadRequest,
				base + "user_id:u-api/events?next=zzz":                                http.StatusBadRequest,
				"/v1/spaces/default/collections/people/profiles/user_id:u-api/traits": http.StatusNotFound,
			} {
				status, body, _ := c.get("secret-token", path)
				if status != want || errCode(body) == "" {
					t.Errorf("%s: %d %v, want %d with an error body", path, status, body, want)
				}
			}
		})
		t.Run("rate limit", func(t *testing.T) {
			space.RateLimit = 2
			defer func() { space.RateLimit = 0 }()
			limited := 0
			for range 10 {
				if status, body, _ := c.get("secret-token", base+"user_id:u-api/metadata"); status == http.StatusTooManyRequests {
					if errCode(body) != "rate_limit_error" {
						t.Errorf("429 body %v", body)
					}
					limited++
				}
			}
			if limited == 0 {
				t.Error("10 quick requests at 2/s: none limited")
			}
		})
	})
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
