// Package hl7 reads and writes HL7 version 2 messages in their ER7 ("pipe and hat")
// encoding, v2.3 to v2.8, and makes their original-mode acknowledgments.
//
// It implements these parts of HL7 v2.x chapter 2 (Control):
//
//   - message construction rules: segments ended by CR, fields, repetitions,
//     components and subcomponents; MSH-1 (field separator) and MSH-2 (encoding
//     characters, with the v2.7 truncation character), validated; fields numbered as
//     the standard numbers them (Parse, Segment.Field, Value);
//   - the null value "" against an empty or absent field (Value.Null, Null);
//   - escape sequences in text (v2.7 §2.7): \F\ \S\ \T\ \R\ \E\ \P\, \Xhh\ hexadecimal
//     data, \H\ \N\ highlighting (dropped), the formatted-text commands (\.br\ and
//     friends become line breaks and spaces), \Cxxyy\ and \Mxxyyzz\ character set
//     switching for the Japanese ISO 2022 sets; other sequences are kept as they are.
//     Writing escapes every delimiter (Delimiters.EscapeValue);
//   - character sets, MSH-18 (HL7 Table 0211): ASCII, 8859/1 to 8859/9, 8859/15,
//     UNICODE UTF-8, ISO IR14, ISO IR87 and ISO IR159 (as ISO 2022, with the
//     repetition "~ISO IR87" Japanese senders use), KS X 1001 (EUC-KR), GB 18030-2000,
//     BIG-5; decoded and encoded with golang.org/x/text. UNICODE (UCS-2), UNICODE
//     UTF-16, UNICODE UTF-32 and CNS 11643-1992 are refused with 207 (application
//     internal error: this receiver cannot read them), a value not in the table with
//     103 (table value not found). An absent MSH-18 means ASCII; UTF-8 bytes are
//     accepted as many senders write them unannounced (Options.DefaultCharset names
//     another set to assume);
//   - the message header fields the control chapter requires (MSH-9, MSH-10, MSH-11,
//     MSH-12), and the versions of Table 0104 from 2.3 (Message.CheckVersion);
//   - original-mode acknowledgments: the ACK with MSA and ERR segments (ERR-2 location,
//     ERR-3 HL7 Table 0357 code, ERR-4 severity from v2.5; ERR-1 before), built from a
//     parsed message or from bytes that did not parse (Ack, AckBytes);
//   - message errors as HL7 Table 0357 codes with their ERL location (Error).
//
// Not implemented: the enhanced acknowledgment mode (MSH-15, MSH-16) and the
// sequence number protocol (MSH-13); batches and files (FHS, BHS, BTS, FTS);
// continuation (DSC, ADD); the XML encoding; message structure validation against the
// abstract message definitions of the other chapters (which segments a message type
// holds, data types, lengths, tables other than 0211 and 0357): the application does
// what it needs; character set switching inside values other than into the Japanese
// ISO 2022 sets. MLLP, the transport, is in package hl7/mllp.
//
// A path names a position for reading and writing: "PID-3[2].1.4" is the fourth
// subcomponent of the first component of the second repetition of PID-3 of the first
// PID; "OBX[2]-5" field 5 of the second OBX (see Location).
//
//	m, err := hl7.Parse(b)
//	if err != nil {
//		ack := hl7.AckBytes(b, hl7.AR, []*hl7.Error{hl7.AsError(err)}, id, time.Now())
//		...
//	}
//	family := m.Get("PID-5.1").String()
//	if m.Get("PID-7").Null() { /* delete the birth date */ }
//
// Parsing is bounded (Options): at most 1,000 segments of 500 fields by default, and
// the memory a message takes is a few times its size.
package hl7
