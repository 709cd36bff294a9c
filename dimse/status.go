package dimse

// DIMSE status codes (PS3.7 Annex C, PS3.4 Annex B and C).
const (
	StatusSuccess                uint16 = 0x0000
	StatusPending                uint16 = 0xFF00
	StatusPendingWarning         uint16 = 0xFF01 // pending, optional keys not supported
	StatusCancel                 uint16 = 0xFE00
	StatusOutOfResources         uint16 = 0xA700
	StatusOutOfResourcesMatches  uint16 = 0xA701
	StatusOutOfResourcesSubops   uint16 = 0xA702
	StatusMoveDestinationUnknown uint16 = 0xA801
	StatusDataSetMismatch        uint16 = 0xA900 // data set does not match SOP class
	StatusCannotUnderstand       uint16 = 0xC000
	StatusSOPClassNotSupported   uint16 = 0x0122
	StatusNotAuthorized          uint16 = 0x0124
	StatusProcessingFailure      uint16 = 0x0110
	StatusDuplicateSOPInstance   uint16 = 0x0111
	StatusUnrecognizedOperation  uint16 = 0x0211
	StatusWarningCoercion        uint16 = 0xB000
)

// Status is the outcome of an operation as sent in a response: the code and, for
// failures and warnings, a comment (at most 64 characters, never patient data).
type Status struct {
	Code         uint16
	ErrorComment string
}
