// Package dimse is Lumen's DICOM network node: the upper layer protocol of DICOM PS3.8
// (PDU encoding §9.3, the state machine of §9.2 with states Sta1–Sta13, events
// Evt1–Evt19 and the ARTIM timer, association negotiation §7.1 and Annex D) and the DIMSE
// message exchange of PS3.7 (command sets in implicit VR little endian, §6.3 and §9.3)
// for the services of PS3.4 Annex A (Verification, C-ECHO) and Annex B (Storage,
// C-STORE).
//
// Server has the http.Server lifecycle: Serve(ln), ListenAndServe, Shutdown(ctx). The
// package does not know about storage: it declares the handler interfaces it needs
// (StoreHandler) and the command wires them to the archive. Data sets stream to handlers
// PDV by PDV through an io.Reader; no network path holds a whole instance in memory.
package dimse
