package send

import (
	"context"
	"fmt"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// Finder is the index's matching (index.Index has it).
type Finder interface {
	Find(ctx context.Context, q index.Query) (*index.Result, error)
}

// Select resolves what to send: a study, series or instance by UID, and/or
// query keys (keyword or tag = value, DICOM matching), at image level.
func Select(ctx context.Context, idx Finder, study, series, instance string, query []string) ([]index.Instance, error) {
	q := index.Query{Level: index.ImageLevel}
	for _, u := range []struct {
		tag dcm.Tag
		v   string
	}{{dcm.TagStudyInstanceUID, study}, {dcm.TagSeriesInstanceUID, series}, {dcm.TagSOPInstanceUID, instance}} {
		if u.v == "" {
			continue
		}
		if !dcm.ValidUID(u.v) {
			return nil, fmt.Errorf("%q is not a valid UID", u.v)
		}
		q.Filters = append(q.Filters, index.Filter{Tag: u.tag, Value: u.v})
	}
	for _, kv := range query {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("query %q: want key=value", kv)
		}
		tag, err := dcm.ParseTag(k)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", kv, err)
		}
		q.Filters = append(q.Filters, index.Filter{Tag: tag, Value: v})
	}
	if len(q.Filters) == 0 {
		return nil, fmt.Errorf("say what to send: a study, series or instance UID, or query keys")
	}
	res, err := idx.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(res.Ignored) > 0 {
		return nil, fmt.Errorf("query keys the index cannot match: %v", res.Ignored)
	}
	return res.Instances, nil
}
