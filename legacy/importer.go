package legacy

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/inboxmq/inboxmq/inbox"
)

// Store is what an import needs of the inbox store; every inbox.Store is one.
type Store interface {
	inbox.Submitter
	Read(ctx context.Context, uid string, from uint64, limit int) ([]inbox.Message, error)
}

// Source holds the legacy hashes.
type Source interface {
	// Len counts the fields of hash.
	Len(ctx context.Context, hash string) (int, error)
	// Scan calls fn with each field of hash and its value, each field once.
	Scan(ctx context.Context, hash string, fn func(field string, value []byte) error) error
	// Replace sets field to value (nil: deletes it) only while it still
	// holds old; changed reports that it did not (the legacy server
	// wrote to it meanwhile), and then nothing was written.
	Replace(ctx context.Context, hash, field string, old, value []byte) (changed bool, err error)
}

// Options configure an Importer.
type Options struct {
	Store  Store
	Source Source
	// DryRun reads and checks everything and writes nothing.
	DryRun bool
	// Delete removes what was imported (or found imported) from the legacy
	// hashes; malformed entries stay.
	Delete bool
	// MaxContent is inbox.max_message_bytes (0: MaxContent).
	MaxContent int
	// Progress, if set, is told after every 100 fields and at the end.
	Progress func(hash string, done, total int)
}

// Importer imports legacy hashes into the inbox store.
type Importer struct {
	opts Options
	// imported holds, per uid, the import ids found in its inbox (read
	// once per uid and run) and those this run added.
	imported map[string]map[string]bool
}

// New returns an Importer.
func New(opts Options) (*Importer, error) {
	if opts.Store == nil || opts.Source == nil {
		return nil, errors.New("legacy: a Store and a Source are required")
	}
	return &Importer{opts: opts, imported: map[string]map[string]bool{}}, nil
}

// MarkerPrefix starts the CID of every imported inbox entry; the rest is
// the entry's import id. It is how a re-run recognises what it imported.
const MarkerPrefix = "legacy:"

// maxSamples bounds the malformed entries a Summary lists one by one.
const maxSamples = 50

// Summary is what an import of one hash did.
type Summary struct {
	Hash      string
	Fields    int            // fields read
	Imported  int            // entries appended (DryRun: that would be)
	Skipped   int            // entries found imported by an earlier run
	Malformed int            // entries (or whole fields) left alone
	Reasons   map[string]int // malformed, by reason
	Samples   []string       // the first malformed ones: "hash field[index]: reason"
	Cleared   int            // Delete: fields removed or trimmed
	Changed   int            // Delete: fields the legacy server changed meanwhile, left as they are
}

func (s *Summary) malformed(field string, index int, err error) {
	s.Malformed++
	s.Reasons[err.Error()]++
	if len(s.Samples) < maxSamples {
		where := field
		if index >= 0 {
			where = fmt.Sprintf("%s[%d]", field, index)
		}
		s.Samples = append(s.Samples, fmt.Sprintf("%s %s: %s", s.Hash, clip(where), err))
	}
}

// ReasonList returns Reasons as "reason: n" lines, most frequent first.
func (s *Summary) ReasonList() []string {
	out := make([]string, 0, len(s.Reasons))
	for r := range s.Reasons {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if s.Reasons[out[i]] != s.Reasons[out[j]] {
			return s.Reasons[out[i]] > s.Reasons[out[j]]
		}
		return out[i] < out[j]
	})
	for i, r := range out {
		out[i] = fmt.Sprintf("%s: %d", r, s.Reasons[r])
	}
	return out
}

// Import imports every field of hash, which holds entries of kind, in the
// order of each field's array. It stops at the first store or source
// error; what it imported until then is found on a re-run.
func (im *Importer) Import(ctx context.Context, kind Kind, hash string) (Summary, error) {
	sum := Summary{Hash: hash, Reasons: map[string]int{}}
	total, err := im.opts.Source.Len(ctx, hash)
	if err != nil {
		return sum, fmt.Errorf("count %s: %w", hash, err)
	}
	err = im.opts.Source.Scan(ctx, hash, func(field string, value []byte) error {
		sum.Fields++
		if err := im.field(ctx, kind, &sum, field, value); err != nil {
			return err
		}
		if im.opts.Progress != nil && sum.Fields%100 == 0 {
			im.opts.Progress(hash, sum.Fields, max(total, sum.Fields))
		}
		return nil
	})
	if im.opts.Progress != nil {
		im.opts.Progress(hash, sum.Fields, max(total, sum.Fields))
	}
	if err != nil {
		return sum, fmt.Errorf("import %s: %w", hash, err)
	}
	return sum, nil
}

func (im *Importer) field(ctx context.Context, kind Kind, sum *Summary, field string, value []byte) error {
	entries, err := ParseField(kind, field, value, im.opts.MaxContent)
	if err != nil {
		sum.malformed(field, -1, err)
		return nil
	}
	var keep [][]byte // what stays in the legacy hash: the malformed entries
	for _, e := range entries {
		if e.Err != nil {
			sum.malformed(field, e.Index, e.Err)
			keep = append(keep, e.Raw)
			continue
		}
		done, err := im.isImported(ctx, e.UID, e.ID)
		if err != nil {
			return err
		}
		switch {
		case done:
			sum.Skipped++
		case im.opts.DryRun:
			sum.Imported++
		default:
			if err := im.append(ctx, e); err != nil {
				return fmt.Errorf("field %s entry %d: %w", clip(field), e.Index, err)
			}
			sum.Imported++
		}
	}
	if !im.opts.Delete || im.opts.DryRun || len(keep) == len(entries) {
		return nil
	}
	var rest []byte
	if len(keep) > 0 {
		rest = append(rest, '[')
		for i, raw := range keep {
			if i > 0 {
				rest = append(rest, ',')
			}
			rest = append(rest, raw...)
		}
		rest = append(rest, ']')
	}
	changed, err := im.opts.Source.Replace(ctx, sum.Hash, field, value, rest)
	if err != nil {
		return fmt.Errorf("trim field %s: %w", clip(field), err)
	}
	if changed {
		sum.Changed++ // a re-run imports the new entries and finds the rest
	} else {
		sum.Cleared++
	}
	return nil
}

// isImported reports whether uid's inbox holds the entry with import id.
func (im *Importer) isImported(ctx context.Context, uid, id string) (bool, error) {
	ids, ok := im.imported[uid]
	if !ok {
		ids = map[string]bool{}
		const page = 1000
		for from := uint64(0); ; {
			msgs, err := im.opts.Store.Read(ctx, uid, from, page)
			if err != nil {
				return false, fmt.Errorf("read inbox %s: %w", uid, err)
			}
			for _, m := range msgs {
				if m.UID == uid && m.Kind != inbox.KindSent && strings.HasPrefix(m.CID, MarkerPrefix) {
					ids[strings.TrimPrefix(m.CID, MarkerPrefix)] = true
				}
			}
			if len(msgs) < page {
				break
			}
			from = msgs[len(msgs)-1].Seq + 1
		}
		im.imported[uid] = ids
	}
	return ids[id], nil
}

// append stores one entry as if sent when it was, marked as imported.
func (im *Importer) append(ctx context.Context, e Entry) error {
	marker := MarkerPrefix + e.ID
	extra := flaggedExtra(e.Extra, e.Time, e.ID)
	var msgs []inbox.Message
	if e.Kind == KindNotice {
		msgs = []inbox.Message{{UID: e.UID, Kind: inbox.KindNotice, Peer: ImporterUID, Content: e.Content,
			MsgType: e.MsgType, Event: e.Event, Ref: e.Ref, Extra: extra, CID: marker}}
	} else {
		msgs = []inbox.Message{
			{UID: e.UID, Kind: inbox.KindDirect, Peer: e.From, Nickname: e.Nickname, Avatar: e.Avatar,
				Content: e.Content, Extra: extra, CID: marker},
			{UID: e.From, Kind: inbox.KindSent, Peer: e.UID, Content: e.Content, Extra: extra, CID: marker},
		}
	}
	// The request key makes two imports running at once store it once.
	_, err := im.opts.Store.Submit(ctx, inbox.Request{Msgs: msgs, Key: "legacy " + e.ID, Sum: sha256.Sum256([]byte(e.ID))})
	if err != nil && !errors.Is(err, inbox.ErrPartial) {
		return err
	}
	im.imported[e.UID][e.ID] = true
	return nil
}

// ImporterUID is the sender stamped on imported notices.
const ImporterUID = "legacy-import"

// flaggedExtra adds {"imported":{"time":ms,"id":"..."}} to an entry's
// extra: the original send time and the import id, for apps to show. An
// extra that is not a JSON object (an app's own string) is kept as it is;
// the entry's CID still marks it.
func flaggedExtra(extra string, ms int64, id string) string {
	flag, err := json.Marshal(map[string]any{"time": ms, "id": id})
	if err != nil {
		return extra
	}
	obj := map[string]json.RawMessage{}
	if extra != "" {
		if json.Unmarshal([]byte(extra), &obj) != nil || obj == nil {
			return extra
		}
		if _, taken := obj["imported"]; taken {
			return extra
		}
	}
	obj["imported"] = flag
	out, err := json.Marshal(obj)
	if err != nil {
		return extra
	}
	return string(out)
}
