/**
 * A small client of etcd's v3 JSON gateway (`/v3/kv/txn`, `/v3/kv/range`,
 * `/v3/lease/grant`, `/v3/watch`), over `fetch`: no gRPC stack to bundle, and TLS with
 * client certificates through `Deno.createHttpClient`. Keys and values are base64 on the
 * wire; revisions and lease IDs are int64 and stay strings here (above 2^53 a number
 * would round). Only what sesame uses is here; consensus is etcd's.
 * @module
 */

import {
  b64,
  type KeyValue,
  kv,
  prefixEnd,
  type RawKv,
  type Txn,
  type TxnResult,
  txnResult,
  wireTxn,
} from "./etcd_wire.ts";

export type { Compare, KeyValue, Op, Txn, TxnResult } from "./etcd_wire.ts";
export { b64, prefixEnd };

/** Where etcd is and how to reach it. */
export interface EtcdSettings {
  /** Client URLs of the members, e.g. `https://10.0.0.1:2379`. */
  readonly endpoints: readonly string[];
  /** PEM of the CA that signed the members' certificates. */
  readonly ca?: string;
  /** PEM of this node's client certificate, and its key. */
  readonly cert?: string;
  readonly key?: string;
  /** How long one call may take, over every endpoint tried, ms. */
  readonly timeoutMs: number;
  /**
   * etcd's user and password, when auth is on. Through the JSON gateway etcd does not take
   * the user from the client certificate's common name: the gateway authenticates and
   * sends the token it gets with every call.
   */
  readonly user?: string;
  readonly password?: string;
}

/** No member answered in time, or none could serve the request (no quorum, no leader). */
export class EtcdUnavailable extends Error {
  /** @param message what went wrong, with the last endpoint's error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EtcdUnavailable";
  }
}

/** One watch event. */
export interface WatchEvent {
  readonly type: "PUT" | "DELETE";
  readonly kv: KeyValue;
}

/** Thrown by a watch whose start revision was compacted away: read again, then watch. */
export class WatchCompacted extends Error {
  constructor() {
    super("the watch's history was compacted");
    this.name = "WatchCompacted";
  }
}

/** The auth token was refused (expired, or auth changed): authenticate again. */
class TokenExpired extends Error {}

/** etcd answered, with an error (not a lost or late answer): the request itself was refused. */
export class EtcdAnswered extends Error {
  /** @param message the member and etcd's error. */
  constructor(message: string) {
    super(message);
    this.name = "EtcdAnswered";
  }
}

/**
 * etcd refused this gateway's credentials or their permission on a key: every member
 * would, so no other is tried, and the message says what to fix.
 */
export class EtcdRefused extends EtcdUnavailable {
  /** @param message what etcd said, and what to check. */
  constructor(message: string) {
    super(message);
    this.name = "EtcdRefused";
  }
}

const REFUSALS =
  /user name is empty|authentication failed|permission denied|user name not found|invalid user ID/;

/**
 * A client of one etcd cluster. Calls go to the endpoint that last answered, and on to
 * the next when it fails; a call that no endpoint answers within `timeoutMs` throws
 * {@link EtcdUnavailable}.
 */
export class EtcdClient {
  readonly #settings: EtcdSettings;
  readonly #http: Deno.HttpClient | undefined;
  #good = 0;
  /** The auth token (simple tokens expire: renewed when a call says so). */
  #token: Promise<string> | undefined;

  /** @param settings the endpoints, the TLS material and the call time limit. */
  constructor(settings: EtcdSettings) {
    if (settings.endpoints.length === 0) throw new RangeError("etcd needs an endpoint");
    this.#settings = settings;
    this.#http = settings.ca || settings.cert
      ? Deno.createHttpClient({
        ...(settings.ca ? { caCerts: [settings.ca] } : {}),
        ...(settings.cert && settings.key ? { cert: settings.cert, key: settings.key } : {}),
      })
      : undefined;
  }

  /** Runs a transaction. */
  async txn(txn: Txn): Promise<TxnResult> {
    const raw = await this.#call("/v3/kv/txn", wireTxn(txn));
    return txnResult(raw, raw.header?.revision ?? "0");
  }

  /** Every key under `prefix` (linearizable: a member without quorum cannot answer). */
  async range(prefix: string): Promise<{ kvs: KeyValue[]; revision: string }> {
    const raw = await this.#call("/v3/kv/range", {
      key: b64(prefix),
      range_end: b64(prefixEnd(prefix)),
    });
    return { kvs: (raw.kvs ?? []).map(kv), revision: raw.header?.revision ?? "0" };
  }

  /** A lease of at least `ttlSeconds`; its ID (int64, as text). */
  async grantLease(ttlSeconds: number): Promise<string> {
    const raw = await this.#call("/v3/lease/grant", { TTL: String(ttlSeconds) });
    if (typeof raw.ID !== "string") throw new EtcdUnavailable(`lease grant answered ${raw.error}`);
    return raw.ID;
  }

  /** The answering member's status (version, leader, raft term): `sesame check --connect`. */
  async memberStatus(
    endpoint: string,
  ): Promise<{ version: string; leader: string; member: string }> {
    const raw = await this.#post(
      endpoint,
      "/v3/maintenance/status",
      {},
      this.#signal(),
      await this.#headers(endpoint),
    );
    return { version: raw.version, leader: raw.leader, member: raw.header?.member_id };
  }

  /**
   * Watches every key under `prefix` from `startRevision` on; yields each response's
   * events until the stream ends or `signal` aborts. Throws {@link WatchCompacted} when
   * the revision is gone, {@link EtcdUnavailable} when no member takes the watch.
   */
  async *watch(
    prefix: string,
    startRevision: string,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent[]> {
    const body = JSON.stringify({
      create_request: {
        key: b64(prefix),
        range_end: b64(prefixEnd(prefix)),
        start_revision: startRevision,
      },
    });
    const endpoint = this.#settings.endpoints[this.#good];
    let response: Response;
    try {
      const headers = await this.#headers(endpoint);
      // The time limit covers the answer's headers only: the stream itself lives until
      // `signal` (an AbortSignal.timeout would end the body too).
      const opening = new AbortController();
      const timer = setTimeout(() => opening.abort(), this.#settings.timeoutMs);
      try {
        response = await fetch(`${endpoint}/v3/watch`, {
          method: "POST",
          body,
          // A member that loses its leader ends the watch (etcd's "require leader"): a
          // gateway then says it is cut off rather than wait on a member without quorum.
          headers: { ...headers, "Grpc-Metadata-Hasleader": "true" },
          signal: AbortSignal.any([signal, opening.signal]),
          ...(this.#http ? { client: this.#http } : {}),
        });
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      this.#next();
      throw new EtcdUnavailable(`watch on ${endpoint}: ${(e as Error).message}`, { cause: e });
    }
    if (!response.ok || !response.body) {
      const text = await response.text().catch(() => "");
      this.#forgetTokenIf(text);
      this.#next();
      throw new EtcdUnavailable(
        `watch on ${endpoint}: HTTP ${response.status} ${text.slice(0, 200)}`,
      );
    }
    // After the headers the stream may be quiet for long: only `signal` ends it.
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    let buffer = "";
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).trim();
          buffer = buffer.slice(end + 1);
          if (line === "") continue;
          const message = JSON.parse(line);
          if (message.error) {
            this.#forgetTokenIf(String(message.error.message));
            throw new EtcdUnavailable(`watch: ${message.error.message}`);
          }
          const result = message.result ?? {};
          if (result.compact_revision && result.compact_revision !== "0") {
            throw new WatchCompacted();
          }
          if (result.canceled) {
            this.#forgetTokenIf(String(result.cancel_reason));
            throw new EtcdUnavailable(`watch canceled: ${result.cancel_reason}`);
          }
          const events = (result.events ?? []).map((e: { type?: string; kv: RawKv }) => ({
            type: e.type === "DELETE" ? "DELETE" : "PUT",
            kv: kv(e.kv),
          }));
          if (events.length > 0) yield events;
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof WatchCompacted || e instanceof EtcdUnavailable) throw e;
      this.#next();
      throw new EtcdUnavailable(`watch on ${endpoint}: ${(e as Error).message}`, { cause: e });
    } finally {
      signal.removeEventListener("abort", onAbort);
      reader.cancel().catch(() => {});
    }
  }

  /** Releases the HTTP client. */
  close(): void {
    this.#http?.close();
  }

  /** An expired token ends a watch as any error: the next one authenticates again. */
  #forgetTokenIf(text: string): void {
    if (/invalid auth token|auth: revision in header is old/.test(text)) this.#token = undefined;
  }

  #next(): void {
    this.#good = (this.#good + 1) % this.#settings.endpoints.length;
  }

  #signal(): AbortSignal {
    return AbortSignal.timeout(this.#settings.timeoutMs);
  }

  // deno-lint-ignore no-explicit-any
  async #call(path: string, body: unknown): Promise<any> {
    const signal = this.#signal();
    const { endpoints, timeoutMs } = this.#settings;
    const end = performance.now() + timeoutMs;
    let last: unknown;
    let renewed = false;
    const causes: string[] = [];
    // Each endpoint once, starting from the one that answered last; all within the limit,
    // each with its share of what is left: a member that hangs (stopped, partitioned) costs
    // a share, not the whole call. A transaction sent again may have committed the first
    // time: the claims recognise their own (claims.ts).
    for (let tried = 0; tried < endpoints.length && !signal.aborted; tried++) {
      const endpoint = endpoints[this.#good];
      const share = Math.max(1, (end - performance.now()) / (endpoints.length - tried));
      const attempt = AbortSignal.any([signal, AbortSignal.timeout(share)]);
      try {
        return await this.#post(endpoint, path, body, attempt, await this.#headers(endpoint));
      } catch (e) {
        last = e;
        if (e instanceof EtcdRefused) throw e;
        causes.push(`${endpoint}: ${attemptCause(e, attempt, share)}`);
        if (e instanceof TokenExpired && !renewed) {
          renewed = true;
          this.#token = undefined;
          tried--; // the same endpoint again, with a new token
          continue;
        }
        this.#next();
      }
    }
    throw new EtcdUnavailable(`no etcd member answered: ${causes.join("; ")}`, { cause: last });
  }

  /** The Authorization header, when auth is on (a token fetched once, then reused). */
  async #headers(endpoint: string): Promise<Record<string, string>> {
    const { user, password } = this.#settings;
    if (user === undefined) return {};
    this.#token ??= this.#post(endpoint, "/v3/auth/authenticate", {
      name: user,
      password: password ?? "",
    }, this.#signal()).then((raw) => {
      if (typeof raw.token !== "string") throw new Error(`${endpoint}: no token for ${user}`);
      return raw.token;
    });
    const pending = this.#token;
    pending.catch(() => {
      if (this.#token === pending) this.#token = undefined;
    });
    return { Authorization: await pending };
  }

  async #post(
    endpoint: string,
    path: string,
    body: unknown,
    signal: AbortSignal,
    headers: Record<string, string> = {},
    // deno-lint-ignore no-explicit-any
  ): Promise<any> {
    const response = await fetch(`${endpoint}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers,
      signal,
      ...(this.#http ? { client: this.#http } : {}),
    });
    const text = await response.text();
    // deno-lint-ignore no-explicit-any
    let raw: any;
    try {
      raw = JSON.parse(text);
    } catch {
      if (text.includes("CommonName of client")) {
        throw new Error(
          `${endpoint} refuses this client certificate: etcd's JSON gateway takes no certificate with a common name (CN) once auth is on; issue it without CN and give the gateway an etcd user and password_file (docs/CLUSTER.md)`,
        );
      }
      throw new Error(`${endpoint}: HTTP ${response.status}: ${text.slice(0, 200).trim()}`);
    }
    if (/invalid auth token|auth: revision in header is old/.test(String(raw.error ?? ""))) {
      throw new TokenExpired(String(raw.error));
    }
    // An error (no leader, timed out, permission denied) is this member's: try the next.
    if (!response.ok || raw.error) {
      const error = String(raw.error ?? raw.message ?? `HTTP ${response.status}`);
      if (REFUSALS.test(error)) {
        throw new EtcdRefused(
          `etcd refused this gateway (${error}): check cluster.etcd.user, password_file and the role's readwrite permission on the prefix`,
        );
      }
      throw new EtcdAnswered(`${endpoint}: ${error}`);
    }
    return raw;
  }
}

/** Why one member did not answer, in an admin's words. */
function attemptCause(e: unknown, attempt: AbortSignal, share: number): string {
  if (attempt.aborted) {
    return `no answer within ${
      Math.round(share)
    } ms (a member without a leader, i.e. no quorum, or overloaded)`;
  }
  const error = e as Error;
  const inner = (error?.cause as Error | undefined)?.message;
  const text = `${error?.message ?? e}${inner ? `: ${inner}` : ""}`;
  if (/refused|os error 111/i.test(text)) return "connection refused (not running?)";
  if (/No route|unreachable|os error 113|os error 101/i.test(text)) return "unreachable (no route)";
  return text;
}
