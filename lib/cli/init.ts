/**
 * `sesame init`: a starter server config with a fresh secret (mode 0600), its client
 * config, and the command to knock with.
 * @module
 */
import { isMap, parseDocument, YAMLMap } from "yaml";
import { loadConfig, parseConfig, resolveSecretPath } from "../config/load.ts";
import { DOOR_NAME, ROTATING_KEYS } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import { generateSecret } from "../secret.ts";
import { spaKeys } from "./keygen.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";

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
  force: { type: "boolean" },
} satisfies FlagSpec;

/** The starter server config; its secret is in `key` (`<door>.key` beside it). */
export function serverTemplate(
  o: { door: string; port: number; backend: string; base: number; key?: string },
): string {
  const action = o.backend === "command"
    ? `command: ["/usr/bin/logger", "sesame: open ${o.door} for {ip}"]`
    : `${o.backend}: { port: ${o.port}, protocol: tcp }`;
  return `# sesame server config, written by "sesame init". Its secret is in ${o.door}.key beside it
# (mode 0600): rotate it with "sesame keygen --out ${
    o.key ?? `${o.door}.key`
  } --force" and a reload.
# Check it with: sesame check -c THIS_FILE      Review the firewall: sesame nft-ruleset -c THIS_FILE
listen:
  addresses: ["::"]                # IPv4 and IPv6
state_file: /var/lib/sesame/state.db
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

async function writeSecretFile(path: string, text: string, force: boolean): Promise<void> {
  try {
    await Deno.writeTextFile(path, text, { mode: 0o600, createNew: !force });
    await Deno.chmod(path, 0o600);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`init: ${path} exists; refusing to overwrite it (use --force)`);
    }
    throw new UsageError(`init: cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The flags plain init and init --spa share, checked. */
function initFlags(parsed: Parameters<typeof stringFlag>[0]) {
  const out = stringFlag(parsed, "out", "init") ?? "sesame.yaml";
  const client = stringFlag(parsed, "client", "init") ?? out.replace(/(\.ya?ml)?$/, "-client.yaml");
  const door = stringFlag(parsed, "door", "init") ?? "ssh";
  const port = Number(stringFlag(parsed, "protect", "init") ?? "22");
  const backend = stringFlag(parsed, "backend", "init") ?? "nft";
  const host = stringFlag(parsed, "host", "init") ?? "SERVER";
  if (!DOOR_NAME.test(door)) {
    throw new UsageError(`init: --door must be letters, digits, "_" or "-"`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`init: --protect must be a port 1–65535`);
  }
  if (!["nft", "iptables", "command"].includes(backend)) {
    throw new UsageError(`init: --backend must be nft, iptables or command`);
  }
  return { out, client, door, port, backend, host };
}

/** Runs `sesame init`; returns the exit code. */
export async function init(args: string[]): Promise<number> {
  const parsed = parseFlags("init", args, FLAGS);
  const user = stringFlag(parsed, "user", "init");
  if (user !== undefined) return await addUser(parsed, user);
  if (parsed.values.spa) return await initSpa(parsed);
  const { out, client, door, port, backend, host } = initFlags(parsed);
  const secret = generateSecret();
  const base = 20_000 + 1000 * Math.floor(Math.random() * 12); // 20000–31999: below the usual ephemeral range
  const values: {
    door: string;
    secret: string;
    port: number;
    backend: string;
    base: number;
    key?: string;
  } = { door, secret, port, backend, base };
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
  const key = `${dir}/${door}.key`;
  // The rotation hint names the key wherever the admin runs it from.
  values.key = key.startsWith("/") ? key : `${Deno.cwd()}/${key.replace(/^\.\//, "")}`;
  // Validate before writing anything: init never leaves a config that check would refuse.
  parseConfig(serverTemplate(values), out, { readSecretFile: () => secret });
  parseConfig(clientTemplate(values), client);
  for (const file of [out, client]) {
    const parent = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) || "/" : ".";
    await Deno.mkdir(parent, { recursive: true, mode: 0o700 }).catch((e) => {
      throw new UsageError(`init: cannot create ${parent}: ${(e as Error).message}`, { cause: e });
    });
  }
  const force = parsed.values.force === true;
  await writeSecretFile(key, secret + "\n", force);
  await writeSecretFile(out, serverTemplate(values), force);
  await writeSecretFile(client, clientTemplate(values), force);
  console.log(
    `wrote ${out} (server), ${key} (its secret) and ${client} (client), all mode 0600`,
  );
  console.log(
    `door "${door}" protects TCP port ${port} with ${backend}; knock ports ${base}-${base + 999}`,
  );
  console.log(`\non the server:  sesame listen -c ${out}`);
  console.log(
    `on the client:  sesame knock ${host} -c ${client} --door ${door} --wait-open ${port}`,
  );
  return 0;
}

/**
 * `sesame init --spa`: a server config with an SPA door (its two keys in DOOR.key and
 * DOOR.hmac beside it), the sesame client config, and, mode 0600, the `.fwknoprc` stanza
 * fwknop's own client reads. Keys never go on a command line (ps, shell history).
 */
async function initSpa(parsed: Parameters<typeof stringFlag>[0]): Promise<number> {
  const { out, client, door, port, backend, host } = initFlags(parsed);
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
  const rc = stringFlag(parsed, "fwknoprc", "init") ?? `${dir}/fwknoprc`;
  const { key, hmac } = spaKeys();
  const action = backend === "command"
    ? `command: ["/usr/bin/logger", "sesame: open ${door} for {ip}"]`
    : `${backend}: { port: ${port}, protocol: tcp }`;
  const serverText =
    `# sesame server config with a single-packet (fwknop SPA) door, written by "sesame init --spa".
# Its keys are in ${door}.key and ${door}.hmac beside it (mode 0600).
listen:
  addresses: ["::"]
state_file: /var/lib/sesame/state.db
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
      ${action}
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
  for (const file of [out, client, rc]) {
    const parent = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) || "/" : ".";
    await Deno.mkdir(parent, { recursive: true, mode: 0o700 }).catch((e) => {
      throw new UsageError(`init: cannot create ${parent}: ${(e as Error).message}`, { cause: e });
    });
  }
  const force = parsed.values.force === true;
  await writeSecretFile(`${dir}/${door}.key`, key + "\n", force);
  await writeSecretFile(`${dir}/${door}.hmac`, hmac + "\n", force);
  await writeSecretFile(out, serverText, force);
  await writeSecretFile(client, clientText, force);
  await writeSecretFile(rc, rcText, force);
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

/** The pool keys a user's client config copies from the server's door: all but the secrets. */
const CLIENT_KEYS = ROTATING_KEYS.filter((k) => !["secret", "secret_file", "users"].includes(k));

/**
 * `sesame init --user NAME [--door DOOR] [--out SERVER.yaml] [--client FILE]`: adds a user
 * with a fresh secret (`DOOR-NAME.key`, 0600) to a door with `users` in an existing server
 * config (comments kept), and writes that user's client config. The new config is loaded
 * and checked before it replaces the old one; nothing changes when it would not load.
 */
async function addUser(parsed: Parameters<typeof stringFlag>[0], user: string): Promise<number> {
  const out = stringFlag(parsed, "out", "init") ?? "sesame.yaml";
  const door = stringFlag(parsed, "door", "init") ?? "ssh";
  const host = stringFlag(parsed, "host", "init") ?? "SERVER";
  if (!DOOR_NAME.test(user)) {
    throw new UsageError(`init: --user must be 1–32 letters, digits, "_" or "-"`);
  }
  const client = stringFlag(parsed, "client", "init") ??
    out.replace(/[^/]*$/, `${door}-${user}-client.yaml`);
  let text: string;
  try {
    text = await Deno.readTextFile(out);
  } catch (e) {
    throw new UsageError(
      `init --user: cannot read the server config ${out}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const doc = parseDocument(text);
  const node = doc.getIn(["doors", door]);
  if (!isMap(node)) throw new UsageError(`init --user: ${out} has no door "${door}"`);
  if (node.has("sequence")) {
    throw new UsageError(
      `init --user: door "${door}" is a static door: users need a rotating door`,
    );
  }
  const first = stringFlag(parsed, "first-user", "init");
  if (!node.has("users")) {
    // A door with one secret becomes a door with users: that secret is its first user's.
    if (first === undefined) {
      throw new UsageError(
        `init --user: door "${door}" has one secret, not users: give --first-user NAME, the name of whoever holds that secret now (it moves under "users:" unchanged, and their client config keeps working)`,
      );
    }
    if (!DOOR_NAME.test(first) || first === user) {
      throw new UsageError(`init --user: --first-user must be a user name other than --user`);
    }
    const moved = new YAMLMap();
    moved.flow = true;
    for (const key of ["secret", "secret_file"]) {
      if (node.has(key)) {
        moved.set(key, node.get(key));
        node.delete(key);
      }
    }
    const firstUsers = new YAMLMap();
    firstUsers.set(first, moved);
    node.set("users", firstUsers);
  } else if (first !== undefined) {
    throw new UsageError(
      `init --user: door "${door}" has users already: --first-user is not needed`,
    );
  }
  const users = node.get("users");
  if (!isMap(users)) throw new UsageError(`init --user: doors.${door}.users is not a mapping`);
  if (users.has(user)) {
    throw new UsageError(`init --user: door "${door}" has a user "${user}" already`);
  }
  const keyName = `${door}-${user}.key`;
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
  const key = `${dir}/${keyName}`;
  // Never a file another door or user reads its secret from, --force or not.
  const taken = secretFiles(doc.toJS()).map((f) => resolveSecretPath(f, out));
  if (taken.includes(resolveSecretPath(keyName, out))) {
    throw new UsageError(
      `init --user: ${key} is the secret_file of another door or user in ${out}: choose another user name`,
    );
  }
  const entry = new YAMLMap();
  entry.flow = true;
  entry.set("secret_file", keyName);
  users.set(user, entry);
  const secret = generateSecret();
  const force = parsed.values.force === true;
  await writeSecretFile(key, secret + "\n", force);
  const pending = `${out}.new-${Deno.pid}`;
  try {
    await writeSecretFile(pending, doc.toString(), true);
    const config = await loadConfig(pending); // the whole config, secrets and all, as listen reads it
    if (!config.doors.some((d) => d.name === door)) throw new Error(`door ${door} vanished`);
    const pool = Object.fromEntries(
      CLIENT_KEYS.flatMap((k) => node.has(k) ? [[k, doc.getIn(["doors", door, k])]] : []),
    );
    const clientText =
      `# sesame client config for user "${user}" of door "${door}", written by "sesame init --user". Keep it mode 0600.
doors:
  ${door}:
    secret: "${secret}"
${Object.entries(pool).map(([k, v]) => `    ${k}: ${JSON.stringify(toPlain(v))}`).join("\n")}
`;
    parseConfig(clientText, client);
    await writeSecretFile(client, clientText, force);
    await Deno.rename(pending, out);
  } catch (e) {
    await Deno.remove(pending).catch(() => {});
    await Deno.remove(key).catch(() => {});
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `init --user: the config would not load, nothing changed: ${(e as Error).message}`,
      { cause: e },
    );
  }
  console.log(`added user "${user}" to door "${door}" in ${out}; their secret is in ${key} (0600)`);
  console.log(`wrote ${client} (${user}'s client config, mode 0600): give it to ${user} securely`);
  console.log(
    `\nreload the daemon to let ${user} in:  systemctl reload sesame   (or: kill -HUP <pid>)`,
  );
  const protect = node.getIn(["open", "nft", "port"]) ?? node.getIn(["open", "iptables", "port"]);
  console.log(
    `on ${user}'s machine, with that file:  sesame knock ${host} -c ${
      client.replace(/.*\//, "")
    } --door ${door}${typeof protect === "number" ? ` --wait-open ${protect}` : ""}`,
  );
  return 0;
}

/** Every `secret_file` of a config document (doors and users). */
function secretFiles(raw: unknown): string[] {
  const doors = (raw as { doors?: Record<string, unknown> })?.doors ?? {};
  return Object.values(doors).flatMap((d) => {
    const door = (d ?? {}) as { secret_file?: unknown; users?: Record<string, unknown> };
    const users = Object.values(door.users ?? {}) as { secret_file?: unknown }[];
    return [door.secret_file, ...users.map((u) => u?.secret_file)].filter((f): f is string =>
      typeof f === "string"
    );
  });
}

function toPlain(value: unknown): unknown {
  return value && typeof value === "object" && "toJSON" in value
    ? (value as { toJSON(): unknown }).toJSON()
    : value;
}
