package dicomweb

// ZeroCopyBytes is how many bytes retrievals have handed to a connection zero-copy.
func ZeroCopyBytes() int64 { return zeroCopyBytes.Load() }
