// Package function runs Segment-style JavaScript functions inside Conflux:
// source functions (onRequest turns a webhook call into events), destination
// functions (onTrack, onIdentify, …, onBatch send events to an API no
// built-in destination covers) and insert functions (the same handlers, which
// return the event, a changed event, or drop it).
//
// The engine is goja, a JavaScript interpreter in pure Go: no Node process
// per call, nothing outside the process. A [Program] is one deployed version
// of a function compiled once; a [Runner] executes programs on pooled
// interpreters with the globals Segment's functions rely on (fetch to an
// allow-list of hosts, atob, btoa, console, URLSearchParams, crypto hashes,
// the error classes) and the sandbox limits: a time limit per call, a memory
// limit, interruption of infinite loops, no file system or process access.
//
// The code runs as Node runs a script (sloppy unless it says "use
// strict"), with these globals besides the language's own: fetch, Headers,
// Response, URL, URLSearchParams, atob, btoa, Buffer (from, toString,
// concat, byteLength, isBuffer), crypto (createHash, createHmac for md5,
// sha1, sha256, sha384, sha512; randomUUID; timingSafeEqual), console,
// setTimeout, setInterval and their clear functions, the error classes,
// and Segment (source functions). JSON.parse and JSON.stringify are the
// runtime's own, in Go (json.go). What Segment's runtime also has and this
// one has not: lodash as _, the AWS SDK, FormData, Request, AbortController
// (fetch waits for its answer in the call's goroutine, so a signal could
// not end it), TextEncoder and TextDecoder, and npm modules in general.
//
// Locks: Runner.mu and a LogRing's mu are never held together.
package function
