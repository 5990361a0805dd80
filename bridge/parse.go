package bridge

import (
	"bytes"
	"encoding/json"
	"github.com/inboxmq/inboxmq/acl"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Topics clients publish requests on. TopicGeneric carries every method,
// chosen by the payload's "_method_"; the others carry one method each.
const (
	TopicGeneric     = "im"
	TopicSendMsg     = "im/sendmsg"
	TopicDelMsg      = "im/delmsg"
	TopicConn        = "im/conn"
	TopicSystemAdmin = "im/systemadmin"
	TopicRead        = "im/read"
	TopicBlock       = "im/block"
	TopicUnblock     = "im/unblock"
	TopicTyping      = "im/typing"
	TopicEditMsg     = "im/editmsg"
)

// Limits on request fields that are fixed by the legacy protocol.
const (
	// DefaultMaxContent is Limits.MaxContent when it is left 0.
	DefaultMaxContent = 65536
	// MaxCIDBytes is the longest cid, in bytes.
	MaxCIDBytes = 128
	// MaxNicknameRunes is the longest nickname, in runes.
	MaxNicknameRunes = 64
	// MaxAvatarBytes is the longest avatar URL, in bytes.
	MaxAvatarBytes = 1024
	// MaxMsgIDBytes is the longest msgid: the decoded string for delmsg and
	// read, the raw JSON literal for systemadmin.
	MaxMsgIDBytes = 128
	// MaxEventBytes is the longest systemadmin event, in bytes.
	MaxEventBytes = 128
)

// Limits are the deployment's size limits for Parse.
type Limits struct {
	// MaxContent is the most bytes of msg (sendmsg), content (systemadmin)
	// and extra. 0 or less means DefaultMaxContent. Payloads longer than
	// 2*MaxContent+4096 bytes are refused before they are decoded.
	MaxContent int
}

func (l Limits) maxContent() int {
	if l.MaxContent <= 0 {
		return DefaultMaxContent
	}
	return l.MaxContent
}

// maxPayload leaves room for escaping (a 2-byte rune written as \uXXXX
// grows 3x, but legacy clients send UTF-8 as is) and for the other fields.
func (l Limits) maxPayload() int {
	mc := l.maxContent()
	if mc > (math.MaxInt-4096)/2 {
		return math.MaxInt
	}
	return 2*mc + 4096
}

// Method is the request a client makes. The zero Method is no method.
type Method uint8

// Methods, named after the legacy "_method_" values.
const (
	MethodSendMsg     Method = iota + 1 // send a direct message to UID
	MethodDelMsg                        // delete message MsgID
	MethodConn                          // announce the caller's nickname and avatar
	MethodSystemAdmin                   // send a system notice to UID, or to everyone
	MethodRead                          // mark UID's messages read up to MsgID
	MethodBlock                         // refuse UID's direct messages from now on
	MethodUnblock                       // accept UID's direct messages again
	MethodTyping                        // tell UID, if online, that the caller is typing
	MethodEditMsg                       // replace the text of message MsgID, sent to UID, with Msg
)

var methodNames = [...]string{
	MethodSendMsg:     "SendMsg",
	MethodDelMsg:      "DelMsg",
	MethodConn:        "Conn",
	MethodSystemAdmin: "SystemAdmin",
	MethodRead:        "Read",
	MethodBlock:       "Block",
	MethodUnblock:     "Unblock",
	MethodTyping:      "Typing",
	MethodEditMsg:     "EditMsg",
}

// String returns the legacy "_method_" name, e.g. "SendMsg", or "unknown".
func (m Method) String() string {
	if m == 0 || int(m) >= len(methodNames) {
		return "unknown"
	}
	return methodNames[m]
}

// methodByName matches a "_method_" value, ignoring case as the legacy
// server did.
func methodByName(name string) Method {
	for m := MethodSendMsg; int(m) < len(methodNames); m++ {
		if strings.EqualFold(name, methodNames[m]) {
			return m
		}
	}
	return 0
}

// topicMethod returns the method a topic carries; 0 with ok for the
// generic topic, where the payload chooses.
func topicMethod(topic string) (m Method, ok bool) {
	switch topic {
	case TopicGeneric:
		return 0, true
	case TopicSendMsg:
		return MethodSendMsg, true
	case TopicDelMsg:
		return MethodDelMsg, true
	case TopicConn:
		return MethodConn, true
	case TopicSystemAdmin:
		return MethodSystemAdmin, true
	case TopicRead:
		return MethodRead, true
	case TopicBlock:
		return MethodBlock, true
	case TopicUnblock:
		return MethodUnblock, true
	case TopicTyping:
		return MethodTyping, true
	case TopicEditMsg:
		return MethodEditMsg, true
	}
	return 0, false
}

// Request is a parsed client request. Fields a method does not use are "".
type Request struct {
	Method   Method
	UID      string // sendmsg/read: recipient or peer; block/unblock: the other user; delmsg: peer; conn: own uid; systemadmin: target ("" = everyone)
	Msg      string // sendmsg, editmsg: msg; systemadmin: content
	Extra    string // sendmsg: extra, opaque
	CID      string // client-side id to echo in MsgSent and Error envelopes
	MsgID    string // delmsg/read: the msgid; systemadmin: raw JSON literal of msgid ("0" by default)
	Nickname string // conn
	Avatar   string // conn
	MsgType  int    // systemadmin
	Event    string // systemadmin
}

// Parse parses payload, published on topic, into a Request.
//
// The payload must be one JSON object in valid UTF-8. Keys are matched
// exactly (case-sensitively); unknown keys are ignored, and so are fields
// a client has no say in, such as a sender's "from" or "nickname" on a
// sendmsg: the broker stamps those. A null value counts as absent. When a
// key appears twice the last value wins, as with JSON.parse in the Node.js
// server this replaces.
//
// "cid" is accepted on every method so that an Error envelope can carry it.
// On error, Parse returns an *Error and a Request with only Method and CID
// set, as far as they could be read before the error, so the broker can
// address its reply; every other field is "".
func Parse(topic string, payload []byte, lim Limits) (Request, error) {
	var req Request
	if err := parse(&req, topic, payload, lim); err != nil {
		return Request{Method: req.Method, CID: req.CID}, err
	}
	return req, nil
}

func parse(req *Request, topic string, payload []byte, lim Limits) *Error {
	m, ok := topicMethod(topic)
	if !ok {
		return errorf(CodeUnknownTopic, "unknown topic %q", clip(topic))
	}
	req.Method = m
	if len(payload) > lim.maxPayload() {
		return errorf(CodeTooLarge, "payload exceeds %d bytes", lim.maxPayload())
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD; refuse it
	// instead, so what is stored is what the client sent.
	if !utf8.Valid(payload) {
		return errorf(CodeBadJSON, "payload is not valid UTF-8")
	}
	// Checking the first byte refuses arrays, scalars and null without
	// scanning them, however deeply nested.
	if trimmed := bytes.TrimLeft(payload, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return errorf(CodeBadJSON, "payload must be a JSON object")
	}
	var o object
	if err := json.Unmarshal(payload, &o); err != nil {
		if se, ok := err.(*json.SyntaxError); ok {
			return errorf(CodeBadJSON, "invalid JSON at offset %d", se.Offset)
		}
		return errorf(CodeBadJSON, "payload must be a JSON object")
	}

	// cid first: it addresses the Error envelope if anything below fails.
	cid, e := o.str("cid", MaxCIDBytes)
	if e != nil {
		return e
	}
	req.CID = cid

	if name, present, e := o.optStr("_method_"); e != nil {
		return e
	} else if present {
		pm := methodByName(name)
		switch {
		case pm == 0:
			return errorf(CodeUnknownMethod, "unknown _method_ %q", clip(name))
		case m == 0:
			req.Method, m = pm, pm
		case pm != m:
			return errorf(CodeUnknownMethod, "_method_ %q does not match topic %s", clip(name), topic)
		}
	} else if m == 0 {
		return errorf(CodeMissingField, "_method_ is required on topic %s", topic)
	}

	switch m {
	case MethodSendMsg:
		return parseSendMsg(req, o, lim)
	case MethodDelMsg:
		return parseDelMsg(req, o)
	case MethodConn:
		return parseConn(req, o)
	case MethodSystemAdmin:
		return parseSystemAdmin(req, o, lim)
	case MethodRead:
		return parseRead(req, o)
	case MethodBlock, MethodUnblock:
		return parseBlock(req, o)
	case MethodTyping:
		return parseTyping(req, o)
	case MethodEditMsg:
		return parseEditMsg(req, o, lim)
	}
	return errorf(CodeInternal, "no parser for method %d", m)
}

func parseSendMsg(req *Request, o object, lim Limits) *Error {
	var e *Error
	if req.UID, e = o.uid("uid", true); e != nil {
		return e
	}
	if req.Msg, e = o.content("msg", lim); e != nil {
		return e
	}
	if req.Extra, e = o.str("extra", lim.maxContent()); e != nil {
		return e
	}
	return nil
}

func parseDelMsg(req *Request, o object) *Error {
	var e *Error
	if req.MsgID, e = o.msgID("msgid"); e != nil {
		return e
	}
	if req.UID, e = o.uid("uid", false); e != nil {
		return e
	}
	return nil
}

func parseConn(req *Request, o object) *Error {
	var e *Error
	if req.UID, e = o.uid("uid", false); e != nil {
		return e
	}
	if req.Nickname, e = o.str("nickname", -1); e != nil {
		return e
	}
	if n := utf8.RuneCountInString(req.Nickname); n > MaxNicknameRunes {
		return errorf(CodeTooLarge, "nickname exceeds %d characters", MaxNicknameRunes)
	}
	if req.Avatar, e = o.str("avatar", MaxAvatarBytes); e != nil {
		return e
	}
	return nil
}

func parseSystemAdmin(req *Request, o object, lim Limits) *Error {
	var e *Error
	if req.UID, e = o.uid("uid", false); e != nil {
		return e
	}
	if req.Msg, e = o.content("content", lim); e != nil {
		return e
	}
	if req.MsgType, e = o.msgType("msgtype"); e != nil {
		return e
	}
	if req.MsgID, e = o.msgIDLiteral("msgid"); e != nil {
		return e
	}
	if req.Event, e = o.str("event", MaxEventBytes); e != nil {
		return e
	}
	return nil
}

func parseRead(req *Request, o object) *Error {
	var e *Error
	if req.UID, e = o.uid("uid", true); e != nil {
		return e
	}
	if req.MsgID, e = o.msgID("msgid"); e != nil {
		return e
	}
	return nil
}

func parseBlock(req *Request, o object) *Error {
	var e *Error
	req.UID, e = o.uid("uid", true)
	return e
}

func parseTyping(req *Request, o object) *Error {
	var e *Error
	req.UID, e = o.uid("uid", true)
	return e
}

func parseEditMsg(req *Request, o object, lim Limits) *Error {
	var e *Error
	if req.UID, e = o.uid("uid", true); e != nil {
		return e
	}
	if req.MsgID, e = o.msgID("msgid"); e != nil {
		return e
	}
	if req.Msg, e = o.content("msg", lim); e != nil {
		return e
	}
	return nil
}

// object is a decoded request: each value is still raw JSON, validated by
// encoding/json, and is only ever read by the typed accessors below.
type object map[string]json.RawMessage

// lookup returns key's raw value; null counts as absent.
func (o object) lookup(key string) (json.RawMessage, bool) {
	raw, ok := o[key]
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// optStr reads an optional string field.
func (o object) optStr(key string) (s string, present bool, e *Error) {
	raw, ok := o.lookup(key)
	if !ok {
		return "", false, nil
	}
	if raw[0] != '"' {
		return "", true, errorf(CodeBadField, "%s must be a string", key)
	}
	s, e = decodeString(raw, key)
	return s, true, e
}

// str reads an optional string field of at most max bytes (no limit when
// max < 0); absent is "".
func (o object) str(key string, max int) (string, *Error) {
	s, _, e := o.optStr(key)
	if e != nil {
		return "", e
	}
	if max >= 0 && len(s) > max {
		return "", errorf(CodeTooLarge, "%s exceeds %d bytes", key, max)
	}
	return s, nil
}

// content reads a required, non-empty message body.
func (o object) content(key string, lim Limits) (string, *Error) {
	s, present, e := o.optStr(key)
	switch {
	case e != nil:
		return "", e
	case !present:
		return "", errorf(CodeMissingField, "%s is required", key)
	case s == "":
		return "", errorf(CodeEmptyMessage, "%s must not be empty", key)
	case len(s) > lim.maxContent():
		return "", errorf(CodeTooLarge, "%s exceeds %d bytes", key, lim.maxContent())
	}
	return s, nil
}

// uid reads a uid given as a JSON string or a non-negative integer. An
// optional uid that is "" counts as absent, as legacy clients send it.
func (o object) uid(key string, required bool) (string, *Error) {
	raw, ok := o.lookup(key)
	if !ok {
		if required {
			return "", errorf(CodeMissingField, "%s is required", key)
		}
		return "", nil
	}
	var s string
	switch c := raw[0]; {
	case c == '"':
		var e *Error
		if s, e = decodeString(raw, key); e != nil {
			return "", e
		}
		if s == "" && !required {
			return "", nil
		}
	case c == '-' || isDigit(c):
		// The literal is kept as text: no float64 round trip, so uids
		// beyond 2^53 survive, unlike in the Node.js server.
		if !IsDigits(raw) {
			return "", errorf(CodeBadUID, "%s must be a non-negative integer or a string", key)
		}
		s = string(raw)
	default:
		return "", errorf(CodeBadField, "%s must be a number or string", key)
	}
	if !acl.ValidUID(s) {
		return "", errorf(CodeBadUID, "%s %q is not 1 to 64 of [A-Za-z0-9_.-]", key, clip(s))
	}
	return s, nil
}

// msgID reads a required message id given as a non-empty string or a
// non-negative integer, which becomes its decimal string.
func (o object) msgID(key string) (string, *Error) {
	raw, ok := o.lookup(key)
	if !ok {
		return "", errorf(CodeMissingField, "%s is required", key)
	}
	var s string
	switch c := raw[0]; {
	case c == '"':
		var e *Error
		if s, e = decodeString(raw, key); e != nil {
			return "", e
		}
		if s == "" {
			return "", errorf(CodeBadField, "%s must not be empty", key)
		}
	case c == '-' || isDigit(c):
		if !IsDigits(raw) {
			return "", errorf(CodeBadField, "%s must be a string or a non-negative integer", key)
		}
		s = string(raw)
	default:
		return "", errorf(CodeBadField, "%s must be a string or a non-negative integer", key)
	}
	if len(s) > MaxMsgIDBytes {
		return "", errorf(CodeTooLarge, "%s exceeds %d bytes", key, MaxMsgIDBytes)
	}
	return s, nil
}

// msgIDLiteral reads systemadmin's msgid, kept as the raw JSON literal the
// admin sent so that SystemNot can echo it unchanged.
func (o object) msgIDLiteral(key string) (string, *Error) {
	raw, ok := o.lookup(key)
	if !ok {
		return "0", nil
	}
	if c := raw[0]; c != '"' && c != '-' && !isDigit(c) {
		return "", errorf(CodeBadField, "%s must be a number or string", key)
	}
	lit := string(raw)
	if e := validateMsgIDLiteral(lit); e != nil {
		return "", e
	}
	return lit, nil
}

// msgType reads an optional integer in the int32 range; absent is 0.
func (o object) msgType(key string) (int, *Error) {
	raw, ok := o.lookup(key)
	if !ok {
		return 0, nil
	}
	// ParseInt refuses fractions and exponents; JSON has no '+' or '_'.
	n, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil {
		return 0, errorf(CodeBadField, "%s must be an integer", key)
	}
	return int(n), nil
}

// decodeString decodes a JSON string literal already validated by
// encoding/json.
func decodeString(raw json.RawMessage, key string) (string, *Error) {
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		// No escapes: the literal's body is the value (the payload is
		// valid UTF-8 and the scanner refused control characters).
		return string(body), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errorf(CodeBadField, "%s must be a string", key)
	}
	return s, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// IsDigits reports whether b is a non-empty run of ASCII digits: a JSON
// number that is a uid or a msgid.
func IsDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
