// Package send sends stored instances to DICOM peers: the storage sub-operations of
// C-MOVE (PS3.4 C.4.2) and C-GET (C.4.3), `lumen send`, and forwarding. It opens one
// association to a destination proposing, for each SOP class, the stored transfer
// syntax and Explicit and Implicit VR Little Endian (PS3.5 §10), and sends each instance
// as stored when the destination accepted that syntax, else converted (package
// transcode) to the first accepted of Explicit VR Little Endian, Implicit VR Little
// Endian and Deflated Explicit VR Little Endian: from every uncompressed syntax, and
// from every compressed one a decoder exists for. A conversion that cannot be done
// fails that instance with a reason before any of it is sent. Objects are streamed
// from the store, never held whole.
//
// Peers is the book of known destinations; Select resolves what to send from UIDs or
// query keys; Forwarder runs the forwarding jobs that ForwardJobs queues on ingest (its
// kind registers with index.Worker); File sends PS3.10 files as stored (`lumen store`).
package send
