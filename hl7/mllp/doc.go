// Package mllp is the transport of HL7 version 2 messages: the Minimal Lower Layer
// Protocol of the HL7 v2 Implementation Guide, Appendix C ("MLLP Release 1"). It carries
// bytes only; the ER7 encoding of the messages and their acknowledgements belong to the
// caller (package hl7).
//
// # Framing
//
// Over a TCP connection (or TLS over TCP) each message travels as one block:
//
//	0x0B <message bytes> 0x1C 0x0D
//
// a start block byte (StartBlock, ASCII VT), the message, an end block byte (EndBlock,
// ASCII FS) and a carriage return. A message never holds 0x0B or 0x1C (HL7 v2 encodes its
// text in character sets where these are control characters); Writer refuses one that
// does (ErrBadPayload) and Reader takes a 0x1C as the end of the block. Whitespace
// between blocks is ignored.
//
// A Reader returns one message per frame, bounded by a maximum size (1 MiB by default).
// What it does on each departure from the framing:
//
//   - a frame longer than the maximum: the Reader reads on to its end block, keeping the
//     first HeadBytes (4 KiB) only, and returns them with ErrTooLarge; the next frame is
//     read normally. The application can still read the MSH segment and answer AR.
//   - bytes other than whitespace where a start block is due: ErrBadStart, once; they
//     are skipped up to the next start block.
//   - the end of the stream, a read error or a timeout inside a frame: ErrTruncated
//     (wrapping the cause). A start block inside a frame (the sender started over) also
//     ends the frame with ErrTruncated, and the new frame is read next.
//   - an end block not followed by a carriage return is accepted: the end block ends the
//     frame unambiguously, and a receiver that waited for a missing carriage return
//     would stall a sender that waits for the acknowledgement. A carriage return that
//     does follow is consumed.
//
// # Server
//
// Server serves a listener (wrap it with tls.NewListener for TLS; ConnInfo.TLS then
// gives the peer's certificates) with the lifecycle of http.Server: Serve, and Shutdown,
// which stops accepting, closes idle connections, lets the message in progress on each
// other connection finish, acknowledgement included, and then closes it.
//
// Messages are handled in HL7's original mode: on one connection strictly in order, one
// at a time (the sender waits for the acknowledgement of each message before it sends
// the next; a sender that sends ahead is read in order too). Handler.HandleMessage
// returns the acknowledgement, which the server writes only after the handler has
// returned. The handler's contract is to return only once the change the message asks
// for is durable, so that an acknowledgement never promises what a crash would lose
// (the rule C-STORE follows in package dimse); a sender that sees no acknowledgement
// sends the message again, so handlers must be idempotent by message control ID.
//
// The limits: MaxConns and MaxConnsPerHost (connections beyond them, and those Allow
// refuses, are closed at once and counted in Stats), IdleTimeout (between messages),
// ReadTimeout (from a frame's start block to its end block, so that a sender trickling
// bytes is cut off; also the TLS handshake), WriteTimeout (one acknowledgement) and
// MaxMessageBytes. On a frame over MaxMessageBytes the server calls the handler's
// HandleTooLarge (TooLargeHandler) with the head of the message and sends what it
// returns, or closes the connection when the handler has no such method. A frame the
// sender stalls in past ReadTimeout is answered by the handler's HandleTruncated
// (TruncatedHandler) with its first bytes, and the connection closes; a frame the sender
// abandons by starting a new one (ErrStartedOver) is dropped unanswered and the new frame
// read. On ErrBadStart, other truncations, a timeout between frames, or a handler panic
// (recovered and logged) it closes the connection; the server goes on. Message content is never logged above
// Debug: it carries protected health information.
//
// # Client
//
// Client (Dial, Send, Close) sends messages on one connection and reads the
// acknowledgement of each, within the deadline of the context passed to Send: for
// tests, and for outbound HL7 interfaces.
package mllp
