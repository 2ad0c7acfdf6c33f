/**
 * `sesame init`: a starter server config with a fresh secret (mode 0600), its client
 * config, and the command to knock with.
 * @module
 */
import { parseConfig } from "../config/load.ts";
import { DOOR_NAME } from "../config/schema.ts";
import { parseAddress } from "../address.ts";
import { addUser } from "./init_user.ts";
import { writeAllOrNothing } from "./init_files.ts";
import { UsageError } from "../errors.ts";
import { generateSecret } from "../secret.ts";
import { spaKeys } from "./keygen.ts";
import { type FlagSpec, type ParsedArgs, parseFlags, stringFlag } from "./args.ts";

/** The flags of `sesame init`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  out: { type: "string" },
  client: { type: "string" },
  door: { type: "string" },
  protect: { type: "string" },
  backend: { type: "string" },
  host: { type: "string" },
  user: { type: "string" },
  "first-user": { type: "string" },
  spa: { type: "boolean" },
  fwknoprc: { type: "string" },
  "state-file": { type: "string" },
  forward: { type: "string" },
  dnat: { type: "string" },
  force: { type: "boolean" },
} satisfies FlagSpec;

/** What the door opens: a port of this host, or (on a router) an inside host's port. */
export type InitAction =
  | { readonly kind: "port"; readonly backend: string; readonly port: number }
  | { readonly kind: "forward"; readonly host: string; readonly port: number }
  | { readonly kind: "dnat"; readonly port: number; readonly host: string; readonly to: number };

/** The YAML of a door's `open` action line. */
function actionLine(door: string, action: InitAction): string {
  const host = (h: string) => JSON.stringify(h);
  switch (action.kind) {
    case "forward":
      return `nft: { forward: { to: { host: ${host(action.host)}, port: ${action.port} } } }`;
    case "dnat":
      return `nft: { dnat: { port: ${action.port}, to: { host: ${
        host(action.host)
      }, port: ${action.to} } } }`;
    default:
      return action.backend === "command"
        ? `command: ["/usr/bin/logger", "sesame: open ${door} for {ip}"]`
        : `${action.backend}: { port: ${action.port}, protocol: tcp }`;
  }
}

/** What the door lets through, in words. */
function describeAction(action: InitAction): string {
  switch (action.kind) {
    case "forward":
      return `forwards to ${action.host} port ${action.port} (nft, on this router)`;
    case "dnat":
      return `forwards this host's port ${action.port} to ${action.host} port ${action.to} (nft dnat)`;
    default:
      return `protects TCP port ${action.port} with ${action.backend}`;
  }
}

/** The client's --wait-open for an action. */
function waitOpen(action: InitAction): string {
  if (action.kind === "forward") {
    return action.host.includes(":")
      ? `[${action.host}]:${action.port}`
      : `${action.host}:${action.port}`;
  }
  return String(action.port);
}

/** HOST:PORT, [IPV6]:PORT: an inside host's address and a port. */
function hostPort(text: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !parseAddress(host!) || !(port >= 1 && port <= 65535)) {
    throw new UsageError(
      `init: ${flag} must be ADDRESS:PORT of the inside host (IPv6 in brackets), e.g. 192.168.1.10:22 or [fd00::10]:22, received ${
        JSON.stringify(text)
      }`,
    );
  }
  return { host: parseAddress(host!)!.text, port };
}

/** The starter server config; its secret is in `key` (`<door>.key` beside it). */
export function serverTemplate(
  o: { door: string; action: InitAction; base: number; key?: string; stateFile: string },
): string {
  const action = actionLine(o.door, o.action);
  return `# sesame server config, written by "sesame init". Its secret is in ${o.door}.key beside it
# (mode 0600): rotate it with "sesame keygen --out ${
    o.key ?? `${o.door}.key`
  } --force" and a reload.
# Check it with: sesame check -c THIS_FILE      Review the firewall: sesame nft-ruleset -c THIS_FILE
listen:
  addresses: ["::"]                # IPv4 and IPv6
state_file: ${JSON.stringify(o.stateFile)}
doors:
  ${o.door}:
    secret_file: ${o.door}.key           # relative to this file
    ports: "${o.base}-${o.base + 999}"   # the knock pool: open these in any other firewall
    length: 4
    protocol: tcp
    period: 30s
    sequence_timeout: 10s
    open:
      for: 30s
      ${action}
`;
}

/** The matching client config. */
export function clientTemplate(o: { door: string; secret: string; base: number }): string {
  return `# sesame client config for door "${o.door}", written by "sesame init". Keep it mode 0600.
doors:
  ${o.door}:
    secret: "${o.secret}"
    ports: "${o.base}-${o.base + 999}"
    length: 4
    protocol: tcp
    period: 30s
`;
}

/** The flags plain init and init --spa share, checked. */
function initFlags(parsed: ParsedArgs) {
  const out = stringFlag(parsed, "out", "init") ?? "sesame.yaml";
  const client = stringFlag(parsed, "client", "init") ?? out.replace(/(\.ya?ml)?$/, "-client.yaml");
  const door = stringFlag(parsed, "door", "init") ?? "ssh";
  const port = Number(stringFlag(parsed, "protect", "init") ?? "22");
  const backend = stringFlag(parsed, "backend", "init") ?? "nft";
  const host = stringFlag(parsed, "host", "init") ?? "SERVER";
  const stateFile = stringFlag(parsed, "state-file", "init") ?? "/var/lib/sesame/state.db";
  const forward = stringFlag(parsed, "forward", "init");
  const dnat = stringFlag(parsed, "dnat", "init");
  if (!DOOR_NAME.test(door)) {
    throw new UsageError(`init: --door must be letters, digits, "_" or "-"`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`init: --protect must be a port 1–65535`);
  }
  if (!["nft", "iptables", "command"].includes(backend)) {
    throw new UsageError(`init: --backend must be nft, iptables or command`);
  }
  if (!stateFile.startsWith("/")) {
    throw new UsageError(`init: --state-file must be an absolute path`);
  }
  const given = [forward, dnat, parsed.values.protect].filter((v) => v !== undefined).length;
  if (given > 1) throw new UsageError(`init: give one of --protect, --forward and --dnat`);
  if ((forward ?? dnat) !== undefined && backend !== "nft") {
    throw new UsageError(
      `init: --forward and --dnat are nft doors (a router's); not --backend ${backend}`,
    );
  }
  let action: InitAction = { kind: "port", backend, port };
  if (forward !== undefined) action = { kind: "forward", ...hostPort(forward, "--forward") };
  if (dnat !== undefined) {
    const m = /^(\d{1,5}):(.+)$/.exec(dnat);
    const outside = Number(m?.[1]);
    if (!m || !(outside >= 1 && outside <= 65535)) {
      throw new UsageError(
        `init: --dnat must be PORT:ADDRESS:PORT (this router's port, then the inside host's address and port), e.g. 2222:192.168.1.10:22, received ${
          JSON.stringify(dnat)
        }`,
      );
    }
    const inside = hostPort(m[2], "--dnat");
    action = { kind: "dnat", port: outside, host: inside.host, to: inside.port };
  }
  return { out, client, door, port, backend, host, stateFile, action };
}

/** Runs `sesame init`; returns the exit code. */
export async function init(args: string[]): Promise<number> {
  const parsed = parseFlags("init", args, FLAGS);
  const user = stringFlag(parsed, "user", "init");
  if (user !== undefined) return await addUser(parsed, user);
  if (parsed.values.spa) return await initSpa(parsed);
  const { out, client, door, host, stateFile, action } = initFlags(parsed);
  const secret = generateSecret();
  const base = 20_000 + 1000 * Math.floor(Math.random() * 12); // 20000–31999: below the usual ephemeral range
  const values: {
    door: string;
    secret: string;
    action: InitAction;
    base: number;
    key?: string;
    stateFile: string;
  } = { door, secret, action, base, stateFile };
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
  const key = `${dir}/${door}.key`;
  // The rotation hint names the key wherever the admin runs it from.
  values.key = key.startsWith("/") ? key : `${Deno.cwd()}/${key.replace(/^\.\//, "")}`;
  // Validate before writing anything: init never leaves a config that check would refuse.
  parseConfig(serverTemplate(values), out, { readSecretFile: () => secret });
  parseConfig(clientTemplate(values), client);
  await writeAllOrNothing([
    [key, secret + "\n"],
    [out, serverTemplate(values)],
    [client, clientTemplate(values)],
  ], parsed.values.force === true);
  console.log(
    `wrote ${out} (server), ${key} (its secret) and ${client} (client), all mode 0600`,
  );
  console.log(`door "${door}" ${describeAction(action)}; knock ports ${base}-${base + 999}`);
  console.log(`\non the server:  sesame listen -c ${out}`);
  console.log(
    `on the client:  sesame knock ${host} -c ${client} --door ${door} --wait-open ${
      waitOpen(action)
    }`,
  );
  return 0;
}

/**
 * `sesame init --spa`: a server config with an SPA door (its two keys in DOOR.key and
 * DOOR.hmac beside it), the sesame client config, and, mode 0600, the `.fwknoprc` stanza
 * fwknop's own client reads. Keys never go on a command line (ps, shell history).
 */
async function initSpa(parsed: ParsedArgs): Promise<number> {
  const { out, client, door, port, host, stateFile, action } = initFlags(parsed);
  if (action.kind !== "port") {
    throw new UsageError(`init --spa: --forward and --dnat are for knock doors; edit open: after`);
  }
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
  const rc = stringFlag(parsed, "fwknoprc", "init") ?? `${dir}/fwknoprc`;
  const { key, hmac } = spaKeys();
  const serverText =
    `# sesame server config with a single-packet (fwknop SPA) door, written by "sesame init --spa".
# Its keys are in ${door}.key and ${door}.hmac beside it (mode 0600).
listen:
  addresses: ["::"]
state_file: ${JSON.stringify(stateFile)}
doors:
  ${door}:
    spa:
      port: 62201                      # UDP: open it in any other firewall
      key_file: ${door}.key
      hmac_key_file: ${door}.hmac
      hmac_digest: sha256
      max_age: 120s
      access: ["tcp/${port}"]
    open:
      for: 30s
      ${actionLine(door, action)}
`;
  const clientText =
    `# sesame client config for the SPA door "${door}", written by "sesame init --spa". Keep it mode 0600.
doors:
  ${door}:
    spa: { port: 62201, key_base64: "${key}", hmac_key_base64: "${hmac}", hmac_digest: sha256, access: ["tcp/${port}"] }
`;
  const stanza = `sesame-${door}`;
  const rcText =
    `# fwknop client stanza for sesame's SPA door "${door}", written by "sesame init --spa".
# Use it with: fwknop -n ${stanza} --rc-file THIS_FILE (or append it to ~/.fwknoprc). Mode 0600.
[${stanza}]
SPA_SERVER          ${host}
SPA_SERVER_PORT     62201
SPA_SERVER_PROTO    udp
ACCESS              tcp/${port}
ALLOW_IP            source
KEY_BASE64          ${key}
HMAC_KEY_BASE64     ${hmac}
USE_HMAC            Y
HMAC_DIGEST_TYPE    sha256
`;
  // Validate before writing anything: init never leaves a config that check would refuse.
  parseConfig(serverText, out, { readSecretFile: (f) => f.endsWith(".hmac") ? hmac : key });
  parseConfig(clientText, client);
  await writeAllOrNothing([
    [`${dir}/${door}.key`, key + "\n"],
    [`${dir}/${door}.hmac`, hmac + "\n"],
    [out, serverText],
    [client, clientText],
    [rc, rcText],
  ], parsed.values.force === true);
  console.log(
    `wrote ${out} (server), ${dir}/${door}.key and ${dir}/${door}.hmac (its keys), ${client} (sesame client) and ${rc} (fwknop client stanza), all mode 0600`,
  );
  console.log(`\non the server:  sesame listen -c ${out}`);
  console.log(
    `with sesame:    sesame knock ${host} -c ${client} --door ${door} --wait-open ${port}`,
  );
  console.log(`with fwknop:    fwknop -n ${stanza} --rc-file ${rc}`);
  console.log(
    `in a phone app (Fwknop2): server ${host}, port 62201, access tcp/${port}, "allow IP: source", Rijndael key (base64) and HMAC key (base64) from ${rc}, HMAC SHA256`,
  );
  return 0;
}
