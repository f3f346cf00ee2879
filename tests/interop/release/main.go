// An independent check of Cleanroom's release formats: the DSSE v1
// pre-authentication encoding and Ed25519 signature of an envelope (written
// from the DSSE spec with Go's crypto/ed25519), the reviewer's key in the
// signed-note vkey format (parsed by golang.org/x/mod/sumdb/note), and the
// dirhash "h1" digest of a file set (golang.org/x/mod/sumdb/dirhash.Hash1).
// Reads one JSON case on stdin, prints the h1 digest, or fails.
package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
)

type signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []signature `json:"signatures"`
}

type input struct {
	Envelope envelope          `json:"envelope"`
	Vkey     string            `json:"vkey"`
	Files    map[string]string `json:"files"` // name -> base64 content
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func pae(payloadType string, payload []byte) []byte {
	return []byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload))
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("input: %v", err)
	}
	// The vkey parses as a signed-note verifier; its raw Ed25519 key is the
	// base64 part after the name and hash (type byte 0x01 first).
	v, err := note.NewVerifier(in.Vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	raw := in.Vkey[len(v.Name())+1+8+1:]
	keyBytes, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(keyBytes) != 1+ed25519.PublicKeySize || keyBytes[0] != 1 {
		fail("vkey: not an Ed25519 key")
	}
	pub := ed25519.PublicKey(keyBytes[1:])
	payload, err := base64.StdEncoding.DecodeString(in.Envelope.Payload)
	if err != nil {
		fail("payload: %v", err)
	}
	keyid := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
	ok := false
	for _, s := range in.Envelope.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			fail("sig: %v", err)
		}
		if s.KeyID == keyid && ed25519.Verify(pub, pae(in.Envelope.PayloadType, payload), sig) {
			ok = true
		}
	}
	if !ok {
		fail("dsse: no signature verifies")
	}
	names := make([]string, 0, len(in.Files))
	for name := range in.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	h, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) {
		data, err := base64.StdEncoding.DecodeString(in.Files[name])
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		fail("dirhash: %v", err)
	}
	fmt.Println(h)
}
