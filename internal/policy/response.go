package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxResponse bounds how much of an answer is read: a real one is a few
// dozen bytes.
const maxResponse = 64 << 10

// answer is a policy server's reply to command=allow.
type answer struct {
	status    int
	hasStatus bool
	msg       string
}

var (
	errTooLarge  = fmt.Errorf("answer larger than %d bytes", maxResponse)
	errNotObject = errors.New("answer is not a JSON object")
)

// parseAnswer reads {"status":N,"msg":"…"} the way Dovecot's streaming
// parser does: the first "status" or "msg" key at any depth counts, a later
// one replaces it; status must be a JSON integer that fits an int, msg a
// string (an empty one is no message); other keys are skipped. Anything
// that is not a single JSON object is an error.
func parseAnswer(body []byte) (answer, error) {
	var a answer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return a, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return a, errNotObject
	}
	if err := a.readObject(dec); err != nil {
		return a, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return a, errors.New("data after the JSON object")
	}
	return a, nil
}

// readObject reads the members of an object whose '{' was read.
func (a *answer) readObject(dec *json.Decoder) error {
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, _ := tok.(string)
		switch key {
		case "status":
			if err := a.readStatus(dec); err != nil {
				return err
			}
		case "msg":
			if err := a.readMsg(dec); err != nil {
				return err
			}
		default:
			if err := a.skipValue(dec); err != nil {
				return err
			}
		}
	}
}

func (a *answer) readStatus(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	num, ok := tok.(json.Number)
	if !ok {
		return fmt.Errorf("status is %s, not a number", describe(tok))
	}
	// Dovecot's str_to_int: an optional '-' and digits, within an int.
	n, err := strconv.ParseInt(string(num), 10, 32)
	if err != nil {
		return fmt.Errorf("status %s is not an integer", num)
	}
	a.status, a.hasStatus = int(n), true
	return nil
}

func (a *answer) readMsg(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	s, ok := tok.(string)
	if !ok {
		return fmt.Errorf("msg is %s, not a string", describe(tok))
	}
	if s != "" {
		a.msg = s
	}
	return nil
}

// skipValue reads one value, looking inside objects and arrays for the
// keys that count.
func (a *answer) skipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return a.readObject(dec)
	case '[':
		for dec.More() {
			if err := a.skipValue(dec); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return fmt.Errorf("invalid JSON: unexpected %q", d)
}

func describe(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case json.Delim:
		return "an object or array"
	}
	return "something else"
}
