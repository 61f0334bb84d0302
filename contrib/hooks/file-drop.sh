#!/bin/sh
# file-drop.sh: a renewd exec push hook that "pushes" a profile by dropping
# it into a directory, for demos, tests and MDMs that sync a folder.
#
#   mdm:
#     driver: exec
#     command: [contrib/hooks/file-drop.sh, var/outbox]
#
# renewd runs it once per push with the rendered .mobileconfig on stdin and
# HOST_UUID, PROFILE_UUID, CA_NAME, RENEWAL_ID and JOB_ID in the environment.
# It writes DIR/<HOST_UUID>_<RENEWAL_ID>.mobileconfig atomically (temporary
# file in DIR, then mv), creating DIR, and appends one line
#   time job host profile ca renewal_id
# to DIR/pushes.log. The file is mode 0600: the profile holds the SCEP
# challenge.
#
# Exit status: 0 dropped; 1 could not write; 2 usage (no DIR, missing env).
set -u

me=file-drop.sh

usage() {
	echo "usage: $me DIR  (profile on stdin; HOST_UUID, PROFILE_UUID," \
	     "CA_NAME, RENEWAL_ID, JOB_ID in the environment)" >&2
	exit 2
}

[ $# -eq 1 ] || usage
[ -n "$1" ] || usage
dir=$1

for var in HOST_UUID PROFILE_UUID CA_NAME RENEWAL_ID JOB_ID; do
	eval "val=\${$var:-}"
	if [ -z "$val" ]; then
		echo "$me: $var is not set (this hook is run by renewd's exec driver)" >&2
		exit 2
	fi
done

# The names become a file name: refuse anything that could leave DIR.
case "$HOST_UUID$RENEWAL_ID" in
*/* | .*)
	echo "$me: refusing HOST_UUID/RENEWAL_ID with '/' or a leading '.'" >&2
	exit 1
	;;
esac

name="${HOST_UUID}_${RENEWAL_ID}.mobileconfig"
umask 077
mkdir -p -- "$dir" || { echo "$me: cannot create $dir" >&2; exit 1; }

tmp="$dir/.$name.tmp.$$"
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
rm -f -- "$tmp"
if ! cat >"$tmp"; then
	echo "$me: cannot write $tmp" >&2
	exit 1
fi
if [ ! -s "$tmp" ]; then
	echo "$me: empty profile on stdin" >&2
	exit 1
fi
mv -f -- "$tmp" "$dir/$name" || { echo "$me: cannot rename into $dir/$name" >&2; exit 1; }

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '%s %s %s %s %s %s\n' "$now" "$JOB_ID" "$HOST_UUID" "$PROFILE_UUID" \
	"$CA_NAME" "$RENEWAL_ID" >>"$dir/pushes.log" ||
	{ echo "$me: cannot append to $dir/pushes.log" >&2; exit 1; }

echo "dropped $dir/$name"
exit 0
