// Package huffman decodes the Huffman-coded entropy data of ITU-T T.81: the tables of
// a DHT segment (B.2.4.2, Annex C), the decoding procedure of F.2.2.3 and F.2.2.1
// (DECODE, RECEIVE, EXTEND), and the byte stuffing and markers of B.1.1.5 and F.1.2.3.
// The lossless (process 14) and DCT (processes 1, 2 and 4) decoders share it.
package huffman
