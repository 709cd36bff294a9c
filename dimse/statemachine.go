package dimse

import "fmt"

// State is an upper layer state (PS3.8 §9.2.1, Table 9-9).
type State int

// The thirteen states of the DICOM upper layer protocol.
const (
	Sta1  State = 1  // Idle
	Sta2  State = 2  // Transport connection open (awaiting A-ASSOCIATE-RQ PDU)
	Sta3  State = 3  // Awaiting local A-ASSOCIATE response primitive
	Sta4  State = 4  // Awaiting transport connection opening to complete
	Sta5  State = 5  // Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
	Sta6  State = 6  // Association established and ready for data transfer
	Sta7  State = 7  // Awaiting A-RELEASE-RP PDU
	Sta8  State = 8  // Awaiting local A-RELEASE response primitive
	Sta9  State = 9  // Release collision requestor side; awaiting A-RELEASE response primitive
	Sta10 State = 10 // Release collision acceptor side; awaiting A-RELEASE-RP PDU
	Sta11 State = 11 // Release collision requestor side; awaiting A-RELEASE-RP PDU
	Sta12 State = 12 // Release collision acceptor side; awaiting A-RELEASE response primitive
	Sta13 State = 13 // Awaiting Transport Connection Close Indication
)

// Event is an upper layer event (PS3.8 Table 9-10).
type Event int

// The nineteen events of the DICOM upper layer protocol.
const (
	Evt1  Event = 1  // A-ASSOCIATE request (local user)
	Evt2  Event = 2  // Transport connect confirmation (local transport service)
	Evt3  Event = 3  // A-ASSOCIATE-AC PDU (received on transport connection)
	Evt4  Event = 4  // A-ASSOCIATE-RJ PDU (received on transport connection)
	Evt5  Event = 5  // Transport connection indication (local transport service)
	Evt6  Event = 6  // A-ASSOCIATE-RQ PDU (received on transport connection)
	Evt7  Event = 7  // A-ASSOCIATE response primitive (accept)
	Evt8  Event = 8  // A-ASSOCIATE response primitive (reject)
	Evt9  Event = 9  // P-DATA request primitive
	Evt10 Event = 10 // P-DATA-TF PDU
	Evt11 Event = 11 // A-RELEASE request primitive
	Evt12 Event = 12 // A-RELEASE-RQ PDU
	Evt13 Event = 13 // A-RELEASE-RP PDU
	Evt14 Event = 14 // A-RELEASE response primitive
	Evt15 Event = 15 // A-ABORT request primitive
	Evt16 Event = 16 // A-ABORT PDU
	Evt17 Event = 17 // Transport connection closed indication
	Evt18 Event = 18 // ARTIM timer expired
	Evt19 Event = 19 // Unrecognized or invalid PDU received
)

// Action is an upper layer action (PS3.8 Table 9-6 to 9-9).
type Action string

// Actions of the state machine.
const (
	AE1  Action = "AE-1"  // issue TRANSPORT CONNECT request
	AE2  Action = "AE-2"  // send A-ASSOCIATE-RQ PDU
	AE3  Action = "AE-3"  // issue A-ASSOCIATE confirmation (accept)
	AE4  Action = "AE-4"  // issue A-ASSOCIATE confirmation (reject), close transport
	AE5  Action = "AE-5"  // issue transport connection response, start ARTIM
	AE6  Action = "AE-6"  // stop ARTIM; issue A-ASSOCIATE indication or reject
	AE7  Action = "AE-7"  // send A-ASSOCIATE-AC PDU
	AE8  Action = "AE-8"  // send A-ASSOCIATE-RJ PDU, start ARTIM
	DT1  Action = "DT-1"  // send P-DATA-TF PDU
	DT2  Action = "DT-2"  // issue P-DATA indication
	AR1  Action = "AR-1"  // send A-RELEASE-RQ PDU
	AR2  Action = "AR-2"  // issue A-RELEASE indication
	AR3  Action = "AR-3"  // issue A-RELEASE confirmation, close transport
	AR4  Action = "AR-4"  // send A-RELEASE-RP PDU, start ARTIM
	AR5  Action = "AR-5"  // stop ARTIM
	AR6  Action = "AR-6"  // issue P-DATA indication
	AR7  Action = "AR-7"  // send P-DATA-TF PDU
	AR8  Action = "AR-8"  // issue A-RELEASE indication (release collision)
	AR9  Action = "AR-9"  // send A-RELEASE-RP PDU
	AR10 Action = "AR-10" // issue A-RELEASE confirmation
	AA1  Action = "AA-1"  // send A-ABORT PDU (service-user), start ARTIM
	AA2  Action = "AA-2"  // stop ARTIM, close transport
	AA3  Action = "AA-3"  // issue A-ABORT or A-P-ABORT indication, close transport
	AA4  Action = "AA-4"  // issue A-P-ABORT indication
	AA5  Action = "AA-5"  // stop ARTIM
	AA6  Action = "AA-6"  // ignore PDU
	AA7  Action = "AA-7"  // send A-ABORT PDU
	AA8  Action = "AA-8"  // send A-ABORT PDU (service-provider), issue A-P-ABORT, start ARTIM
)

// Transition is one cell of the state table: the action and the next state. For AE-6
// and AR-8 the next state depends on a decision and is resolved by the caller (Next is
// the default).
type Transition struct {
	Action Action
	Next   State
}

// stateTable is PS3.8 Table 9-10. Missing cells are protocol errors handled as AA-8
// (or, in Sta1, ignored).
var stateTable = func() map[State]map[Event]Transition {
	t := map[State]map[Event]Transition{}
	set := func(s State, a Action, next State, evts ...Event) {
		if t[s] == nil {
			t[s] = map[Event]Transition{}
		}
		for _, e := range evts {
			t[s][e] = Transition{a, next}
		}
	}
	// Sta1: idle.
	set(Sta1, AE1, Sta4, Evt1)
	set(Sta1, AE5, Sta2, Evt5)
	// Sta2: awaiting A-ASSOCIATE-RQ.
	set(Sta2, AA1, Sta13, Evt3, Evt4, Evt10, Evt12, Evt13, Evt19)
	set(Sta2, AE6, Sta3, Evt6)
	set(Sta2, AA2, Sta1, Evt16, Evt18)
	set(Sta2, AA5, Sta1, Evt17)
	// Sta3: awaiting local A-ASSOCIATE response.
	set(Sta3, AA8, Sta13, Evt3, Evt4, Evt6, Evt10, Evt12, Evt13, Evt19)
	set(Sta3, AE7, Sta6, Evt7)
	set(Sta3, AE8, Sta13, Evt8)
	set(Sta3, AA1, Sta13, Evt15)
	set(Sta3, AA3, Sta1, Evt16)
	set(Sta3, AA4, Sta1, Evt17)
	// Sta4: awaiting transport connection.
	set(Sta4, AE2, Sta5, Evt2)
	set(Sta4, AA2, Sta1, Evt15)
	set(Sta4, AA4, Sta1, Evt17)
	// Sta5: awaiting A-ASSOCIATE-AC or -RJ.
	set(Sta5, AE3, Sta6, Evt3)
	set(Sta5, AE4, Sta1, Evt4)
	set(Sta5, AA8, Sta13, Evt6, Evt10, Evt12, Evt13, Evt19)
	set(Sta5, AA1, Sta13, Evt15)
	set(Sta5, AA3, Sta1, Evt16)
	set(Sta5, AA4, Sta1, Evt17)
	set(Sta5, AA2, Sta1, Evt18)
	// Sta6: established.
	set(Sta6, AA8, Sta13, Evt3, Evt4, Evt6, Evt13, Evt19)
	set(Sta6, DT1, Sta6, Evt9)
	set(Sta6, DT2, Sta6, Evt10)
	set(Sta6, AR1, Sta7, Evt11)
	set(Sta6, AR2, Sta8, Evt12)
	set(Sta6, AA1, Sta13, Evt15)
	set(Sta6, AA3, Sta1, Evt16)
	set(Sta6, AA4, Sta1, Evt17)
	// Sta7: awaiting A-RELEASE-RP.
	set(Sta7, AA8, Sta13, Evt3, Evt4, Evt6, Evt19)
	set(Sta7, AR6, Sta7, Evt10)
	set(Sta7, AR8, Sta9, Evt12) // Sta9 for the requestor, Sta10 for the acceptor
	set(Sta7, AR3, Sta1, Evt13)
	set(Sta7, AA1, Sta13, Evt15)
	set(Sta7, AA3, Sta1, Evt16)
	set(Sta7, AA4, Sta1, Evt17)
	// Sta8: awaiting local A-RELEASE response.
	set(Sta8, AA8, Sta13, Evt3, Evt4, Evt6, Evt10, Evt12, Evt13, Evt19)
	set(Sta8, AR7, Sta8, Evt9)
	set(Sta8, AR4, Sta13, Evt14)
	set(Sta8, AA1, Sta13, Evt15)
	set(Sta8, AA3, Sta1, Evt16)
	set(Sta8, AA4, Sta1, Evt17)
	// Sta9..Sta12: release collisions.
	for _, s := range []State{Sta9, Sta10, Sta11, Sta12} {
		set(s, AA8, Sta13, Evt3, Evt4, Evt6, Evt10, Evt12, Evt19)
		set(s, AA1, Sta13, Evt15)
		set(s, AA3, Sta1, Evt16)
		set(s, AA4, Sta1, Evt17)
	}
	set(Sta9, AA8, Sta13, Evt13)
	set(Sta9, AR9, Sta11, Evt14)
	set(Sta10, AR10, Sta12, Evt13)
	set(Sta11, AR3, Sta1, Evt13)
	set(Sta12, AA8, Sta13, Evt13)
	set(Sta12, AR4, Sta13, Evt14)
	// Sta13: awaiting transport close.
	set(Sta13, AA6, Sta13, Evt3, Evt4, Evt10, Evt12, Evt13)
	set(Sta13, AA7, Sta13, Evt6, Evt19)
	set(Sta13, AA2, Sta1, Evt16, Evt18)
	set(Sta13, AR5, Sta1, Evt17)
	return t
}()

// Lookup returns the transition for event e in state s. ok is false for cells the
// standard leaves empty (an event that cannot happen in that state).
func Lookup(s State, e Event) (Transition, bool) {
	tr, ok := stateTable[s][e]
	return tr, ok
}

// String names the state as in the standard.
func (s State) String() string { return fmt.Sprintf("Sta%d", int(s)) }

// String names the event as in the standard.
func (e Event) String() string { return fmt.Sprintf("Evt%d", int(e)) }

// pduEvent maps a received PDU to its event.
func pduEvent(p PDU) Event {
	switch p.PDUType() {
	case TypeAAssociateAC:
		return Evt3
	case TypeAAssociateRJ:
		return Evt4
	case TypeAAssociateRQ:
		return Evt6
	case TypePDataTF:
		return Evt10
	case TypeAReleaseRQ:
		return Evt12
	case TypeAReleaseRP:
		return Evt13
	case TypeAAbort:
		return Evt16
	}
	return Evt19
}
