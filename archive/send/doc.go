// Package send sends stored instances to DICOM peers: the storage sub-operations of
// C-MOVE (PS3.4 C.4.2) and C-GET (C.4.3), `lumen send`, and forwarding. It opens one
// association to a destination proposing, for each SOP class, the stored transfer
// syntax and Explicit and Implicit VR Little Endian (PS3.5 §10), and sends each instance
// as stored when the destination accepted that syntax, else decompressed or rewritten to
// Explicit VR Little Endian when a decoder exists; otherwise that instance fails with a
// reason. Objects are streamed from the store, never held whole.
package send
