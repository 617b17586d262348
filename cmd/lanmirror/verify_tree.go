package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/progress"
	"github.com/lanmirror/lanmirror/internal/tree"
	"github.com/lanmirror/lanmirror/internal/treeverify"
	"github.com/spf13/cobra"
)

// unauthenticatedTree is the warning for a tree mirror without a key.
const unauthenticatedTree = "THE TREE IS NOT AUTHENTICATED: no --tree-openpgp-key, so pulled trees are published without checking " +
	"their signature and Manifests (anyone between lanmirror and the upstream can change ebuilds and the distfile digests); " +
	"give --tree-openpgp-key /usr/share/openpgp-keys/gentoo-release.asc"

// treeVerifyHook returns the tree.Syncer.Verify hook for cfg: nil (after a
// loud warning) without a key.
func treeVerifyHook(cfg *config.Serve, st *tree.Store, log *slog.Logger) (func(context.Context, string) error, error) {
	if cfg.TreeOpenPGPKey == "" {
		log.Warn(unauthenticatedTree)
		return nil, nil
	}
	kr, err := treeverify.LoadKeyring(cfg.TreeOpenPGPKey)
	if err != nil {
		return nil, fmt.Errorf("--tree-openpgp-key: %w", err)
	}
	log.Info("tree: pulled trees are verified before they are published", "keys", treeverify.DescribeKeyring(kr), "max_age", cfg.TreeMaxAge)
	c := &treeverify.Checker{Keyring: kr, MaxAge: cfg.TreeMaxAge, Log: log,
		Published: func() (string, bool) {
			cur, ok, err := st.Current()
			return cur.Path, ok && err == nil
		}}
	return c.Verify, nil
}

func newVerifyTreeCmd() *cobra.Command {
	var (
		keyFile  string
		unsigned bool
		maxAge   time.Duration
		jobs     int
	)
	cmd := &cobra.Command{
		Use:   "verify-tree DIR",
		Short: "verify an ebuild tree against its signed Manifests (GLEP 74), as gemato does",
		Long: `verify-tree checks the ebuild tree in DIR as the tree mirror does before it
publishes a pulled tree (and as Portage's gemato does after emerge --sync):
the top-level Manifest's OpenPGP signature against the key(s) in --openpgp-key
(expired or revoked keys and expired signatures refused), its TIMESTAMP against
--max-age, every sub-Manifest (compressed ones included) by size and digests,
every DATA/EBUILD/MISC/AUX entry's size and digests, IGNORE entries, and that
no file is missing from the Manifests. Every problem found is printed with the
file it concerns; the exit status is 0 only for a good tree.
--unsigned checks the Manifests without the signature (not a proof of anything
beyond integrity).`,
		Example: "  lanmirror verify-tree --openpgp-key /usr/share/openpgp-keys/gentoo-release.asc /var/db/repos/gentoo",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := treeverify.Options{MaxAge: maxAge, Jobs: jobs}
			switch {
			case keyFile != "" && unsigned:
				return errors.New("--openpgp-key and --unsigned exclude each other")
			case keyFile != "":
				kr, err := treeverify.LoadKeyring(keyFile)
				if err != nil {
					return err
				}
				opts.Keyring = kr
			case !unsigned:
				return errors.New("--openpgp-key FILE is required (or --unsigned to check the Manifests without the signature)")
			}
			rep, err := treeverify.Verify(cmd.Context(), args[0], opts)
			var ve *treeverify.Error
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					fmt.Fprintln(cmd.ErrOrStderr(), p.String())
				}
				if ve.Total > len(ve.Problems) {
					fmt.Fprintf(cmd.ErrOrStderr(), "... and %d more\n", ve.Total-len(ve.Problems))
				}
				return fmt.Errorf("%s: tree refused: %d problems", args[0], ve.Total)
			}
			if err != nil {
				return err
			}
			signed := "signature not checked (--unsigned)"
			if rep.Signer != "" {
				signed = "signed by " + rep.Signer
			}
			ts := "no TIMESTAMP"
			if !rep.Timestamp.IsZero() {
				ts = "TIMESTAMP " + rep.Timestamp.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: good tree, %s, %s; %d Manifests, %d files, %s checked in %s\n",
				args[0], signed, ts, rep.Manifests, rep.Files, progress.FormatBytes(rep.Bytes), rep.Duration.Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "openpgp-key", "", "OpenPGP public key file (armored or binary) that must have signed the top-level Manifest, e.g. /usr/share/openpgp-keys/gentoo-release.asc")
	f.BoolVar(&unsigned, "unsigned", false, "check the Manifests without checking the signature")
	f.DurationVar(&maxAge, "max-age", 0, "refuse a tree whose TIMESTAMP is older than this (0: no limit)")
	f.IntVarP(&jobs, "jobs", "j", 0, "parallel workers (default: one per core)")
	return cmd
}
