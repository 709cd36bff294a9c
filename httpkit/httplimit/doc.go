// Package httplimit bounds what hostile HTTP clients can hold of a server: connections
// (each one a file descriptor, a goroutine and buffers), request bodies being received
// (each one a temporary file and an ingest in flight) and the time they may take.
//
// A Limiter does three things:
//
//   - Its Listener caps the open connections overall and per client address (the socket's
//     peer address; IPv6 clients are grouped by network). Accept never blocks on them:
//     the server keeps accepting, and keeps file descriptors for its own files, whatever
//     arrives. A connection that would exceed a cap is admitted only in place of one
//     that has waited longest without a request in progress (half-open, a header still
//     arriving, or an idle keep-alive): beyond the per-address cap, one of the same
//     address; at the overall cap, one of the address holding the most connections,
//     provided it holds at least two more than the new client, else one of the new
//     client's own. Otherwise the new connection is closed at once. So a flood fills the
//     caps but cannot keep out a client holding fewer connections, and a connection with
//     a request in progress is never closed.
//   - Its Handler (installed by ConfigureServer) caps the request bodies being received
//     at once, overall (503) and per client address (429), answering beyond with
//     Retry-After and a reason, and cuts a body that arrives slower than a minimum rate
//     after a grace period: a slowloris upload cannot hold a temporary file, a slot and a
//     connection for long.
//   - ConfigureServer sets the http.Server timeouts that bound the rest: a short
//     ReadHeaderTimeout (a header must arrive whole in that time), an IdleTimeout for
//     keep-alive connections, and a cap on header bytes.
//
// The client address of the connection caps is always the socket's. The upload caps use
// Limiter.ClientAddr, by default the socket's too: never a header such as
// X-Forwarded-For, unless the caller decides to trust one.
//
// RFC 9110 §15.5.9 (408), §15.6.4 (503) and §10.2.3 (Retry-After), and RFC 6585 §4 (429),
// are the answers it gives.
package httplimit
