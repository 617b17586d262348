// Command treecases writes the trees bench/treeverify.sh gives to both
// lanmirror verify-tree and gemato to compare their verdicts: a good signed
// tree (internal/testtree with testtree.WriteManifests) and copies of it
// each broken one way, with the key files they are checked with.
//
//	go run ./bench/treecases -dir /tmp/cases -files 2000
//
// It prints one line per case, tab-separated: name, tree directory, key
// file, extra lanmirror verify-tree arguments ("-" for none), and the
// expected verdict (good or refused).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/lanmirror/lanmirror/internal/testtree"
)

func main() {
	dir := flag.String("dir", "", "output directory (created)")
	files := flag.Int("files", 2000, "about how many files each tree has")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "treecases: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *files); err != nil {
		fmt.Fprintln(os.Stderr, "treecases:", err)
		os.Exit(1)
	}
}

type tcase struct {
	name, key, args, want string
	// make turns a copy of the good tree into the case (nil: unchanged).
	make func(tree string) error
}

func run(out string, files int) error {
	now := time.Now().Truncate(time.Second)
	ago := func(d time.Duration) func() time.Time { return func() time.Time { return now.Add(-d) } }
	made := &packet.Config{Time: ago(30 * 24 * time.Hour)}
	good, err := testtree.NewSigningKey("Bench release key", "release@example.org", made)
	if err != nil {
		return err
	}
	other, err := testtree.NewSigningKey("Someone else", "other@example.org", made)
	if err != nil {
		return err
	}
	expired, err := testtree.NewSigningKey("Expired key", "expired@example.org", &packet.Config{Time: ago(48 * time.Hour), KeyLifetimeSecs: 24 * 3600})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	keys := map[string]*openpgp.Entity{"good.asc": good, "other.asc": other, "expired.asc": expired}
	for name, k := range keys {
		asc, err := testtree.ArmoredPublicKey(k)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, name), asc, 0o644); err != nil {
			return err
		}
	}
	base := filepath.Join(out, "good")
	if _, err := testtree.Generate(base, testtree.Options{Seed: 11, Files: files, PortageExcluded: true}); err != nil {
		return err
	}
	signWith := func(k *openpgp.Entity, cfg *packet.Config, ts time.Time) func(string) error {
		return func(tree string) error {
			return testtree.WriteManifests(tree, testtree.ManifestOptions{Key: k, SignConfig: cfg, Timestamp: ts})
		}
	}
	fresh := &packet.Config{Time: ago(time.Minute)}
	if err := signWith(good, fresh, now.Add(-time.Hour))(base); err != nil {
		return err
	}
	ebuild, err := firstFile(base, ".ebuild")
	if err != nil {
		return err
	}
	cat := strings.SplitN(ebuild, "/", 2)[0]
	cases := []tcase{
		{name: "good", key: "good.asc", want: "good"},
		{name: "ebuild-byte-changed", key: "good.asc", want: "refused", make: func(t string) error { return flip(filepath.Join(t, ebuild), 7) }},
		{name: "file-missing", key: "good.asc", want: "refused", make: func(t string) error { return os.Remove(filepath.Join(t, ebuild)) }},
		{name: "file-unlisted", key: "good.asc", want: "refused", make: func(t string) error {
			return os.WriteFile(filepath.Join(t, filepath.Dir(ebuild), "extra-1.ebuild"), []byte("EAPI=8\n"), 0o644)
		}},
		{name: "gz-sub-manifest-corrupt", key: "good.asc", want: "refused", make: func(t string) error { return flip(filepath.Join(t, cat, "Manifest.gz"), 30) }},
		{name: "bad-signature", key: "good.asc", want: "refused", make: func(t string) error {
			p := filepath.Join(t, "Manifest")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, bytes.Replace(b, []byte("TIMESTAMP "), []byte("TIMESTAMP  "), 1), 0o644)
		}},
		{name: "wrong-key", key: "good.asc", want: "refused", make: signWith(other, fresh, now.Add(-time.Hour))},
		{name: "expired-signature", key: "good.asc", want: "refused",
			make: signWith(good, &packet.Config{Time: ago(2 * time.Hour), SigLifetimeSecs: 3600}, now.Add(-2*time.Hour))},
		// The key expired 24 hours ago; the signature was made an hour ago.
		{name: "expired-key", key: "expired.asc", want: "refused", make: signWith(expired, &packet.Config{Time: ago(time.Hour)}, now.Add(-time.Hour))},
		// The signature was made while the key was valid, the key has
		// expired since: gemato accepts that (it checks the key's expiry
		// against the signature's time), lanmirror refuses any signature
		// by an expired key.
		{name: "key-expired-since-signing", key: "expired.asc", want: "refused", make: signWith(expired, &packet.Config{Time: ago(25 * time.Hour)}, now.Add(-25*time.Hour))},
		{name: "unsigned", key: "good.asc", want: "refused", make: signWith(nil, nil, now.Add(-time.Hour))},
		{name: "data-after-signature", key: "good.asc", want: "refused", make: func(t string) error {
			f, err := os.OpenFile(filepath.Join(t, "Manifest"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("IGNORE " + cat + "\n")
			return err
		}},
		// gemato verify does not look at the TIMESTAMP's age (Portage
		// checks sync-rsync-verify-max-age itself): lanmirror refuses with
		// --max-age, gemato accepts.
		{name: "timestamp-too-old", key: "good.asc", args: "--max-age=24h", want: "refused",
			make: signWith(good, fresh, now.Add(-48*time.Hour))},
	}
	for _, c := range cases {
		tree := base
		if c.name != "good" {
			tree = filepath.Join(out, c.name)
			if err := copyTree(base, tree); err != nil {
				return err
			}
			if err := c.make(tree); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		args := c.args
		if args == "" {
			args = "-"
		}
		fmt.Printf("%s\t%s\t%s\t%s\t%s\n", c.name, tree, filepath.Join(out, c.key), args, c.want)
	}
	return nil
}

func firstFile(dir, suffix string) (string, error) {
	var found string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if found == "" && d.Type().IsRegular() && strings.HasSuffix(p, suffix) {
			found, _ = filepath.Rel(dir, p)
		}
		return nil
	})
	if found == "" && err == nil {
		err = fmt.Errorf("no *%s in %s", suffix, dir)
	}
	return found, err
}

func flip(p string, off int) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[off%len(b)] ^= 0x20
	return os.WriteFile(p, b, 0o644)
}

// copyTree copies regular files, directories and symlinks (as links).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		case d.IsDir():
			return os.MkdirAll(t, 0o755)
		default:
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			fi, err := in.Stat()
			if err != nil {
				return err
			}
			o, err := os.OpenFile(t, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(o, in); err != nil {
				o.Close()
				return err
			}
			return o.Close()
		}
	})
}
