// Package dimsetest helps tests run a dimse.Server (PS3.8 associations) on loopback, and
// gives them a storage SCP that records what it receives (Recorder): the
// SCPs of the service packages are tested over real associations with it.
package dimsetest
