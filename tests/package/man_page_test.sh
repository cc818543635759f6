#!/usr/bin/env bash
# The man page (docs/dtkfs.1) against what the binary says it accepts, so the two cannot
# drift: every command `dtkfs --help` lists has a section `.SS dtkfs COMMAND` naming every
# option `dtkfs COMMAND --help` lists; the MOUNT OPTIONS section names every row of the
# mount-option table (`dtkfs mount --help` prints it from src/fs/mount_options.cc); the page
# names the xattrs (include/dtkfs/xattr_names.h) and the files beside the index
# (src/index/index_files.h); and man(1) renders it without a warning.
#   man_page_test.sh DTKFS_BINARY MAN_PAGE SOURCE_DIR
set -euo pipefail
dtkfs=$1 page=$2 src=$3
failures=0
fail() { echo "man page: $*" >&2; failures=$((failures + 1)); }

# The page's text with the troff escapes this page uses undone: fonts, \- and \(aq, \e.
plain=$(sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\e/\\/g' \
          -e 's/\\&//g' "$page")
# The lines of the section that starts with the line matching $1, up to the next .SH or .SS.
section() {
  awk -v start="$1" '
    found && /^\.S[HS]( |$)/ { exit }
    $0 ~ start { found = 1 }
    found { print }' <<<"$plain"
}
# Whether $2 (fixed text) occurs in $1 as a whole word (not inside a longer option).
has_word() { grep -qFw -- "$2" <<<"$1"; }

commands=$("$dtkfs" --help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { exit }
                                 on { print $1 }')
[[ -n $commands ]] || fail "dtkfs --help lists no commands (has its format changed?)"
for word in --help --version; do has_word "$plain" "$word" || fail "no $word"; done

for cmd in $commands; do
  text=$(section "^\\.SS dtkfs $cmd( |\$)")
  if [[ -z $text ]]; then
    fail "no section '.SS dtkfs $cmd' for the command $cmd"
    continue
  fi
  # Options: the lines of "Options:" that start with a dash; spellings before the value name
  # ("  -h, --human-readable    ...", "  --index FILE    ...").
  options=$("$dtkfs" "$cmd" --help | awk '/^Options:/ { on = 1; next } on && NF == 0 { exit }
    on && $1 ~ /^-/ { sub(/^ +/, ""); sub(/  .*/, ""); n = split($0, s, ", ");
                      for (i = 1; i <= n; i++) { split(s[i], w, " "); print w[1] } }')
  for opt in $options; do
    [[ $opt == --help ]] && continue  # every command has it; checked once above
    has_word "$text" "$opt" || fail "section 'dtkfs $cmd' does not name its option $opt"
  done
done

# The mount-option table: its rows' names ("  name, name", descriptions indented deeper).
mount_options=$("$dtkfs" mount --help | awk '/^Mount options/ { on = 1; next }
  on && NF == 0 { exit } on && /^  [^ ]/ { sub(/^  /, ""); gsub(/, /, "\n"); print }')
[[ -n $mount_options ]] || fail "dtkfs mount --help lists no mount options"
text=$(section '^\.SH MOUNT OPTIONS')
while IFS= read -r opt; do
  [[ -z $opt ]] && continue
  has_word "$text" "$opt" || fail "MOUNT OPTIONS does not name the mount option $opt"
done <<<"$mount_options"

for xattr in $(grep -o '"user\.[a-z_.]*"' "$src/include/dtkfs/xattr_names.h" | tr -d '"'); do
  has_word "$plain" "$xattr" || fail "no xattr $xattr"
done
text=$(section '^\.SH FILES')
for suffix in $(grep -o 'index + "\.[a-z-]*"' "$src/src/index/index_files.h" | cut -d'"' -f2); do
  has_word "$text" "INDEX$suffix" || fail "FILES does not name INDEX$suffix"
done
for heading in 'EXIT STATUS' FSTAB 'GUARANTEES AND LIMITS' 'SIZE ATTRIBUTES'; do
  grep -q "^\.SH $heading\$" "$page" || fail "no section $heading"
done

if command -v man >/dev/null; then
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null || true)
  [[ -z $warnings ]] || fail "man warns: $warnings"
fi

if ((failures > 0)); then
  echo "man page: $failures problems in $page" >&2
  exit 1
fi
echo "man page: $(wc -w <<<"$commands") commands, $(wc -l <<<"$mount_options") mount options covered"
