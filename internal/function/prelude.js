// The globals Segment's functions rely on, in JavaScript over a few Go
// natives (__fetch, __digest, __bytes, __emit, __log, __timer). It runs
// once per interpreter, before the function's own code.
"use strict";
(function (g) {
  const natives = {
    fetch: g.__fetch, digest: g.__digest, bytes: g.__bytes, emit: g.__emit,
    log: g.__log, timer: g.__timer, uuid: g.__uuid, parse: g.__parse, stringify: g.__stringify,
  };
  for (const k of ["__fetch", "__digest", "__bytes", "__emit", "__log", "__timer", "__uuid", "__parse", "__stringify"]) delete g[k];

  // JSON.parse and JSON.stringify in Go (json.go): faster than goja's,
  // bounded in depth, and stopped by the call's time limit. A reviver
  // still goes through goja's JSON.parse.
  const jsonParse = JSON.parse;
  const methods = {
    parse(text, reviver) { return reviver === undefined ? natives.parse(String(text)) : jsonParse(text, reviver); },
    stringify(value, replacer, space) { return natives.stringify(value, replacer, space); },
  };
  for (const k of ["parse", "stringify"]) Object.defineProperty(JSON, k, { writable: true, configurable: true, value: methods[k] });

  // The error classes (spec §9): what a handler throws decides the outcome.
  function errorClass(name) {
    const C = class extends Error {
      constructor(message) { super(message); this.name = name; }
    };
    Object.defineProperty(C, "name", { value: name });
    return C;
  }
  for (const n of ["EventNotSupported", "InvalidEventPayload", "ValidationError", "RetryError", "DropEvent", "InvalidSettings"]) {
    g[n] = errorClass(n);
  }

  // Allocation guards: natives that grow a value in one step are bounded,
  // since the interpreter cannot interrupt them midway.
  const maxLen = 1 << 26;
  const wrap = (proto, name, size) => {
    const orig = proto[name];
    Object.defineProperty(proto, name, { writable: true, configurable: true, value: function (...args) {
      if (size(this, args) > maxLen) throw new RangeError(name + ": the result would exceed the function's memory limit");
      return orig.apply(this, args);
    } });
  };
  wrap(String.prototype, "repeat", (s, a) => String(s).length * Number(a[0]));
  wrap(String.prototype, "padStart", (s, a) => Number(a[0]));
  wrap(String.prototype, "padEnd", (s, a) => Number(a[0]));
  wrap(Array.prototype, "fill", (arr) => arr.length);
  wrap(Array.prototype, "join", (arr, a) => arr.length * (a[0] === undefined ? 1 : String(a[0]).length));
  const checkLen = (n) => { if (typeof n === "number" && n > maxLen) throw new RangeError("the length exceeds the function's memory limit"); };
  for (const T of [ArrayBuffer, Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array, Uint8ClampedArray]) {
    const Guarded = class extends T { constructor(...args) { checkLen(args[0]); super(...args); } };
    Object.defineProperty(Guarded, "name", { value: T.name });
    g[T.name] = Guarded;
  }

  // console, captured into the function's logs.
  const fmt = (args) => args.map((a) => {
    if (typeof a === "string") return a;
    if (a instanceof Error) return a.name + ": " + a.message;
    try { const s = JSON.stringify(a); return s === undefined ? String(a) : s; } catch (e) { return String(a); }
  }).join(" ");
  g.console = {};
  for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
    g.console[level] = (...args) => natives.log(level, fmt(args));
  }

  // atob and btoa, over Latin-1 strings as in browsers and Node: a
  // character over U+00FF, or text that is not base64, is an
  // InvalidCharacterError.
  const invalidCharacter = (msg) => { const e = new Error(msg); e.name = "InvalidCharacterError"; return e; };
  g.btoa = (s) => {
    s = String(s);
    if (/[^\x00-\xff]/.test(s)) throw invalidCharacter("btoa: the string has characters outside of Latin-1");
    return natives.bytes(s, "latin1", "base64");
  };
  g.atob = (s) => {
    s = String(s).replace(/[\t\n\f\r ]/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) throw invalidCharacter("atob: the string is not correctly encoded");
    return natives.bytes(s, "base64", "latin1");
  };

  // Buffer: enough of Node's to convert between encodings
  // (Buffer.from(key + ":").toString("base64") builds Basic auth).
  class Buffer {
    constructor(latin1) { this._b = latin1; }
    static from(v, enc) {
      if (v instanceof Buffer) return new Buffer(v._b);
      if (Array.isArray(v) || v instanceof Uint8Array) return new Buffer(String.fromCharCode(...v));
      return new Buffer(natives.bytes(String(v), enc || "utf8", "latin1"));
    }
    static isBuffer(v) { return v instanceof Buffer; }
    static byteLength(v, enc) { return Buffer.from(v, enc).length; }
    static concat(list) { return new Buffer(list.map((b) => b._b).join("")); }
    get length() { return this._b.length; }
    toString(enc) { return natives.bytes(this._b, "latin1", enc || "utf8"); }
    toJSON() { return { type: "Buffer", data: Array.from(this._b, (c) => c.charCodeAt(0)) }; }
  }
  g.Buffer = Buffer;
  const toLatin1 = (v, enc) => v instanceof Buffer ? v._b : natives.bytes(String(v), enc || "utf8", "latin1");

  // crypto: Node's hashing helpers.
  class Hash {
    constructor(alg, key) { this.alg = alg; this.key = key; this.parts = []; natives.digest(alg, null, "", "hex"); }
    update(data, enc) { this.parts.push(toLatin1(data, enc)); return this; }
    digest(enc) {
      const out = natives.digest(this.alg, this.key, this.parts.join(""), enc || "buffer");
      return enc ? out : new Buffer(out);
    }
  }
  g.crypto = {
    createHash: (alg) => new Hash(String(alg), null),
    createHmac: (alg, key) => new Hash(String(alg), toLatin1(key)),
    randomUUID: () => natives.uuid(),
    timingSafeEqual: (a, b) => {
      const x = toLatin1(a), y = toLatin1(b);
      if (x.length !== y.length) throw new RangeError("Input buffers must have the same byte length");
      let d = 0; for (let i = 0; i < x.length; i++) d |= x.charCodeAt(i) ^ y.charCodeAt(i);
      return d === 0;
    },
  };

  // The classes below loop by index rather than with for…of and
  // destructuring: in goja the iterator protocol costs microseconds a
  // step, and fetch runs these on every call.
  const eachPair = (init, fn) => {
    if (Array.isArray(init)) {
      for (let i = 0; i < init.length; i++) { const p = init[i]; fn(p[0], p[1]); }
    } else if (typeof init[Symbol.iterator] === "function") {
      const a = Array.from(init);
      for (let i = 0; i < a.length; i++) fn(a[i][0], a[i][1]);
    } else {
      const ks = Object.keys(init);
      for (let i = 0; i < ks.length; i++) fn(ks[i], init[ks[i]]);
    }
  };

  // URLSearchParams, as WHATWG defines it.
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (e) { return s; } };
  class URLSearchParams {
    constructor(init) {
      this._list = [];
      if (init === undefined || init === null) return;
      if (init instanceof URLSearchParams) { this._list = init._list.map((p) => [p[0], p[1]]); return; }
      if (typeof init === "object") {
        eachPair(init, (k, v) => this._list.push([String(k), String(v)]));
        return;
      }
      let s = String(init);
      if (s.startsWith("?")) s = s.slice(1);
      if (s === "") return;
      const parts = s.split("&");
      for (let j = 0; j < parts.length; j++) {
        const part = parts[j];
        if (part === "") continue;
        const i = part.indexOf("=");
        this._list.push(i < 0 ? [dec(part), ""] : [dec(part.slice(0, i)), dec(part.slice(i + 1))]);
      }
    }
    get size() { return this._list.length; }
    append(k, v) { this._list.push([String(k), String(v)]); }
    delete(k) { k = String(k); this._list = this._list.filter((p) => p[0] !== k); }
    get(k) { k = String(k); const p = this._list.find((p) => p[0] === k); return p ? p[1] : null; }
    getAll(k) { k = String(k); return this._list.filter((p) => p[0] === k).map((p) => p[1]); }
    has(k) { k = String(k); return this._list.some((p) => p[0] === k); }
    set(k, v) {
      k = String(k); v = String(v);
      const i = this._list.findIndex((p) => p[0] === k);
      if (i < 0) { this._list.push([k, v]); return; }
      this._list[i][1] = v;
      this._list = this._list.filter((p, j) => j <= i || p[0] !== k);
    }
    sort() { this._list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); }
    forEach(fn, self) { const l = this._list.slice(); for (let i = 0; i < l.length; i++) fn.call(self, l[i][1], l[i][0], this); }
    keys() { return this._list.map((p) => p[0])[Symbol.iterator](); }
    values() { return this._list.map((p) => p[1])[Symbol.iterator](); }
    entries() { return this._list.map((p) => [p[0], p[1]])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() {
      let s = "";
      for (let i = 0; i < this._list.length; i++) s += (i ? "&" : "") + enc(this._list[i][0]) + "=" + enc(this._list[i][1]);
      return s;
    }
  }
  g.URLSearchParams = URLSearchParams;

  // URL, enough of WHATWG's for request.url and building request URLs.
  // removeDots resolves the "." and ".." segments of a path (RFC 3986
  // 5.2.4); resolve makes a reference absolute against a base URL.
  const removeDots = (path) => {
    const out = [];
    const segs = path.split("/");
    for (let i = 1; i < segs.length; i++) {
      const seg = segs[i], last = i === segs.length - 1;
      if (seg === ".." || seg === "%2e%2e" || seg === "%2E%2E") { if (out.length) out.pop(); if (last) out.push(""); }
      else if (seg === "." || seg === "%2e" || seg === "%2E") { if (last) out.push(""); }
      else out.push(seg);
    }
    return "/" + out.join("/");
  };
  const resolve = (u, base) => {
    const b = new URL(base);
    const auth = b.username ? b.username + (b.password ? ":" + b.password : "") + "@" : "";
    const prefix = b.protocol + "//" + auth + b.host;
    if (u.startsWith("//")) return b.protocol + u;
    if (u === "") return prefix + b.pathname + b.search;
    if (u.startsWith("#")) return prefix + b.pathname + b.search + u;
    if (u.startsWith("?")) return prefix + b.pathname + u;
    return prefix + (u.startsWith("/") ? u : b.pathname.replace(/[^/]*$/, "") + u);
  };
  class URL {
    constructor(u, base) {
      u = String(u).trim();
      if (base !== undefined && !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(u)) u = resolve(u, base);
      const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:)\/\/(?:([^:@\/]*)(?::([^@\/]*))?@)?(\[[^\]]+\]|[^:\/?#\[\]\s<>\\^|]+)(?::(\d+))?(\/[^?#]*)?(\?[^#]*)?(#.*)?$/.exec(u);
      if (!m) throw new TypeError("Invalid URL: " + u);
      this.protocol = m[1].toLowerCase();
      this.username = m[2] || ""; this.password = m[3] || "";
      this.hostname = m[4].toLowerCase(); this.port = m[5] || "";
      this.pathname = removeDots(m[6] || "/");
      this.searchParams = new URLSearchParams(m[7] || "");
      this.hash = m[8] || "";
    }
    get host() { return this.port ? this.hostname + ":" + this.port : this.hostname; }
    get origin() { return this.protocol + "//" + this.host; }
    get search() { const s = this.searchParams.toString(); return s ? "?" + s : ""; }
    set search(v) { this.searchParams = new URLSearchParams(String(v)); }
    get href() {
      const auth = this.username ? this.username + (this.password ? ":" + this.password : "") + "@" : "";
      return this.protocol + "//" + auth + this.host + this.pathname + this.search + this.hash;
    }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }
  g.URL = URL;

  // Headers, Response and fetch, as node-fetch shapes them.
  class Headers {
    constructor(init) {
      this._m = new Map();
      if (!init) return;
      if (init instanceof Headers) init._m.forEach((v, k) => this._m.set(k, v));
      else eachPair(init, (k, v) => this.append(k, v));
    }
    append(k, v) { k = String(k).toLowerCase(); const o = this._m.get(k); this._m.set(k, o === undefined ? String(v) : o + ", " + v); }
    set(k, v) { this._m.set(String(k).toLowerCase(), String(v)); }
    get(k) { const v = this._m.get(String(k).toLowerCase()); return v === undefined ? null : v; }
    has(k) { return this._m.has(String(k).toLowerCase()); }
    delete(k) { this._m.delete(String(k).toLowerCase()); }
    forEach(fn, self) { this._m.forEach((v, k) => fn.call(self, v, k, this)); }
    keys() { return this._m.keys(); }
    values() { return this._m.values(); }
    entries() { return this._m.entries(); }
    [Symbol.iterator]() { return this._m.entries(); }
    raw() { const o = {}; this._m.forEach((v, k) => { o[k] = [v]; }); return o; }
  }
  g.Headers = Headers;
  class Response {
    constructor(body, init) {
      init = init || {};
      this._body = body === undefined || body === null ? "" : String(body);
      this.status = init.status === undefined ? 200 : init.status;
      this.statusText = init.statusText || "";
      this.headers = new Headers(init.headers);
      this.url = init.url || "";
      this.ok = this.status >= 200 && this.status < 300;
    }
    async text() { return this._body; }
    async json() { return JSON.parse(this._body); }
    clone() { return new Response(this._body, this); }
  }
  g.Response = Response;
  g.fetch = async function fetch(url, opts) {
    opts = opts || {};
    const headers = new Headers(opts.headers);
    let body = opts.body;
    if (body instanceof URLSearchParams) {
      if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
      body = body.toString();
    } else if (body instanceof Buffer) {
      body = body.toString("utf8");
    } else if (body !== undefined && body !== null) {
      body = String(body);
    }
    const pairs = [];
    headers._m.forEach((v, k) => { pairs.push([k, v]); });
    const r = natives.fetch(url instanceof URL ? url.href : String(url), String(opts.method || "GET").toUpperCase(), pairs, body === undefined ? null : body);
    return new Response(r.body, { status: r.status, statusText: r.statusText, headers: r.headers, url: r.url });
  };

  // Timers run while a call waits for its promise, within its time limit.
  g.setTimeout = (fn, ms, ...args) => {
    if (typeof fn !== "function") throw new TypeError("setTimeout: the callback must be a function");
    return natives.timer(() => fn(...args), Number(ms) || 0);
  };
  g.clearTimeout = (id) => natives.timer(null, id);
  g.setInterval = (fn, ms, ...args) => {
    if (typeof fn !== "function") throw new TypeError("setInterval: the callback must be a function");
    return natives.timer(() => fn(...args), Number(ms) || 0, true);
  };
  g.clearInterval = g.clearTimeout;
})(globalThis);
