package dicomweb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/render"
)

// ThumbnailPrefix is the object-store prefix of cached thumbnails:
// thumbnails/<SOP Instance UID>/<hash of the rendering parameters>.
const ThumbnailPrefix = "thumbnails/"

// DefaultThumbnailLRU is how many thumbnails the in-memory cache keeps by default
// (about 5 KB each).
const DefaultThumbnailLRU = 4096

// cachedImage is an encoded rendering.
type cachedImage struct {
	media string
	data  []byte
}

// thumbCache keeps thumbnails in a bounded in-memory LRU in front of the object store,
// so every replica shares what one has rendered.
type thumbCache struct {
	once    sync.Once
	lru     *lru.Cache[string, cachedImage]
	pending sync.WaitGroup // background store writes
	// addMu orders pending.Add against Wait: a WaitGroup must not be added to from zero
	// while it is being waited on, and the background worker may render (and add) while
	// the server shuts down.
	addMu sync.Mutex
}

// Wait blocks until background work (thumbnails being written to the store) is done.
// It may be called while requests or the background worker still run; writes they start
// meanwhile wait for it to return.
func (s *Service) Wait() {
	s.cache.addMu.Lock()
	defer s.cache.addMu.Unlock()
	s.cache.pending.Wait()
}

func (s *Service) thumbs() *lru.Cache[string, cachedImage] {
	s.cache.once.Do(func() {
		n := s.ThumbnailLRU
		if n <= 0 {
			n = DefaultThumbnailLRU
		}
		s.cache.lru, _ = lru.New[string, cachedImage](n)
	})
	return s.cache.lru
}

// thumbKey is the store key of a thumbnail rendering.
func thumbKey(sopUID, seed string) string {
	h := sha256.Sum256([]byte(seed))
	return ThumbnailPrefix + sopUID + "/" + hex.EncodeToString(h[:16])
}

// cachedThumbnail looks a thumbnail up in memory, then in the store.
func (s *Service) cachedThumbnail(ctx context.Context, key string) (cachedImage, bool) {
	if v, ok := s.thumbs().Get(key); ok {
		return v, true
	}
	rc, _, err := s.Store.Get(ctx, key)
	if err != nil {
		return cachedImage{}, false
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 8<<20))
	if err != nil || len(b) < 16 {
		return cachedImage{}, false
	}
	// The media type is the first line.
	i := bytes.IndexByte(b, '\n')
	if i < 0 || !strings.HasPrefix(string(b[:i]), "image/") {
		return cachedImage{}, false
	}
	v := cachedImage{media: string(b[:i]), data: b[i+1:]}
	s.thumbs().Add(key, v)
	return v, true
}

// keepThumbnail stores a rendering in memory now and in the store in the background
// (best effort: a failure only costs a later re-render).
func (s *Service) keepThumbnail(key string, v cachedImage) {
	s.thumbs().Add(key, v)
	s.cache.addMu.Lock()
	s.cache.pending.Add(1)
	s.cache.addMu.Unlock()
	go func() {
		defer s.cache.pending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		body := append([]byte(v.media+"\n"), v.data...)
		if _, err := s.Store.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
			s.log().Warn("dicomweb: thumbnail not cached in the store", "key", key, "err", err)
		}
	}()
}

// DropThumbnails removes the cached thumbnails of an instance, in memory and in the
// store (after DELETE, and after a rejected instance is purged).
func (s *Service) DropThumbnails(ctx context.Context, sopUID string) {
	prefix := ThumbnailPrefix + sopUID + "/"
	for _, k := range s.thumbs().Keys() {
		if strings.HasPrefix(k, prefix) {
			s.thumbs().Remove(k)
		}
	}
	for o, err := range s.Store.List(ctx, prefix) {
		if err != nil {
			return
		}
		_ = s.Store.Delete(ctx, o.Key)
	}
}

// defaultThumbnail is the request a thumbnail URL without parameters makes.
func defaultThumbnail() *renderRequest {
	return &renderRequest{media: "image/jpeg", quality: 90, vw: thumbnailSize, vh: thumbnailSize}
}

// RunThumbnails does the thumbnail jobs the index queues when studies change (any
// replica may run it; a job is leased to one at a time) until ctx ends: ThumbnailJobs
// run by an index.Worker of its own.
func (s *Service) RunThumbnails(ctx context.Context, q index.Queue, worker string, poll time.Duration) {
	w := &index.Worker{Queue: q, Name: worker, Log: s.log()}
	w.Handle(s.ThumbnailJobs(worker, poll))
	w.Run(ctx)
}

// ThumbnailJobs is the kind of job (index.JobThumbnails) that renders, when a study has
// changed, the default thumbnail of the middle instance of every series, which also
// serves the study thumbnail, so that the first EMR view finds them cached. One study
// at a time; the queue is polled every poll (default 2 s, 5 × poll after it fails); a
// failed job is retried after 30 s × its attempts and given up after 5. worker names
// the worker in its log lines.
func (s *Service) ThumbnailJobs(worker string, poll time.Duration) index.JobKind {
	if poll <= 0 {
		poll = 2 * time.Second
	}
	return index.JobKind{
		Kind:      index.JobThumbnails,
		Batch:     1,
		Poll:      poll,
		QueueWait: 5 * poll,
		Lease:     5 * time.Minute,
		Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
			for _, j := range jobs {
				err := s.studyThumbnails(ctx, j.Key)
				switch {
				case err == nil:
					s.log().Info("dicomweb: study thumbnails rendered", "worker", worker, "job", j.ID)
					settle(j, index.Done)
				case j.Attempts >= 4:
					s.log().Warn("dicomweb: thumbnails given up after 5 attempts", "err", err)
					settle(j, index.Done)
				default:
					s.log().Info("dicomweb: thumbnails will be retried", "attempt", j.Attempts+1, "err", err)
					settle(j, index.RetryAfter(time.Duration(j.Attempts+1)*30*time.Second))
				}
			}
		},
		OnError: func(j *index.Job, err error) {
			if j == nil {
				s.log().Warn("dicomweb: thumbnail queue unavailable", "err", err)
			} else {
				s.log().Warn("dicomweb: thumbnail job not settled", "err", err)
			}
		},
	}
}

// studyThumbnails renders (into the cache) the default thumbnail of every series of a
// study.
func (s *Service) studyThumbnails(ctx context.Context, studyUID string) error {
	res, err := s.Index.Find(ctx, index.Query{Level: index.ImageLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: studyUID}}})
	if err != nil {
		return err
	}
	series := map[string][]index.Instance{}
	var order []string
	for _, in := range res.Instances {
		if _, ok := series[in.SeriesInstanceUID]; !ok {
			order = append(order, in.SeriesInstanceUID)
		}
		series[in.SeriesInstanceUID] = append(series[in.SeriesInstanceUID], in)
	}
	for _, uid := range order {
		list := series[uid]
		full, err := s.Index.Instance(ctx, list[len(list)/2].SOPInstanceUID)
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if _, err := s.thumbnailOrRendered(ctx, full, -1, defaultThumbnail(), true); err != nil && !errors.Is(err, render.ErrUnsupported) {
			return err
		}
	}
	return nil
}
