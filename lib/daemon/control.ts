/**
 * The control socket: how `sesame status` and `sesame revoke` reach a running daemon. A
 * Unix socket under systemd's `RuntimeDirectory=sesame` (`/run/sesame`, mode 0700), mode
 * 0600: only root reaches it. Named per network namespace like the instance lock, since
 * the doors it controls belong to one namespace. One JSON request line, one JSON answer.
 * @module
 */
import { ConfigError } from "../errors.ts";
import { netNamespaceId } from "../system.ts";
import { LOCK_DIR } from "./instance_lock.ts";
import { writeAll } from "../net/write_all.ts";

/** What a client may ask. */
export type ControlRequest =
  | { readonly op: "status" }
  /** Read the config file again and apply it; the answer lists the changes or the refusal. */
  | { readonly op: "reload" }
  /** Lift a scanner's bans. */
  | { readonly op: "unban"; readonly ip: string }
  | {
    readonly op: "revoke";
    /** The door's name. */
    readonly door: string;
    /** Only this source. */
    readonly ip?: string;
    /** Only this user's. */
    readonly user?: string;
    /** Also drop the connections they have established (conntrack). */
    readonly established?: boolean;
  };

/** An answer: `ok` with the operation's fields, or an error to show the admin. */
export type ControlAnswer =
  | ({ readonly ok: true } & Record<string, unknown>)
  | {
    readonly ok: false;
    readonly error: string;
    /** Set when the request was fine but nothing matched (nothing was open). */
    readonly nothing?: true;
    /** A reload whose config is in force although something after it failed. */
    readonly applied?: true;
  };

/** Answers one request. */
export type ControlHandler = (request: ControlRequest) => Promise<ControlAnswer>;

/** A control socket the daemon serves. */
export interface ControlServer {
  /** The socket's path. */
  readonly path: string;
  /** Stops serving and removes the socket. */
  close(): void;
}

/** Longest request read, bytes. */
const MAX_REQUEST = 4096;
/** Longest answer read, bytes (a status of many thousands of open doors). */
const MAX_ANSWER = 256 * 1024 * 1024;
/** Clients served at once; more are closed unanswered. */
const MAX_CLIENTS = 16;
/** A client that sends nothing for this long is dropped. */
const READ_TIMEOUT_MS = 2000;

/** The control socket's path in this network namespace. */
export async function controlPath(dir: string = LOCK_DIR): Promise<string> {
  return `${dir}/control-net-${await netNamespaceId() ?? "default"}.sock`;
}

/**
 * Serves the control socket at `path`, taking it over from a daemon that died (the
 * caller holds this namespace's lock, or checked that nobody answers there).
 * @throws {ConfigError} when another live daemon answers on `path`.
 */
export async function serveControl(path: string, handler: ControlHandler): Promise<ControlServer> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await Deno.lstat(path).catch(() => undefined);
  if (info) {
    if (await answers(path)) {
      throw new ConfigError([{
        path: "",
        message:
          `another sesame listen answers on ${path} in this network namespace: status and revoke would not know which daemon to reach. Stop it first`,
      }]);
    }
    if (!info.isSocket) {
      throw new ConfigError([{
        path: "",
        message: `${path} exists and is not a socket: remove it`,
      }]);
    }
    await Deno.remove(path); // left by a daemon that died
  }
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, 0o600);
  let closed = false;
  let serving = 0;
  (async () => {
    while (!closed) {
      let conn: Deno.UnixConn;
      try {
        conn = await listener.accept();
      } catch {
        if (closed) return;
        await new Promise((r) => setTimeout(r, 50)); // out of descriptors: never fatal, never a spin
        continue;
      }
      if (serving >= MAX_CLIENTS) {
        try {
          conn.close(); // root's own tools: a few at a time is plenty
        } catch { /* gone */ }
        continue;
      }
      serving++;
      void serveOne(conn, handler).finally(() => serving--);
    }
  })();
  return {
    path,
    close() {
      closed = true;
      try {
        listener.close();
      } catch { /* closed */ }
      try {
        Deno.removeSync(path);
      } catch { /* gone already */ }
    },
  };
}

async function serveOne(conn: Deno.UnixConn, handler: ControlHandler): Promise<void> {
  let answer: ControlAnswer;
  try {
    const request = parseRequest(await readLine(conn, READ_TIMEOUT_MS, MAX_REQUEST));
    answer = typeof request === "string" ? { ok: false, error: request } : await handler(request);
  } catch (e) {
    answer = { ok: false, error: (e as Error).message };
  }
  try {
    await writeAll(conn, new TextEncoder().encode(JSON.stringify(answer) + "\n"));
  } catch { /* the client left */ }
  try {
    conn.close();
  } catch { /* closed */ }
}

/** The request, or why it is not one. */
function parseRequest(line: string): ControlRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return "the request is not JSON";
  }
  const r = value as Record<string, unknown>;
  if (r?.op === "status") return { op: "status" };
  if (r?.op === "reload") return { op: "reload" };
  if (r?.op === "unban") {
    return typeof r.ip === "string" ? { op: "unban", ip: r.ip } : "unban needs an ip";
  }
  if (r?.op !== "revoke") return `unknown operation ${JSON.stringify(r?.op)}`;
  if (typeof r.door !== "string") return "revoke needs a door";
  for (const key of ["ip", "user"] as const) {
    if (r[key] !== undefined && typeof r[key] !== "string") return `${key} must be text`;
  }
  return {
    op: "revoke",
    door: r.door,
    ...(typeof r.ip === "string" ? { ip: r.ip } : {}),
    ...(typeof r.user === "string" ? { user: r.user } : {}),
    established: r.established === true,
  };
}

/**
 * Asks the daemon behind `path`; `undefined` when no daemon answers there (no socket, or
 * nobody listening).
 * @throws {Error} when the daemon answers something that is not an answer.
 */
export async function askDaemon(
  path: string,
  request: ControlRequest,
  timeoutMs = 15_000,
): Promise<ControlAnswer | undefined> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.ConnectionRefused) {
      return undefined;
    }
    throw new Error(`cannot reach the daemon at ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await writeAll(conn, new TextEncoder().encode(JSON.stringify(request) + "\n"));
    const line = await readLine(conn, timeoutMs, MAX_ANSWER);
    const answer = JSON.parse(line) as ControlAnswer;
    if (typeof answer?.ok !== "boolean") throw new Error("not an answer");
    return answer;
  } catch (e) {
    throw new Error(`the daemon at ${path} gave no usable answer: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** True when a daemon accepts connections on `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Reads up to the first newline (or the end), at most `maxBytes`. */
async function readLine(conn: Deno.Conn, timeoutMs: number, maxBytes: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    const buffer = new Uint8Array(16_384);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      size += n;
      if (buffer.subarray(0, n).includes(10)) break;
      if (size > maxBytes) throw new Error(`longer than ${maxBytes} bytes`);
    }
  } finally {
    clearTimeout(timer);
  }
  const text = new TextDecoder().decode(concat(chunks, size));
  const end = text.indexOf("\n");
  return end < 0 ? text : text.slice(0, end);
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
