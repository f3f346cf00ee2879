// An independent verifier of Cleanroom's ledger output, built on Go's
// golang.org/x/mod/sumdb/note and sumdb/tlog (the reference implementations
// of signed notes and RFC 6962 proofs) and crypto/ed25519 for C2SP
// tlog-cosignature/v1. Reads one JSON case on stdin, prints "ok" or fails.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type input struct {
	LogVkey     string   `json:"log_vkey"`
	WitnessName string   `json:"witness_name"`
	WitnessKey  string   `json:"witness_pub"`
	Note        string   `json:"note"`
	Entry       string   `json:"entry"`
	Index       int64    `json:"index"`
	Inclusion   []string `json:"inclusion"`
	OldSize     int64    `json:"old_size"`
	OldRoot     string   `json:"old_root"`
	Consistency []string `json:"consistency"`
}

func die(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }

func hashes(in []string) []tlog.Hash {
	out := make([]tlog.Hash, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			die("bad hash %q", s)
		}
		copy(out[i][:], b)
	}
	return out
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		die("input: %v", err)
	}
	v, err := note.NewVerifier(in.LogVkey)
	if err != nil {
		die("vkey: %v", err)
	}
	n, err := note.Open([]byte(in.Note), note.VerifierList(v))
	if err != nil {
		die("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	var root tlog.Hash
	rb, _ := base64.StdEncoding.DecodeString(lines[2])
	copy(root[:], rb)
	leaf := tlog.RecordHash([]byte(in.Entry))
	if err := tlog.CheckRecord(hashes(in.Inclusion), size, root, in.Index, leaf); err != nil {
		die("inclusion: %v", err)
	}
	var old tlog.Hash
	ob, _ := base64.StdEncoding.DecodeString(in.OldRoot)
	copy(old[:], ob)
	if err := tlog.CheckTree(hashes(in.Consistency), size, root, in.OldSize, old); err != nil {
		die("consistency: %v", err)
	}
	// The witness cosignature (C2SP tlog-cosignature/v1), checked from the spec text.
	pub, _ := base64.StdEncoding.DecodeString(in.WitnessKey)
	id := sha256.Sum256(append([]byte(in.WitnessName+"\n\x04"), pub...))
	found := false
	for _, s := range n.UnverifiedSigs {
		if s.Name != in.WitnessName {
			continue
		}
		raw, _ := base64.StdEncoding.DecodeString(s.Base64)
		if len(raw) != 4+8+64 || !bytes.Equal(raw[:4], id[:4]) {
			die("cosignature has the wrong key ID or length")
		}
		ts := binary.BigEndian.Uint64(raw[4:12])
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, n.Text)
		if !ed25519.Verify(ed25519.PublicKey(pub), []byte(msg), raw[12:]) {
			die("cosignature does not verify")
		}
		found = true
	}
	if !found {
		die("no cosignature from %s", in.WitnessName)
	}
	fmt.Println("ok")
}
