package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestReady: 200 when every check passes; 503 naming the one that failed.
func TestReady(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("index: connection refused") }
	for _, c := range []struct {
		checks map[string]func(context.Context) error
		code   int
		body   string
	}{
		{map[string]func(context.Context) error{"index": ok, "store": ok}, http.StatusOK, `{"index":"ok","store":"ok"}`},
		{map[string]func(context.Context) error{"index": down, "store": ok}, http.StatusServiceUnavailable, `{"index":"index: connection refused","store":"ok"}`},
	} {
		e := echo.New()
		rec := httptest.NewRecorder()
		if err := Ready(c.checks)(e.NewContext(httptest.NewRequest("GET", "/readyz", nil), rec)); err != nil {
			t.Fatal(err)
		}
		if rec.Code != c.code || rec.Body.String() != c.body+"\n" {
			t.Errorf("readyz = %d %s, want %d %s", rec.Code, rec.Body.String(), c.code, c.body)
		}
	}
}
