package sender

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/lanmirror/lanmirror/internal/rsync/flist"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// rwBuf is a connection whose client side is a fixed byte string.
type rwBuf struct {
	io.Reader
	io.Writer
}

// FuzzSession feeds arbitrary client bytes to a whole session after the
// daemon handshake (filter list, requests, sums, goodbye) at every
// protocol: Run must return an error or finish, never panic or hang.
func FuzzSession(f *testing.F) {
	dir := f.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(dir+"/"+n, bytes.Repeat([]byte(n), 3000), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	lists := flist.NewCache(root, nil, nil)
	// A well-formed protocol-29 exchange: no filters, file 1 whole, done
	// markers, goodbye.
	var seed bytes.Buffer
	_ = wire.WriteInt32(&seed, 0)
	_ = wire.WriteInt32(&seed, 1)
	_ = wire.WriteUint16(&seed, itemTransfer)
	for _, v := range []int32{0, 0, 16, 0} {
		_ = wire.WriteInt32(&seed, v)
	}
	for range 4 {
		_ = wire.WriteInt32(&seed, -1)
	}
	f.Add(byte(2), seed.Bytes())
	f.Add(byte(4), []byte{7, 0, 0, 4, 0, 0, 0, 0, 7, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, p byte, data []byte) {
		proto := 27 + int(p%5)
		_, _ = Run(context.Background(), rwBuf{bytes.NewReader(data), io.Discard}, Config{
			Protocol: proto, Args: []string{"--server", "--sender", "-lr", ".", "mod/"},
			Root: root, ModuleName: "mod", Lists: lists, Seed: 1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	})
}
