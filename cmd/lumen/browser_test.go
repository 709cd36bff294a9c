package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// browser is a headless Chromium for a test, recording what goes wrong in the pages:
// uncaught exceptions, console errors, failed requests, error answers from Lumen, and
// requests to other hosts than loopback.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	bad  []string
	away []string
	// quiet, while set, stops recording failed requests and error answers (a test that
	// provokes refusals).
	quiet bool
}

// newBrowser starts Chromium with the given extra options for at most timeout; lumen
// is the origin whose error answers count as problems.
func newBrowser(t *testing.T, lumen string, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	chromium := tools.Require(t, "chromium", "Chromium")
	opts := append(append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1200, 900)), extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancel(); cancelB(); cancelA() })
	b := &browser{ctx: ctx}
	err := chromedp.Listen(bctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.bad = append(b.bad, "exception: "+exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				b.bad = append(b.bad, "console.error: "+strings.Join(parts, " "))
			}
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; !strings.HasPrefix(u, "http://127.0.0.1") && !strings.HasPrefix(u, "data:") {
				b.away = append(b.away, u)
			}
		case *network.EventResponseReceived:
			if strings.HasPrefix(ev.Response.URL, lumen) && ev.Response.Status >= 400 && !b.quiet {
				b.bad = append(b.bad, fmt.Sprintf("HTTP %d from Lumen: %s", int(ev.Response.Status), ev.Response.URL))
			}
		case *network.EventLoadingFailed:
			if !ev.Canceled && !b.quiet {
				b.bad = append(b.bad, "request failed: "+ev.ErrorText)
			}
		}
	})
	if err != nil {
		t.Fatalf("chromium (%s): %v", chromium, err)
	}
	return b
}

// setQuiet turns the recording of failed requests off or on.
func (b *browser) setQuiet(q bool) {
	b.mu.Lock()
	b.quiet = q
	b.mu.Unlock()
}

// check fails t for every problem recorded, and for requests that left loopback when
// offline is set.
func (b *browser) check(t *testing.T, offline bool) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.bad {
		t.Errorf("browser: %s", p)
	}
	if offline && len(b.away) > 0 {
		t.Errorf("requests that left loopback: %v", b.away)
	}
}

// shot keeps a screenshot under LUMEN_TEST_ARTIFACTS, if set.
func shot(name string, img []byte) {
	if dir := os.Getenv("LUMEN_TEST_ARTIFACTS"); dir != "" {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, name), img, 0o644)
	}
}
