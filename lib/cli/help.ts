/** Help texts, one per command, written for an admin who has never used sesame. @module */

import { VERSION } from "../version.ts";

export { VERSION };

/** Help texts by command; `""` is the top level. */
export const HELP: Record<string, string> = {
  "": `sesame ${VERSION} — port knocking with rotating, one-time knock sequences

Usage: sesame <command> [options]

Commands:
  listen   run the knock daemon: listen on the knock ports, open doors for good knocks
  knock    send a door's current sequence (or a static knockd-style one) to a host
  page     write an HTML page that knocks a door from any browser
  code     show a door's current knock sequence and when it rotates
  check    validate a config file and summarise it
  keygen   print a new random secret for a door (--spa: fwknop's two SPA keys)
  init     write a starter server config, its secret file and its client config
  nft-ruleset  print the nftables table listen applies for the config's nft doors
  status   which doors are open for whom, until when; banned scanners (daemon or state)
  revoke   close a door now for an address or a user, through the running daemon
  reload   make the running daemon read its config again, and say what changed
  unban    lift a scanner ban in the running daemon
  demo     a loopback demonstration: start a daemon, knock, watch a door open and close
  version  sesame's version, and the Deno runtime (and V8) it runs on
  completions  print the shell completion script for bash, zsh or fish

Options:
  -h, --help     show help (also: sesame <command> --help)
  -V, --version  show the version

A door is a set of knock ports and an action. A rotating door's sequence is derived
from a shared secret and changes every period; each code opens once. See man sesame.yaml and the README.`,

  keygen: `Usage: sesame keygen [--out FILE] [--force]
       sesame keygen --spa

Prints a new random 32-byte secret as base64url: the value of a door's "secret", or the
content of its "secret_file". Share it with the knocking side over a secure channel.

With --spa: prints the two keys of a single-packet (fwknop SPA) door in fwknop's format,
KEY_BASE64 (32 bytes, AES) and HMAC_KEY_BASE64 (64 bytes): what spa.key_base64 and
spa.hmac_key_base64 (or the files of key_file and hmac_key_file) hold, and what
fwknop's client and its phone app take. sesame init --spa writes them to files.

Options:
  --out FILE   write the secret to FILE with mode 0600 instead of printing it
  --force      overwrite FILE if it exists
  --spa        print a pair of SPA keys`,

  code: `Usage: sesame code --config FILE --door NAME [--user NAME] [--at TIME] [--from ADDRESS]
                   [--json]

Shows the knock sequence of a door at a time (default now) and when it rotates.

Options:
  -c, --config FILE   the config file (YAML) that defines the door (default: the
                      client config in ~/.config/sesame/client.yaml, or
                      $XDG_CONFIG_HOME/sesame/client.yaml)
  --door NAME         the door
  --at TIME           unix seconds or an ISO-8601 time, e.g. 2030-01-01T12:00:00Z
  --from ADDRESS      the knocking address, for a door with bind_source: true
  --user NAME         whose code, on a door with users (each user has their own codes)
  --json              print {"door","counter","valid_from","valid_until","knocks"}`,

  check: `Usage: sesame check --config FILE [--json] [--insecure-permissions] [--connect]

Validates a config file the way "sesame listen" reads it. Prints a summary and exits 0
when it is valid; prints each problem as FILE:LINE:COLUMN: key: message and exits 1 when
it is not, or when listen would refuse it here (a secret other users can read, an
open-file limit too small for the pools, pools in the ephemeral port range). Never
prints secrets. Warns (exit 0) about weak doors (the chance that one sweep of a door's
ports opens it, above one in a million) and knock ports a local program already uses;
when sesame listen runs in this network namespace, its own ports are not probed.
With a cluster section, --connect also asks each etcd member for its status and reads
and writes under the prefix with this node's credentials; exit 1 when that fails.

Options:
  -c, --config FILE         the config file
  --json                    print the summary as JSON (with "weakness" per door and "warnings")
  --connect                 with a cluster: test the connection to etcd (exit 1 without a quorum)
  --insecure-permissions    accept secrets readable by others (containers)`,

  listen: `Usage: sesame listen --config FILE [--log-level LEVEL] [--log-format text|json]

Runs the knock daemon. It binds a dummy listener on every port of every door's pool
(a port scan sees the whole pool, never the current code), records each connection
attempt and datagram by source address, and opens a door for a source that completes
the door's sequence in time: sesame's nftables set (open.nft) or iptables chain
(open.iptables) lets that source through to the protected ports until "for" is over,
which the kernel enforces by itself, and/or the door's command runs with {ip} and {door}
substituted, its close command after "for". Each rotating code opens once.

Start: the config, the state, the knock ports are checked first; the firewall is applied
last, so a start that fails changes nothing in the kernel. One listen runs per network
namespace (a second one exits naming the first's PID). sesame's rules come back by
themselves when another tool flushes them.

Signals: SIGTERM/SIGINT stop (every door a command opened is closed first; firewall doors
keep their time in the kernel); SIGHUP reloads the config (a broken config is refused and
the old one keeps running; a SIGHUP during a reload is queued; "sesame reload" does the
same and reports the outcome); SIGUSR1 reopens the log file (listen.log target file).

Logs go to stderr (the journal under systemd), or where listen.log says: a file or
syslog (see sesame.yaml(5)).

Options:
  -c, --config FILE     the config file (YAML); every door needs "open"
  --log-level LEVEL     trace, debug (one line per knock), info (default), warning, error
  --log-format FORMAT   text (default) or json (one object per line)
  --insecure-permissions  accept a config or secret_file that other users can read
                        (refused by default, with the chmod that fixes it)`,

  knock: `Usage: sesame knock HOST --config FILE --door NAME [options] [--exec -- CMD ARGS...]
       sesame knock HOST PORT[:tcp|:udp] ... [-u] [-d MS] [options]

Sends a door's current knock sequence to HOST, or a static sequence given as ports
(knockd's "knock" syntax: 7000 8000:udp 9000). Knocks go strictly in order, with a
small gap between them. A TCP knock is one connection attempt; a UDP knock one datagram.
For an SPA door (one with "spa:"), it sends one fwknop-format packet instead (fwknopd
takes it too).

A rotating code opens once, and the server refuses any code older than one used: the
client remembers the last counter it sent per door and secret (in
$XDG_STATE_HOME/sesame/knocks.json, or ~/.local/state/sesame/) and takes the next one
still inside the server's window; when none is left it waits for the next period and
says so.

Options:
  -c, --config FILE      the config that defines the door (the same YAML as the server's;
                         a client config may hold only the doors it knocks, without "open");
                         default: ~/.config/sesame/client.yaml ($XDG_CONFIG_HOME/sesame/)
  --door NAME            the door to knock
  -u, --udp              static ports without :tcp/:udp are UDP (default TCP)
  -d, --delay MS         gap between knocks in ms (default 50)
  --tcp-timeout MS       a TCP knock counts as sent after this long without an answer (default 200)
  -4, --ipv4             resolve HOST to IPv4 only (by default the first address in the
                         system's order, the one ssh and the --exec program will use)
  -6, --ipv6             resolve HOST to IPv6 only
  --from ADDRESS         for a bind_source door: your address as the server sees it;
                         for an SPA door: the IPv4 address to ask for (default 0.0.0.0,
                         "the packet's source", which works behind NAT and over IPv6)
                         (bind_source default: the local address towards HOST; behind NAT
                         give the public one)
  --access PROTO/PORT,…  for an SPA door: what to ask for (default the door's spa.access)
  --source ADDRESS       send from this local address
  --wait-open [HOST:]PORT
                         first try PORT (on HOST, default the knocked host; [ADDR]:PORT for
                         IPv6; a forward door's inside host) once: if it is open already, say
                         so ("already open", JSON "already_open": true) and do not knock.
                         Otherwise, after the last knock, try TCP connections until one is
                         accepted; exit 1 if none is within --wait-timeout
  --wait-timeout S       how long --wait-open tries, seconds (default 10)
  --json                 print a result object on stdout
  -v, --verbose          one line per knock on stderr
  -q, --quiet            print nothing unless it fails (by default one line says what was
                         sent, and on a terminal --wait-open counts the seconds it waits)
  --exec -- CMD ARGS...  after a successful knock run CMD (e.g. ssh) and pass on its exit code
  --insecure-permissions  accept a config or secret_file that other users can read`,

  page: `Usage: sesame page HOST --config FILE --door NAME [--user NAME] [-o FILE.html]
                   [--embed-secret] [--wait-open URL] [--from ADDRESS] [--force]

Writes one self-contained HTML file that knocks a door of HOST from any browser: no
network resource, a strict Content-Security-Policy, nothing to install. The page derives
the door's current code (the secret typed into it, never stored or sent) and connects to
each knock port in turn with fetch(); the connections fail, and that is expected. It
takes the next counter on a second knock in a period, like sesame knock. Static doors
work too. A browser sends no UDP and refuses some ports (the Fetch standard's "bad
ports", SSH's 22 among them): doors that need those are refused with the reason.

Options:
  -c, --config FILE     the client config that defines the door (default: as for knock)
  --door NAME           the door
  --user NAME           on a door with users: whose secret (in a server config)
  -o, --out FILE        where to write the page (default knock-DOOR.html)
  --embed-secret        put the secret into the page: it knocks on a button, or at once
                        when opened with #knock at the end of its URL; the file is then a
                        credential (written 0600)
  --wait-open URL       after knocking, wait until this http(s) URL answers (a port
                        browsers allow)
  --from ADDRESS        for a bind_source door: the knocker's address as the server sees
                        it, prefilled in the page
  --force               overwrite FILE`,

  demo: `Usage: sesame demo [--log-level LEVEL] [--log-format text|json]

A loopback demonstration that needs no config and no root: starts a daemon on
127.0.0.1 with a fresh secret, knocks a wrong code (nothing opens), with the
right code (the door opens for that address), replays the code from another address
(refused), and waits for the door to close by itself. Exits 0 when all of that held.

Options:
  --log-level LEVEL     the daemon's log level (default info)
  --log-format FORMAT   text (default) or json`,

  status: `Usage: sesame status --config FILE [--json]

Prints, per door, the sources it is open for, with their user, until when and through
what (nft, iptables or a command). When "sesame listen" runs with this config in this
network namespace, status asks it through its control socket (/run/sesame, root only)
and also prints its PID, uptime and the scanners it has banned; otherwise it reads the
state_file (a consistent read-only snapshot). --json prints one stable object:
{"version": 1, "daemon": {"pid", "started_at", "uptime_s", "config", "intake"} | null,
 "state_file", "doors": [{"door", "users", "gateway": {"kind", "hosts", "ports",
 "protocol", "dnat_port"} | null, "open": [{"source", "user", "until",
 "closes_in_s", "action": {"kind", "ports", "protocol"}, "close_command"}],
 "used": [{"user", "prefix", "counter", "in_window", "current_secret"}]}],
 "bans": [{"source", "evidence", "until"}] | null,
 "fleet": {"node", "groups", "connected", "grants": [{"group", "door", "source", "user",
 "until", "decided_by", "confirmed_by"}]} | null}
With a cluster, the daemon also tells whether it watches etcd now and the fleet's shared
doors: which gateway decided each and which gateways confirmed (opened) it.

Options:
  -c, --config FILE     the config file
  --json                print the object above
  --insecure-permissions  accept a config or secret_file that other users can read`,

  revoke: `Usage: sesame revoke --config FILE --door NAME (--ip ADDRESS | --user NAME)
                     [--established]

Closes a door now, through the running "sesame listen" (its control socket under
/run/sesame, which only root can use): the firewall element goes, the close command runs,
the state is updated. --ip closes it for one address; --user for every address a user of
a door with "users" opened it for. Connections already established continue, as after
"for"; --established also drops them (conntrack). On a door shared by several gateways
("share" in a cluster), the revoke is written to etcd and every gateway that reads it closes
the door too; one that cannot reach etcd keeps it until its time.

Exit codes: 0 closed; 1 nothing was open (or closing failed, or the fleet could not be told);
2 usage error, or a door, user or
address the config does not hold; 3 no daemon with this config answers in this network namespace.

Options:
  -c, --config FILE     the config file of the running daemon
  --door NAME           the door to close
  --ip ADDRESS          close it for this address
  --user NAME           close it for every address this user opened it from
  --established         also drop established connections (conntrack)
  --insecure-permissions  accept a config or secret_file that other users can read`,

  reload: `Usage: sesame reload --config FILE [--json]

Makes the running "sesame listen" (its control socket under /run/sesame, root only)
read its config file again, check it and apply it, the way SIGHUP does, and prints what
changed: doors added, removed or changed, secrets rotated, users added or removed. A
config that cannot run is refused with the reason and the running one stays. Used codes,
open doors and scanner bans carry over. The unit's ExecReload runs this.

Exit codes: 0 reloaded; 1 refused (the old config runs on); 2 usage error; 3 no daemon
with this config answers in this network namespace.

Options:
  -c, --config FILE     the config file of the running daemon
  --json                print the daemon's answer as JSON`,

  unban: `Usage: sesame unban --config FILE --ip ADDRESS

Lifts the bans the running daemon holds on a source it took for a scanner (the
banned sources and until when are in "sesame status"). Its knocks count again at once.

Exit codes: 0 lifted; 1 the address was not banned; 2 usage error; 3 no daemon.

Options:
  -c, --config FILE     the config file of the running daemon
  --ip ADDRESS          the banned address`,

  version: `Usage: sesame version [--json]

Prints sesame's version and the runtime it runs on: Deno, its V8 engine and
TypeScript. sesame's security updates include the runtime's: check both after an
update. --json prints them as one JSON object.

Options:
  --json   print {"sesame", "deno", "v8", "typescript"}`,
  completions: `Usage: sesame completions bash|zsh|fish

Prints the completion script for a shell (the Debian package installs all three):
  bash: sesame completions bash > /etc/bash_completion.d/sesame
  zsh:  sesame completions zsh > "\${fpath[1]}/_sesame"
  fish: sesame completions fish > ~/.config/fish/completions/sesame.fish`,

  "nft-ruleset": `Usage: sesame nft-ruleset --config FILE

Prints the nftables script "sesame listen" applies at start and on reload for the doors
with an "nft" action: table inet sesame, replaced as a whole in one transaction, with a
set of allowed sources per door and family and a chain that drops each door's protected
ports for everyone else. Review it, or apply it yourself with: nft -f FILE.

Options:
  -c, --config FILE   the config file`,

  init: `Usage: sesame init [--out FILE] [--client FILE] [--door NAME] [--protect PORT]
                   [--backend nft|iptables|command] [--host HOST] [--state-file FILE] [--force]
       sesame init [--forward ADDR:PORT | --dnat PORT:ADDR:PORT] [options as above]
       sesame init --spa [--out FILE] [--client FILE] [--fwknoprc FILE] [--door NAME]
                   [--protect PORT] [--backend nft|iptables|command] [--host HOST] [--force]
       sesame init --user NAME [--first-user NAME] [--door NAME] [--out FILE]
                   [--client FILE] [--host HOST]

Writes a starter server config (default sesame.yaml), its secret in DOOR.key beside it
(read through secret_file:, so "sesame keygen --out DOOR.key --force" and a reload rotate
it), and the matching client config (default sesame-client.yaml), all mode 0600, creating
the directories, and prints the commands to run on each side. The door (default "ssh")
protects TCP port --protect (default 22) with nftables (default), iptables, or a logging
command; on a router --forward or --dnat makes a gateway door instead. Existing files are
never overwritten without --force: when one exists, nothing at all is written.

With --spa: the door is a single-packet (fwknop SPA) door on UDP 62201; its keys go to
DOOR.key and DOOR.hmac beside the config, and a fwknop client stanza to --fwknoprc
(default "fwknoprc" beside it, mode 0600): run "fwknop -n sesame-DOOR --rc-file FILE".

With --user NAME: adds a user with a fresh secret (DOOR-NAME.key beside the config, 0600)
to the door (a door with "users:") of the existing server config --out, keeping its
comments, and writes that user's client config (default DOOR-NAME-client.yaml beside it).
A door with one secret (as plain init writes it) becomes a door with users: give
--first-user NAME for whoever holds that secret now (it moves under "users:" unchanged).
The new config is loaded and checked first; when it would not load nothing changes.
Reload the daemon (SIGHUP) to let the user in.

Options:
  --out FILE         the server config (default sesame.yaml)
  --client FILE      the client config (default sesame-client.yaml)
  --door NAME        the door's name (default ssh)
  --protect PORT     the TCP port the door protects (default 22)
  --backend KIND     nft (default), iptables or command
  --forward ADDR:PORT  on a router: let the knocker through to this inside host and port
                     (nft forward door; IPv6 in brackets: [fd00::10]:22) instead of --protect
  --dnat PORT:ADDR:PORT  on a router: this host's PORT leads the knocker to the inside host
                     (nft dnat door), e.g. 2222:192.168.1.10:22
  --state-file FILE  the state database (default /var/lib/sesame/state.db)
  --host HOST        the server's name or address, for the knock command init prints
  --spa              a single-packet (fwknop SPA) door
  --fwknoprc FILE    with --spa: where the fwknop client stanza goes
  --user NAME        add a user to the door of the existing config --out
  --first-user NAME  with --user: the name for the holder of the door's one secret
  --force            overwrite existing files`,
};
