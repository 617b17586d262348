// Package treeverify checks an ebuild tree against its GLEP 74 Manifests, as
// gemato does for Portage after an rsync sync, so that a pulled tree is
// published only when it is exactly what the repository's key signed:
//
//   - the top-level Manifest is an OpenPGP clear-signed message whose
//     signature is good, made by a key of the given key ring, neither the
//     key nor the signature expired or revoked; any other Manifest that is
//     signed (metadata/glsa, metadata/news) is checked the same way;
//   - its TIMESTAMP is not older than a given time (the published tree's)
//     nor older than a maximum age;
//   - every MANIFEST entry, recursively: each sub-Manifest (plain, .gz,
//     .bz2, .xz or .lzma) is checked against its entry's size and digests
//     before it is decompressed and parsed;
//   - every DATA, EBUILD, MISC and AUX entry: the file exists, is a regular
//     file, and has the listed size and digests (every hash the entry has
//     that is supported: BLAKE2B, BLAKE2S, SHA512, SHA256, SHA3_256,
//     SHA3_512, RMD160, SHA1, MD5; at least one of them other than MD5 and
//     SHA1 when the tree is signed);
//   - IGNORE entries (relative to their Manifest's directory) exclude a path
//     and everything below it; a missing IGNOREd path is fine (Portage's
//     rsync options leave out distfiles/, local/ and packages/);
//   - DIST entries are not checked here (they describe distfiles, not files
//     of the tree);
//   - no unlisted files: every regular file must be covered by an entry of
//     some Manifest (sub-Manifests by their parent's MANIFEST entry; the
//     top-level Manifest is the root of trust). Names starting with a dot
//     are skipped, files and directories alike, as gemato does.
//
// Symbolic links are followed, as gemato does: a link to a file is checked
// by the content it reaches, a link to a directory is walked (a loop is an
// error), a dangling link that no Manifest lists is ignored.
//
// Verification runs on a bounded pool of workers (one per core by default)
// that walk directories and hash files in parallel, reading each file once
// in fixed-size blocks; only Manifests are held in memory.
package treeverify
