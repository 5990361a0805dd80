package events

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

func TestEventMarshalJSON(t *testing.T) {
	at := time.UnixMilli(1735689600123)
	tests := []struct {
		name    string
		e       Event
		want    string
		wantErr error // nil: success; errAny: any error
	}{
		{
			name: "push",
			e: Event{Type: TypePush, Time: at, Data: map[string]any{
				"uid": "10021", "msgid": "382697444573446144", "from": "10001",
				"nickname": "张三", "preview": "你好", "unread": 3,
			}},
			want: `{"event":"push","time":1735689600123,"from":"10001","msgid":"382697444573446144","nickname":"张三","preview":"你好","uid":"10021","unread":3}`,
		},
		{
			name: "no data",
			e:    Event{Type: TypeLogin, Time: at},
			want: `{"event":"login","time":1735689600123}`,
		},
		{
			name: "empty data",
			e:    Event{Type: TypeLogout, Time: at, Data: map[string]any{}},
			want: `{"event":"logout","time":1735689600123}`,
		},
		{
			name: "no html escaping, control chars escaped",
			e:    Event{Type: "x<y>", Time: at, Data: map[string]any{"preview": "a<b>&\"\n"}},
			want: `{"event":"x<y>","time":1735689600123,"preview":"a<b>&\"\n"}`,
		},
		{
			name: "nested values",
			e:    Event{Type: TypeMessage, Time: at, Data: map[string]any{"to": []string{"1", "2"}, "meta": map[string]int{"b": 2, "a": 1}}},
			want: `{"event":"message","time":1735689600123,"meta":{"a":1,"b":2},"to":["1","2"]}`,
		},
		{name: "deny: no type", e: Event{Time: at}, wantErr: ErrNoType},
		{name: "deny: data key event", e: Event{Type: TypePush, Data: map[string]any{"event": "x"}}, wantErr: ErrReservedKey},
		{name: "deny: data key time", e: Event{Type: TypePush, Data: map[string]any{"time": 1}}, wantErr: ErrReservedKey},
		{name: "deny: unencodable value", e: Event{Type: TypePush, Data: map[string]any{"c": make(chan int)}}, wantErr: errAny},
		{name: "deny: NaN", e: Event{Type: TypePush, Data: map[string]any{"n": math.NaN()}}, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.e.MarshalJSON()
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("MarshalJSON: %v", err)
			case tt.wantErr == errAny && err == nil, tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("MarshalJSON = %s, %v; want error %v", got, err, tt.wantErr)
			case tt.wantErr != nil:
				return
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("MarshalJSON is not valid JSON: %s", got)
			}
		})
	}
}

// errAny in a table means "some error".
var errAny = errors.New("any error")

func TestEventMarshalJSONZeroTimeIsNow(t *testing.T) {
	before := time.Now().UnixMilli()
	b, err := Event{Type: TypeLogin}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Time int64 `json:"time"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if after := time.Now().UnixMilli(); v.Time < before || v.Time > after {
		t.Errorf("time = %d, want within [%d, %d]", v.Time, before, after)
	}
}
