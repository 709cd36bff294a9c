package mllp

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestClientDeadlineAndCancel(t *testing.T) {
	// A receiver that answers nothing but messages with control ID "ECHO".
	h := HandlerFunc(func(_ context.Context, msg []byte, _ ConnInfo) []byte {
		if controlID(msg) == "ECHO" {
			return ackFor(msg, "AA")
		}
		return nil
	})
	addr := start(t, &Server{Handler: h, Logger: testLogger(t)}, nil)

	c := dial(t, addr, nil)
	send(t, c, adt("ECHO"))
	// A message with framing bytes is refused before anything is written.
	if _, err := c.Send(context.Background(), []byte("MSH|\x1c")); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("framing byte: %v", err)
	}
	send(t, c, adt("ECHO"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if _, err := c.Send(ctx, adt("SILENT")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no answer: %v, want the deadline", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("Send returned after %v, deadline 200 ms", d)
	}
	if _, err := c.Send(context.Background(), adt("ECHO")); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("after a failed Send: %v, want ErrClientClosed", err)
	}

	c2 := dial(t, addr, nil)
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	if _, err := c2.Send(ctx2, adt("SILENT")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// A deadline that passes after the answer leaves the client usable.
	c3 := dial(t, addr, nil)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	send := func(ctx context.Context) error { _, err := c3.Send(ctx, adt("ECHO")); return err }
	if err := send(ctx3); err != nil {
		t.Fatal(err)
	}
	<-ctx3.Done()
	cancel3()
	if err := send(context.Background()); err != nil {
		t.Fatalf("after an expired context: %v", err)
	}
}
