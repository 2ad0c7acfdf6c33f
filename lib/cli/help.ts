/** Help texts, one per command, written for an admin who has never used sesame. @module */

/** The program's version, printed by `sesame --version`. */
export const VERSION = "0.1.0";

/** Help texts by command; `""` is the top level. */
export const HELP: Record<string, string> = {
  "": `sesame ${VERSION} — port knocking with rotating, one-time knock sequences

Usage: sesame <command> [options]

Commands:
  listen   run the knock daemon: listen on the knock ports, open doors for good knocks
  knock    send a door's current sequence (or a static knockd-style one) to a host
  code     show a door's current knock sequence and when it rotates
  check    validate a config file and summarise it
  keygen   print a new random secret for a door
  demo     a loopback demonstration: start a daemon, knock, watch a door open and close

Options:
  -h, --help     show help (also: sesame <command> --help)
  -V, --version  show the version

A door is a set of knock ports and an action. A rotating door's sequence is derived
from a shared secret and changes every period; each code opens once. See README.md.`,

  keygen: `Usage: sesame keygen [--out FILE] [--force]

Prints a new random 32-byte secret as base64url: the value of a door's "secret", or the
content of its "secret_file". Share it with the knocking side over a secure channel.

Options:
  --out FILE   write the secret to FILE with mode 0600 instead of printing it
  --force      overwrite FILE if it exists`,

  code: `Usage: sesame code --config FILE --door NAME [--at TIME] [--from ADDRESS] [--json]

Shows the knock sequence of a door at a time (default now) and when it rotates.

Options:
  -c, --config FILE   the config file (YAML) that defines the door
  -d, --door NAME     the door
  --at TIME           unix seconds or an ISO-8601 time, e.g. 2030-01-01T12:00:00Z
  --from ADDRESS      the knocking address, for a door with bind_source: true
  --json              print {"door","counter","valid_from","valid_until","knocks"}`,

  check: `Usage: sesame check --config FILE [--json]

Validates a config file. Prints a summary and exits 0 when it is valid; prints each
problem as FILE:LINE:COLUMN: key: message and exits 1 when it is not. Never prints secrets.

Options:
  -c, --config FILE   the config file
  --json              print the summary as JSON`,
};
