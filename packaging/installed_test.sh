#!/usr/bin/env bash
# Runs sesame from the installed Debian package, from a directory outside the checkout:
# version, demo, man pages, completions, units, a real nft door and a command door in
# network namespaces this script makes (and removes), then removes the package and
# checks that /etc/sesame and the state are kept. Run as root after
# "apt-get install ./dist/sesame_*.deb"; .ci/run does.
set -euo pipefail

fail() { echo "installed_test: FAILED: $*" >&2; exit 1; }
step() { echo "== installed: $*"; }

want_version=$(sed -nE 's/^ *"version": "([^"]+)".*/\1/p' "$(dirname "$0")/../deno.json" | head -n 1)
work=$(mktemp -d /tmp/sesame-installed.XXXXXX)
srv=sesame-pkg-srv
cli=sesame-pkg-cli
daemon=
# Removing the package keeps /etc/sesame and /var/lib/sesame, so a machine that ran this
# before (or an admin's) holds a config, a key and a state. They are set aside for the
# test (renamed on their own filesystem), which then starts like a first install, and put
# back at the end, as they were. Not while a sesame service runs: it uses them.
files="/etc/sesame/sesame.yaml /etc/sesame/ssh.key /etc/sesame/capture.yaml"
kept_etc=/etc/sesame/.kept-by-installed-test
kept_var=/var/lib/sesame.kept-by-installed-test
started= # set once everything is set aside: from then on the files there are the test's
if [ -e "$kept_etc" ] || [ -e "$kept_var" ]; then
  fail "an earlier run stopped before putting files back: they are in $kept_etc and $kept_var; move them back first"
fi
if [ -d /run/systemd/system ] &&
  [ -n "$(systemctl list-units --state=active --no-legend 'sesame.service' 'sesame@*.service' 2>/dev/null)" ]; then
  fail "a sesame service runs here: stop it first (this test sets its config and state aside)"
fi
setaside() {
  mkdir -p -m 0700 "$kept_etc"
  for f in $files; do
    if [ -e "$f" ] || [ -L "$f" ]; then mv "$f" "$kept_etc/"; fi
  done
  if [ -e /var/lib/sesame ]; then mv /var/lib/sesame "$kept_var"; fi
  install -d -m 0700 /var/lib/sesame # as the package's postinst makes it
  started=1
}
putback() {
  set +e # each step on its own: one that fails must not keep the others from running
  local lost=
  for f in $files; do
    if [ -e "$kept_etc/${f##*/}" ] || [ -L "$kept_etc/${f##*/}" ]; then
      rm -f "$f" && mkdir -p /etc/sesame && mv "$kept_etc/${f##*/}" "$f" || lost=1
    elif [ -n "$started" ]; then
      rm -f "$f"
    fi
  done
  if [ -e "$kept_var" ]; then
    { rm -rf /var/lib/sesame && mv "$kept_var" /var/lib/sesame; } || lost=1
  fi
  if [ -n "$lost" ]; then
    echo "installed_test: could not put everything back: see $kept_etc and $kept_var" >&2
  else
    rmdir "$kept_etc" 2>/dev/null
  fi
}
cleanup() {
  set +e
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; fi
  ip netns del "$srv" 2>/dev/null
  ip netns del "$cli" 2>/dev/null
  rm -rf "$work"
  putback
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
setaside
cd "$work"


step "the program"
[ "$(command -v sesame)" = /usr/bin/sesame ] || fail "sesame is not /usr/bin/sesame"
sesame version | tee version.txt
grep -qx "sesame $want_version" version.txt || fail "sesame version is not $want_version"
grep -q '^deno 2\.' version.txt || fail "no Deno version"
grep -q '^v8 ' version.txt || fail "no V8 version"
sesame version --json | grep -q "\"sesame\":\"$want_version\"" || fail "version --json"

step "the demo"
timeout 120 sesame demo >demo.log 2>&1 || { cat demo.log; fail "sesame demo"; }
tail -n 1 demo.log

step "man pages"
man -w sesame | grep -q '/usr/share/man/man8/sesame.8.gz' || fail "man -w sesame"
man -w sesame.yaml | grep -q '/usr/share/man/man5/sesame.yaml.5.gz' || fail "man -w sesame.yaml"
MANWIDTH=80 man sesame 2>/dev/null | grep -q 'sesame knock' || fail "man sesame has no knock"
MANWIDTH=80 man sesame.yaml 2>/dev/null | grep -q 'listen.addresses' || fail "sesame.yaml(5) lacks keys"

step "completions"
bash -c 'source /usr/share/bash-completion/completions/sesame
  complete -p sesame >/dev/null
  COMP_WORDS=(sesame kno); COMP_CWORD=1; _sesame; [ "${COMPREPLY[*]}" = knock ]
  COMP_WORDS=(sesame knock --do); COMP_CWORD=2; _sesame; [ "${COMPREPLY[*]}" = --door ]' ||
  fail "bash completion"
[ -s /usr/share/zsh/vendor-completions/_sesame ] || fail "zsh completion missing"
[ -s /usr/share/fish/vendor_completions.d/sesame.fish ] || fail "fish completion missing"

step "units"
systemd-analyze verify /lib/systemd/system/sesame.service /lib/systemd/system/sesame@.service ||
  fail "systemd-analyze verify"

step "a door in network namespaces, run by /usr/bin/sesame"
ip netns add "$srv"
ip netns add "$cli"
ip link add sesame-pkg-a type veth peer name sesame-pkg-b
ip link set sesame-pkg-a netns "$srv"
ip link set sesame-pkg-b netns "$cli"
ip -n "$srv" addr add 10.231.0.1/24 dev sesame-pkg-a
ip -n "$cli" addr add 10.231.0.2/24 dev sesame-pkg-b
for ns in "$srv" "$cli"; do
  ip -n "$ns" link set lo up
done
ip -n "$srv" link set sesame-pkg-a up
ip -n "$cli" link set sesame-pkg-b up

# The admin's config, as the README's steps write it: an nft door for port 8080 and a
# command door that records who it opened for.
sesame init --out /etc/sesame/sesame.yaml --client "$work/client.yaml" --host 10.231.0.1 \
  --protect 8080 >init.log
# (its pool below init's, which picks one of 20000-31999)
cat >>/etc/sesame/sesame.yaml <<EOF
  log:
    ports: "19000-19099"
    length: 2
    secret_file: ssh.key
    open:
      for: 5s
      command: ["/usr/bin/touch", "$work/opened-{ip}"]
EOF
# The client knocks door "log" with the same secret.
sed -n '/secret:/p' "$work/client.yaml" | head -n 1 >secret.line
cat >>"$work/client.yaml" <<EOF
  log:
$(cat secret.line)
    ports: "19000-19099"
    length: 2
EOF
chmod 600 "$work/client.yaml"
sesame check -c /etc/sesame/sesame.yaml >check.log || { cat check.log; fail "sesame check"; }

ip netns exec "$srv" python3 -m http.server 8080 --bind 10.231.0.1 >/dev/null 2>&1 &
web=$!
(ulimit -n 8192 && exec ip netns exec "$srv" sesame listen -c /etc/sesame/sesame.yaml) \
  >listen.log 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' listen.log && break
  kill -0 "$daemon" 2>/dev/null || { cat listen.log; fail "listen exited"; }
  sleep 0.1
done
grep -q 'listening on' listen.log || { cat listen.log; fail "listen did not start"; }

probe() { # exit 0 when 10.231.0.1:8080 accepts from the client namespace
  ip netns exec "$cli" python3 -c 'import socket,sys
s=socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("10.231.0.1", 8080)) == 0 else 1)'
}
probe && fail "port 8080 answered before any knock"
ip netns exec "$cli" sesame knock 10.231.0.1 -c "$work/client.yaml" --door ssh \
  --wait-open 8080 --wait-timeout 10 || { cat listen.log; fail "knock did not open 8080"; }
probe || fail "port 8080 closed after the knock"
ip netns exec "$srv" nft list table inet sesame | grep -q '10.231.0.2' ||
  fail "no nft element for the knocker"
ip netns exec "$cli" sesame knock 10.231.0.1 -c "$work/client.yaml" --door log ||
  fail "knock on the command door"
for _ in $(seq 1 50); do [ -e "$work/opened-10.231.0.2" ] && break; sleep 0.1; done
[ -e "$work/opened-10.231.0.2" ] || { cat listen.log; fail "the command door did not run"; }
ip netns exec "$srv" sesame status -c /etc/sesame/sesame.yaml | tee status.log
grep -q '10.231.0.2' status.log || fail "status does not show the open door"
kill -TERM "$daemon"
wait "$daemon" || { cat listen.log; fail "listen did not stop cleanly"; }
daemon=
[ -s /var/lib/sesame/state.db ] || fail "no state in /var/lib/sesame"

step "the capture intake (listen.capture: nflog) run by /usr/bin/sesame: nothing bound, a knock opens"
secret=$(sed -nE 's/.*secret: "([^"]+)".*/\1/p' "$work/client.yaml" | head -n 1)
cat >/etc/sesame/capture.yaml <<EOF
listen: { addresses: ["::"], capture: nflog, closed_reply: reject }
state_file: /var/lib/sesame/capture.db
doors:
  cap:
    secret: "$secret"
    ports: "26000-26099"
    length: 3
    open: { for: 30s, nft: { port: 8080 } }
EOF
chmod 600 /etc/sesame/capture.yaml
printf 'doors:\n  cap: { secret: "%s", ports: "26000-26099", length: 3 }\n' "$secret" >"$work/cap.yaml"
chmod 600 "$work/cap.yaml"
# Another config with a state of its own, in the same namespace: the first run's table is
# removed first (with it there, sesame takes the missing state for a deleted one and refuses
# the current codes: fail closed).
ip netns exec "$srv" nft delete table inet sesame
ip netns exec "$srv" sesame listen -c /etc/sesame/capture.yaml >capture.log 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
  grep -q 'listening on NFLOG group' capture.log && break
  kill -0 "$daemon" 2>/dev/null || { cat capture.log; fail "capture listen exited"; }
  sleep 0.1
done
grep -q 'listening on NFLOG group' capture.log || { cat capture.log; fail "capture listen did not start"; }
if ip netns exec "$srv" ss -Hlnt | grep -q ':260[0-9][0-9]'; then fail "a pool port is bound"; fi
probe && fail "port 8080 answered before the capture knock"
ip netns exec "$cli" sesame knock 10.231.0.1 -c "$work/cap.yaml" --door cap --wait-open 8080 \
  --wait-timeout 10 || { cat capture.log; fail "the capture knock did not open 8080"; }
kill -TERM "$daemon"
wait "$daemon" || { cat capture.log; fail "capture listen did not stop cleanly"; }
daemon=
kill "$web" 2>/dev/null || true

step "removing the package keeps the config and the state"
apt-get remove -y -qq sesame >/dev/null
[ ! -e /usr/bin/sesame ] || fail "/usr/bin/sesame still there"
[ -s /etc/sesame/sesame.yaml ] || fail "/etc/sesame/sesame.yaml was removed"
[ -s /etc/sesame/ssh.key ] || fail "/etc/sesame/ssh.key was removed"
[ -s /var/lib/sesame/state.db ] || fail "the state was removed"
ls -la /etc/sesame /var/lib/sesame
echo "installed_test: ok"
