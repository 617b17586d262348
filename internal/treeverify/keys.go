package treeverify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxKeyFile bounds a key file; Gentoo's gentoo-release.asc is a few KiB.
const maxKeyFile = 16 << 20

// LoadKeyring reads the OpenPGP public keys that may sign a tree from path:
// an ASCII-armored file (one or more PUBLIC KEY BLOCKs, such as Gentoo's
// /usr/share/openpgp-keys/gentoo-release.asc) or binary keys (gpg
// --export).
func LoadKeyring(path string) (openpgp.EntityList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("openpgp key: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("openpgp key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("openpgp key %s: larger than %d bytes", path, maxKeyFile)
	}
	kr, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("openpgp key %s: %w", path, err)
	}
	return kr, nil
}

// ParseKeyring parses armored or binary OpenPGP public keys.
func ParseKeyring(data []byte) (openpgp.EntityList, error) {
	var kr openpgp.EntityList
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		rest := data
		for {
			i := bytes.Index(rest, []byte("-----BEGIN PGP"))
			if i < 0 {
				break
			}
			rest = rest[i:]
			blk, err := armor.Decode(bytes.NewReader(rest))
			if err != nil {
				return nil, fmt.Errorf("bad armor: %w", err)
			}
			end := bytes.Index(rest, []byte("-----END PGP"))
			if end < 0 {
				return nil, errors.New("bad armor: no END line")
			}
			if blk.Type != openpgp.PublicKeyType {
				return nil, fmt.Errorf("armored block is a %q, want %q", blk.Type, openpgp.PublicKeyType)
			}
			el, err := openpgp.ReadKeyRing(blk.Body)
			if err != nil {
				return nil, err
			}
			kr = append(kr, el...)
			rest = rest[end+len("-----END PGP"):]
		}
	} else {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		kr = el
	}
	if len(kr) == 0 {
		return nil, errors.New("no public key found")
	}
	return kr, nil
}

// KeyDescription names an OpenPGP key for messages: its fingerprint and
// primary user ID.
func KeyDescription(e *openpgp.Entity) string {
	s := fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
	if id := e.PrimaryIdentity(); id != nil {
		s += " (" + id.Name + ")"
	}
	return s
}

// DescribeKeyring lists the keys of kr, one KeyDescription per key.
func DescribeKeyring(kr openpgp.EntityList) string {
	var parts []string
	for _, e := range kr {
		parts = append(parts, KeyDescription(e))
	}
	return strings.Join(parts, ", ")
}

// checkClearsigned verifies the signature of a clear-signed Manifest
// (its signed bytes and armored signature body) with kr at time now, and
// returns the signer or an error saying why the signature is refused.
func checkClearsigned(kr openpgp.EntityList, signed, sig []byte, now time.Time) (*openpgp.Entity, error) {
	cfg := &packet.Config{Time: func() time.Time { return now }}
	_, signer, err := openpgp.VerifyDetachedSignature(kr, bytes.NewReader(signed), bytes.NewReader(sig), cfg)
	switch {
	case err == nil:
		return signer, nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return nil, fmt.Errorf("signature by unknown key %s (the key file has %s)", issuers(sig), DescribeKeyring(kr))
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return nil, fmt.Errorf("signing key %s has expired", describeSigner(signer, sig))
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return nil, fmt.Errorf("signature by %s has expired", describeSigner(signer, sig))
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return nil, fmt.Errorf("signing key %s is revoked", describeSigner(signer, sig))
	default:
		return nil, fmt.Errorf("bad signature (by %s): %v", describeSigner(signer, sig), err)
	}
}

func describeSigner(signer *openpgp.Entity, sig []byte) string {
	if signer != nil {
		return KeyDescription(signer)
	}
	return issuers(sig)
}

// issuers names the keys the signature packets in sig claim to be made by.
func issuers(sig []byte) string {
	var out []string
	pr := packet.NewReader(bytes.NewReader(sig))
	for range 16 {
		p, err := pr.Next()
		if err != nil {
			break
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			continue
		}
		switch {
		case len(s.IssuerFingerprint) > 0:
			out = append(out, fmt.Sprintf("%X", s.IssuerFingerprint))
		case s.IssuerKeyId != nil:
			out = append(out, fmt.Sprintf("%016X", *s.IssuerKeyId))
		}
	}
	if len(out) == 0 {
		return "(no issuer)"
	}
	return strings.Join(out, ", ")
}
