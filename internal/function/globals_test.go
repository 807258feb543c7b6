package function

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// table runs each case's body (see eval) and compares the JSON of what it
// returns.
func table(t *testing.T, cases [][2]string) {
	t.Helper()
	r := newRunner(t)
	for _, c := range cases {
		if got := eval(t, r, c[0]); !jsonEqual(t, got, c[1]) {
			t.Errorf("%s\n got  %s\n want %s", c[0], got, c[1])
		}
	}
}

func TestAtobBtoa(t *testing.T) {
	table(t, [][2]string{
		{`return btoa('hello world')`, `"aGVsbG8gd29ybGQ="`},
		{`return atob('aGVsbG8gd29ybGQ=')`, `"hello world"`},
		{`return atob(' aGVs bG8=\n')`, `"hello"`},
		{`return btoa('')`, `""`},
		{`return btoa('sk_live_1:')`, `"c2tfbGl2ZV8xOg=="`},
		{`let s = ''; for (let i = 0; i < 256; i++) s += String.fromCharCode(i); return atob(btoa(s)) === s`, `true`},
		{`return btoa(String.fromCharCode(255, 254, 0))`, `"//4A"`},
		{`try { btoa('日本') } catch (e) { return e.name }`, `"InvalidCharacterError"`},
		{`try { atob('***') } catch (e) { return e.name }`, `"InvalidCharacterError"`},
		{`return atob('YQ')`, `"a"`}, // padding is optional
	})
}

func TestBuffer(t *testing.T) {
	table(t, [][2]string{
		{`return Buffer.from('key:').toString('base64')`, `"a2V5Og=="`},
		{`return Buffer.from('a2V5Og==', 'base64').toString()`, `"key:"`},
		{`return Buffer.from('a2V5Og', 'base64url').toString('utf8')`, `"key:"`},
		{`return Buffer.from('héllo 日本').toString('hex')`, `"68c3a96c6c6f20e697a5e69cac"`},
		{`return Buffer.from('68c3a96c6c6f', 'hex').toString()`, `"héllo"`},
		{`return Buffer.from('héllo').length`, `6`},
		{`return Buffer.byteLength('日本')`, `6`},
		{`return Buffer.from('é', 'latin1').toString('hex')`, `"e9"`},
		{`return Buffer.from([104, 105]).toString()`, `"hi"`},
		{`return Buffer.from(new Uint8Array([0xff, 0x00])).toString('base64')`, `"/wA="`},
		{`return Buffer.concat([Buffer.from('a'), Buffer.from('b')]).toString()`, `"ab"`},
		{`return [Buffer.isBuffer(Buffer.from('x')), Buffer.isBuffer('x')]`, `[true, false]`},
		{`return Buffer.from('hi').toJSON()`, `{"type":"Buffer","data":[104,105]}`},
		{`return Buffer.from(Buffer.from('x')).toString()`, `"x"`},
		{`try { Buffer.from('zz', 'hex') } catch (e) { return e.name }`, `"TypeError"`},
		{`return Buffer.from('/w==', 'base64').toString('hex')`, `"ff"`},
	})
}

func goHash(newHash func() hash.Hash, key, data string) []byte {
	var h hash.Hash
	if key == "" {
		h = newHash()
	} else {
		h = hmac.New(newHash, []byte(key))
	}
	h.Write([]byte(data))
	return h.Sum(nil)
}

func TestCryptoHashes(t *testing.T) {
	r := newRunner(t)
	data := "The quick brown fox 🦊 jumps"
	for _, alg := range []struct {
		name string
		h    func() hash.Hash
	}{{"md5", md5.New}, {"sha1", sha1.New}, {"sha256", sha256.New}, {"sha384", sha512.New384}, {"sha512", sha512.New}} {
		for _, key := range []string{"", "s3cr3t-ключ"} {
			sum := goHash(alg.h, key, data)
			create := `crypto.createHash('` + alg.name + `')`
			if key != "" {
				create = `crypto.createHmac('` + alg.name + `', '` + key + `')`
			}
			got := eval(t, r, `const d = '`+data+`'; return [
  `+create+`.update(d).digest('hex'),
  `+create+`.update(d).digest('base64'),
  `+create+`.update(d.slice(0, 5)).update(d.slice(5)).digest('hex'),
  `+create+`.update(Buffer.from(d)).digest().toString('hex'),
  `+create+`.update(Buffer.from(d).toString('base64'), 'base64').digest('hex'),
]`)
			want, _ := json.Marshal([]string{hex.EncodeToString(sum), base64.StdEncoding.EncodeToString(sum), hex.EncodeToString(sum), hex.EncodeToString(sum), hex.EncodeToString(sum)})
			if got != string(want) {
				t.Errorf("%s key %q:\n got  %s\n want %s", alg.name, key, got, want)
			}
		}
	}
	// A key given as a Buffer, and bytes that are not UTF-8.
	sum := goHash(sha256.New, "\xff\x00k", "\x80\x81")
	if got := eval(t, r, `return crypto.createHmac('sha256', Buffer.from('ff006b', 'hex')).update(Buffer.from('8081', 'hex')).digest('hex')`); got != `"`+hex.EncodeToString(sum)+`"` {
		t.Errorf("binary HMAC: %s", got)
	}
	table(t, [][2]string{
		{`try { crypto.createHash('sha3-512') } catch (e) { return e.name + ': ' + e.message }`, `"TypeError: Digest method not supported: \"sha3-512\" (md5, sha1, sha256, sha384, sha512)"`},
		{`return crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abc'))`, `true`},
		{`return crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abd'))`, `false`},
		{`try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')) } catch (e) { return e.name }`, `"RangeError"`},
	})
}

func TestRandomUUID(t *testing.T) {
	r := newRunner(t)
	got := eval(t, r, `const s = new Set(); for (let i = 0; i < 1000; i++) s.add(crypto.randomUUID()); return Array.from(s)`)
	var ids []string
	if err := json.Unmarshal([]byte(got), &ids); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1000 {
		t.Fatalf("%d distinct UUIDs of 1000", len(ids))
	}
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, id := range ids {
		if !v4.MatchString(id) {
			t.Fatalf("%q is not a version 4 UUID", id)
		}
	}
}

func TestURLSearchParams(t *testing.T) {
	table(t, [][2]string{
		{`const p = new URLSearchParams('?a=1&b=2&a=3'); return [p.get('a'), p.getAll('a'), p.get('b'), p.get('c'), p.has('b'), p.size]`, `["1", ["1","3"], "2", null, true, 3]`},
		{`const p = new URLSearchParams('q=a+b%20c&x=%E6%97%A5&empty=&flag'); return [p.get('q'), p.get('x'), p.get('empty'), p.get('flag')]`, `["a b c", "日", "", ""]`},
		{`const p = new URLSearchParams(); p.append('q', 'a b&c=d'); p.append('q', 'ü'); return p.toString()`, `"q=a+b%26c%3Dd&q=%C3%BC"`},
		{`return new URLSearchParams({name: 'Jane Doe', n: 1, special: "!'()*~-._"}).toString()`, `"name=Jane+Doe&n=1&special=%21%27%28%29*%7E-._"`},
		{`return new URLSearchParams([['a', '1'], ['b', '2']]).toString()`, `"a=1&b=2"`},
		{`const p = new URLSearchParams('a=1&b=2&a=3'); p.set('a', 'x'); return p.toString()`, `"a=x&b=2"`},
		{`const p = new URLSearchParams('a=1&b=2&a=3'); p.set('c', 'y'); p.delete('b'); return p.toString()`, `"a=1&a=3&c=y"`},
		{`const p = new URLSearchParams('c=3&a=1&b=2&a=0'); p.sort(); return p.toString()`, `"a=1&a=0&b=2&c=3"`},
		{`const out = []; for (const [k, v] of new URLSearchParams('a=1&b=2')) out.push(k + '=' + v); return out`, `["a=1", "b=2"]`},
		{`const out = []; new URLSearchParams('a=1&b=2').forEach((v, k) => out.push(k + v)); return out`, `["a1", "b2"]`},
		{`const p = new URLSearchParams('a=1&b=2'); return [Array.from(p.keys()), Array.from(p.values()), Array.from(p.entries())]`, `[["a","b"], ["1","2"], [["a","1"],["b","2"]]]`},
		{`return new URLSearchParams(new URLSearchParams('x=1')).toString()`, `"x=1"`},
		{`return new URLSearchParams('bad=%zz&ok=1').get('bad')`, `"%zz"`},
	})
}

func TestURL(t *testing.T) {
	table(t, [][2]string{
		{`const u = new URL('https://user:pw@API.Example.com:8443/v1/users?id=7&x=a+b#top'); return [u.protocol, u.username, u.password, u.hostname, u.port, u.host, u.origin, u.pathname, u.search, u.hash, u.searchParams.get('x')]`,
			`["https:", "user", "pw", "api.example.com", "8443", "api.example.com:8443", "https://api.example.com:8443", "/v1/users", "?id=7&x=a+b", "#top", "a b"]`},
		{`const u = new URL('https://api.example.com'); u.searchParams.set('q', 'a b'); u.pathname = '/search'; return u.href`, `"https://api.example.com/search?q=a+b"`},
		{`return new URL('/v2/events?x=1', 'https://api.example.com/v1/users').href`, `"https://api.example.com/v2/events?x=1"`},
		{`return new URL('events', 'https://api.example.com/v1/users').href`, `"https://api.example.com/v1/events"`},
		{`const b = 'https://u:p@a.example.com/v1/users/7?x=1#f'; return ['?q=2', '#top', '', '//cdn.example.com/lib.js', '../teams', './me', '.', '..', '/a/./b/../c', 'https://other.example.com/x'].map((r) => new URL(r, b).href)`,
			`["https://u:p@a.example.com/v1/users/7?q=2", "https://u:p@a.example.com/v1/users/7?x=1#top", "https://u:p@a.example.com/v1/users/7?x=1",
			  "https://cdn.example.com/lib.js", "https://u:p@a.example.com/v1/teams", "https://u:p@a.example.com/v1/users/me",
			  "https://u:p@a.example.com/v1/users/", "https://u:p@a.example.com/v1/", "https://u:p@a.example.com/a/c", "https://other.example.com/x"]`},
		{`return [new URL('https://a.example.com/a/../b/./c').pathname, new URL('https://a.example.com/../..').pathname, new URL(' https://a.example.com/x ').href]`, `["/b/c", "/", "https://a.example.com/x"]`},
		{`return new URL('/x', new URL('https://a.example.com/y')).href`, `"https://a.example.com/x"`},
		{`return String(new URL('http://[::1]:9000/x'))`, `"http://[::1]:9000/x"`},
		{`return JSON.stringify({u: new URL('https://a.example.com/p')})`, `"{\"u\":\"https://a.example.com/p\"}"`},
		{`const u = new URL('https://a.example.com/p'); u.search = '?k=v'; return u.toString()`, `"https://a.example.com/p?k=v"`},
		{`try { new URL('not a url') } catch (e) { return e.name }`, `"TypeError"`},
		{`return ['http://a.example.com:x/', 'http://[::1/', 'http://a b.example.com/', 'http://a.example.com:80x'].map((u) => { try { new URL(u); return 'parsed' } catch (e) { return e.name } })`, `["TypeError","TypeError","TypeError","TypeError"]`},
		{`const u = new URL('http://[::1]:9000/x'); return [u.hostname, u.port, u.host]`, `["[::1]", "9000", "[::1]:9000"]`},
		{`try { new URL('/relative') } catch (e) { return e.name }`, `"TypeError"`},
	})
}

func TestHeaders(t *testing.T) {
	table(t, [][2]string{
		{`const h = new Headers({'Content-Type': 'application/json'}); return [h.get('content-type'), h.get('CONTENT-TYPE'), h.has('Content-type'), h.get('x')]`, `["application/json", "application/json", true, null]`},
		{`const h = new Headers(); h.append('Accept', 'a'); h.append('accept', 'b'); return h.get('ACCEPT')`, `"a, b"`},
		{`const h = new Headers([['X-A', '1']]); h.set('x-a', '2'); h.set('X-B', '3'); h.delete('X-B'); return Array.from(h.entries())`, `[["x-a", "2"]]`},
		{`const h = new Headers(new Headers({A: '1'})); const out = []; h.forEach((v, k) => out.push(k + ':' + v)); for (const [k, v] of h) out.push(k + v); return out`, `["a:1", "a1"]`},
		{`return Array.from(new Headers({B: '2', a: '1'}).keys())`, `["b", "a"]`},
	})
}

func TestTimers(t *testing.T) {
	table(t, [][2]string{
		{`const order = []
await new Promise((resolve) => {
  setTimeout(() => order.push('30'), 30)
  setTimeout(() => order.push('10'), 10)
  setTimeout(() => order.push('0a'), 0)
  setTimeout(() => order.push('0b'))
  setTimeout(() => { order.push('20'); setTimeout(() => { order.push('20+5'); resolve() }, 5) }, 20)
  Promise.resolve().then(() => order.push('microtask'))
  order.push('sync')
})
await new Promise((resolve) => setTimeout(resolve, 20))
return order`, `["sync", "microtask", "0a", "0b", "10", "20", "20+5", "30"]`},
		{`const order = []; const id = setTimeout(() => order.push('cleared'), 5); clearTimeout(id); await new Promise((r) => setTimeout(r, 10)); return order`, `[]`},
		{`return await new Promise((resolve) => setTimeout((a, b) => resolve(a + b), 1, 'x', 'y'))`, `"xy"`},
		{`const t0 = Date.now(); await new Promise((r) => setTimeout(r, 50)); return Date.now() - t0 >= 45`, `true`},
		{`try { setTimeout('code', 1) } catch (e) { return e.name }`, `"TypeError"`},
		{`const ticks = []
await new Promise((resolve) => {
  const id = setInterval((tag) => { ticks.push(tag + ticks.length); if (ticks.length === 3) { clearInterval(id); setTimeout(resolve, 20) } }, 5, 't')
})
return ticks`, `["t0", "t1", "t2"]`},
		{`return [typeof setInterval, typeof clearInterval, clearInterval === clearTimeout]`, `["function", "function", true]`},
	})
}

func TestConsole(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindDestination, `async function onTrack(e) {
  console.log('plain', 1, true, null, undefined, {a: [1]}, [2])
  console.info('info'); console.warn('warn'); console.error(new TypeError('bad')); console.debug('debug'); console.trace('trace')
  const o = {}; o.o = o; console.log(o)
  if (e.event === 'fail') throw new RetryError('x')
}`)
	res := r.Deliver(context.Background(), p, []EventIn{track("E", nil)})
	want := "plain 1 true null undefined {\"a\":[1]} [2]\ninfo: info\nwarn: warn\nerror: TypeError: bad\ndebug: debug\ntrace: trace\n[object Object]\n"
	if res.Logs != want {
		t.Errorf("logs\n%q\nwant\n%q", res.Logs, want)
	}
	r.Deliver(context.Background(), p, []EventIn{track("fail", nil)})
	entries := r.Logs(p.ID())
	if len(entries) != 2 || entries[0].Status != "retry" || entries[1].Status != "ok" || entries[0].Text != want {
		t.Errorf("log entries %+v", entries)
	}
	// A call that writes nothing keeps no entry.
	quiet := compile(t, KindDestination, `async function onTrack() {}`, withID("quiet"))
	r.Deliver(context.Background(), quiet, []EventIn{track("E", nil)})
	if n := len(r.Logs(quiet.ID())); n != 0 {
		t.Errorf("%d entries of a quiet function", n)
	}
}

func TestConsoleCutAt4KB(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct{ name, code string }{
		{"one long line", `console.log('x'.repeat(10000))`},
		{"many lines", `for (let i = 0; i < 1000; i++) console.log('line ' + i)`},
		{"multibyte characters", `console.log('日'.repeat(5000))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, "async function onTrack() {\n"+tc.code+"\n}")
			logs := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Logs
			body, note, ok := strings.Cut(logs, "[logs cut at 4 KB]")
			if !ok || note != "\n" {
				t.Fatalf("no note at the end: %q", logs[max(0, len(logs)-60):])
			}
			if len(body) > MaxLogBytes+1 || len(body) < MaxLogBytes-20 {
				t.Errorf("kept %d bytes, want about %d", len(body), MaxLogBytes)
			}
			if !utf8.ValidString(body) {
				t.Errorf("cut inside a character")
			}
		})
	}
}

func TestConsoleToLogger(t *testing.T) {
	var buf bytes.Buffer
	r := newRunner(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	p := compile(t, KindDestination, `async function onTrack() { console.log('to the logger') }`)
	r.Deliver(context.Background(), p, []EventIn{track("E", nil)})
	if !strings.Contains(buf.String(), "to the logger") || !strings.Contains(buf.String(), "function="+p.ID()) {
		t.Errorf("logger got %q", buf.String())
	}
}

// TestNoNodeOrHostAccess: the code cannot reach the process, the file
// system or modules.
func TestNoNodeOrHostAccess(t *testing.T) {
	table(t, [][2]string{
		{`return [typeof require, typeof process, typeof module, typeof exports, typeof __dirname, typeof __filename, typeof global, typeof Deno, typeof Bun]`,
			`["undefined","undefined","undefined","undefined","undefined","undefined","undefined","undefined","undefined"]`},
		{`return [typeof __fetch, typeof __digest, typeof __bytes, typeof __emit, typeof __log, typeof __timer, typeof __uuid, typeof __parse, typeof __stringify]`,
			`["undefined","undefined","undefined","undefined","undefined","undefined","undefined","undefined","undefined"]`},
		{`try { await fetch('file:///etc/passwd') } catch (e) { return e.name }`, `"TypeError"`},
		{`return typeof Segment`, `"undefined"`}, // only source functions emit
		{`return [typeof fetch, typeof atob, typeof btoa, typeof Buffer, typeof crypto, typeof URL, typeof URLSearchParams, typeof Headers, typeof Response, typeof console, typeof setTimeout, typeof clearTimeout]`,
			`["function","function","function","function","object","function","function","function","function","object","function","function"]`},
	})
}
