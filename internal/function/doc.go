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
package function
