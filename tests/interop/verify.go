// Command verify checks a signed checkpoint and Merkle proofs of the evidence
// custody log with an implementation that is not the project's own: Go's
// golang.org/x/mod/sumdb/note (signed notes) and golang.org/x/mod/sumdb/tlog
// (RFC 6962 hashing and proofs), plus the standard library. It parses the
// checkpoint's three lines itself.
//
// Input (stdin, JSON):
//
//	{"vkey": "<name>+<hex8>+<base64>",
//	 "checkpoint": "<signed note text>",
//	 "inclusions": [{"index": I, "entry": "<base64 entry bytes>", "proof": ["<base64>", ...]}],
//	 "consistencies": [{"old_size": A, "old_root": "<base64>", "proof": ["<base64>", ...]}]}
//
// Output (stdout, JSON): {"ok": true, "origin", "size", "root", "inclusions",
// "consistencies"} and exit status 0, or {"ok": false, "error": "..."} and
// exit status 1 (verification failed) or 2 (unusable input).
//
// Build (GOPATH mode, no network):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o verify verify.go
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index *int64   `json:"index"`
	Entry *string  `json:"entry"`
	Proof []string `json:"proof"`
}

type consistency struct {
	OldSize *int64   `json:"old_size"`
	OldRoot *string  `json:"old_root"`
	Proof   []string `json:"proof"`
}

type input struct {
	VKey          string        `json:"vkey"`
	Checkpoint    string        `json:"checkpoint"`
	Inclusions    []inclusion   `json:"inclusions"`
	Consistencies []consistency `json:"consistencies"`
}

type result struct {
	OK            bool   `json:"ok"`
	Error         string `json:"error,omitempty"`
	Origin        string `json:"origin,omitempty"`
	Size          *int64 `json:"size,omitempty"`
	Root          string `json:"root,omitempty"`
	Inclusions    int    `json:"inclusions"`
	Consistencies int    `json:"consistencies"`
}

// inputError marks a problem with the request rather than a failed check.
type inputError struct{ msg string }

func (e inputError) Error() string { return e.msg }

func decode64(s, what string) ([]byte, error) {
	// Strict: reject non-zero padding bits, so one value has one spelling.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid base64: %v", what, err)
	}
	return b, nil
}

func decodeHash(s, what string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := decode64(s, what)
	if err != nil {
		return h, err
	}
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("%s: %d bytes, want %d", what, len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func decodeProof(list []string, what string) ([]tlog.Hash, error) {
	proof := make([]tlog.Hash, 0, len(list))
	for i, s := range list {
		h, err := decodeHash(s, fmt.Sprintf("%s[%d]", what, i))
		if err != nil {
			return nil, err
		}
		proof = append(proof, h)
	}
	return proof, nil
}

// parseCheckpoint reads the c2sp.org/tlog-checkpoint note text: origin, size
// (decimal, no leading zeros), base64 root hash, optional non-empty extension lines.
func parseCheckpoint(text string) (origin string, size int64, root tlog.Hash, err error) {
	if !strings.HasSuffix(text, "\n") {
		return "", 0, root, fmt.Errorf("checkpoint text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return "", 0, root, fmt.Errorf("checkpoint has %d lines, want at least 3", len(lines))
	}
	origin = lines[0]
	if origin == "" {
		return "", 0, root, fmt.Errorf("checkpoint origin is empty")
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, root, fmt.Errorf("checkpoint size %q is not a canonical decimal", lines[1])
	}
	root, err = decodeHash(lines[2], "checkpoint root hash")
	if err != nil {
		return "", 0, root, err
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return "", 0, root, fmt.Errorf("checkpoint has an empty extension line")
		}
	}
	return origin, size, root, nil
}

func run(in input, res *result) error {
	verifier, err := note.NewVerifier(in.VKey)
	if err != nil {
		return inputError{fmt.Sprintf("verifier key: %v", err)}
	}
	n, err := note.Open([]byte(in.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint signature: %v", err)
	}
	origin, size, root, err := parseCheckpoint(n.Text)
	if err != nil {
		return err
	}
	if origin != verifier.Name() {
		return fmt.Errorf("checkpoint origin %q is not the key name %q", origin, verifier.Name())
	}
	res.Origin, res.Size, res.Root = origin, &size, base64.StdEncoding.EncodeToString(root[:])

	for i, inc := range in.Inclusions {
		what := fmt.Sprintf("inclusions[%d]", i)
		if inc.Index == nil || inc.Entry == nil {
			return inputError{what + ": index and entry are required"}
		}
		entry, err := decode64(*inc.Entry, what+".entry")
		if err != nil {
			return err
		}
		proof, err := decodeProof(inc.Proof, what+".proof")
		if err != nil {
			return err
		}
		leaf := tlog.RecordHash(entry)
		if err := tlog.CheckRecord(proof, size, root, *inc.Index, leaf); err != nil {
			return fmt.Errorf("%s: entry %d in tree of size %d: %v", what, *inc.Index, size, err)
		}
		res.Inclusions++
	}

	for i, c := range in.Consistencies {
		what := fmt.Sprintf("consistencies[%d]", i)
		if c.OldSize == nil || c.OldRoot == nil {
			return inputError{what + ": old_size and old_root are required"}
		}
		oldRoot, err := decodeHash(*c.OldRoot, what+".old_root")
		if err != nil {
			return err
		}
		proof, err := decodeProof(c.Proof, what+".proof")
		if err != nil {
			return err
		}
		old := *c.OldSize
		if old < 0 || old > size {
			return fmt.Errorf("%s: old size %d outside [0, %d]", what, old, size)
		}
		if old == 0 {
			// tlog.CheckTree starts at size 1; the empty tree is SHA-256("")
			// (RFC 9162 section 2.1.1) and needs an empty proof.
			empty := sha256.Sum256(nil)
			if len(proof) != 0 || !bytes.Equal(oldRoot[:], empty[:]) {
				return fmt.Errorf("%s: bad proof from the empty tree", what)
			}
		} else if err := tlog.CheckTree(proof, size, root, old, oldRoot); err != nil {
			return fmt.Errorf("%s: from size %d to %d: %v", what, old, size, err)
		}
		res.Consistencies++
	}
	return nil
}

func main() {
	res := result{}
	status := 0
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	var in input
	var err error
	if err = dec.Decode(&in); err != nil {
		err = inputError{fmt.Sprintf("input is not the expected JSON: %v", err)}
	} else {
		err = run(in, &res)
	}
	if err != nil {
		res.OK, res.Error = false, err.Error()
		status = 1
		if _, ok := err.(inputError); ok {
			status = 2
		}
	} else {
		res.OK = true
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	os.Exit(status)
}
