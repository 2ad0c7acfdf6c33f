/**
 * This node in a fleet of gateways: the etcd client, the leases, the claims (one-time use
 * across the fleet) and the shared doors (grants mirrored by every node of a group),
 * built in one place from `cluster`. The daemon hands the claims to its opener, and the
 * shared doors open and close through that same opener.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { ClusterSettings, Config, Door } from "../config/types.ts";
import { resolveSecretPath } from "../config/load.ts";
import { ConfigError } from "../errors.ts";
import type { OpenRequest } from "../daemon/open_request.ts";
import type { Opener } from "../daemon/opener.ts";
import { FleetClaims, type Verdict } from "./claims.ts";
import { EtcdClient } from "./etcd.ts";
import { type Grant, grantKey } from "./fleet_keys.ts";
import { LeasePool } from "./leases.ts";
import { type FleetGrant, SharedDoors } from "./shared_doors.ts";

export type { FleetGrant, Verdict };

/** What `sesame status` shows of the fleet. */
export interface FleetStatus {
  /** This gateway's name. */
  readonly node: string;
  /** The groups whose shared doors it opens. */
  readonly groups: readonly string[];
  /** etcd's client URLs. */
  readonly endpoints: readonly string[];
  /** Whether this node's watch of etcd is up. */
  readonly connected: boolean;
  /** The fleet's live grants: which node decided each, which confirmed it. */
  readonly grants: readonly FleetGrant[];
}

/** What the fleet needs of the daemon. */
export interface FleetDeps {
  readonly clock: Clock;
  /** The door of this name in the running config. */
  readonly door: (name: string) => Door | undefined;
  /** The daemon's opener (mirrored grants open and close through it). */
  readonly opener: () => Opener;
  /** The config file, for files named relative to it. */
  readonly configFile?: string;
}

/** Reads the TLS files and the password file `cluster.etcd` names. @throws {ConfigError} naming the key and the file. */
export async function readTls(
  cluster: ClusterSettings,
  configFile?: string,
): Promise<{ ca?: string; cert?: string; key?: string; user?: string; password?: string }> {
  const out: { ca?: string; cert?: string; key?: string; user?: string; password?: string } = {};
  const { caFile, certFile, keyFile, passwordFile, user } = cluster.etcd;
  const files = [
    ["ca", "ca_file", caFile],
    ["cert", "cert_file", certFile],
    ["key", "key_file", keyFile],
    ["password", "password_file", passwordFile],
  ] as const;
  for (const [field, key, path] of files) {
    if (path === undefined) continue;
    const resolved = configFile ? resolveSecretPath(path, configFile) : path;
    try {
      const text = await Deno.readTextFile(resolved);
      out[field] = field === "password" ? text.replace(/\r?\n$/, "") : text;
    } catch (e) {
      throw new ConfigError([{
        path: `cluster.etcd.${key}`,
        message: `cannot read ${resolved}: ${(e as Error).message}`,
      }]);
    }
  }
  if (user !== undefined) out.user = user;
  return out;
}

/** This node's part in the fleet. */
export class Fleet {
  readonly #cluster: ClusterSettings;
  readonly #client: EtcdClient;
  readonly #claims: FleetClaims;
  readonly #shared: SharedDoors;
  /** The revision of this gateway's latest grant per grant key (a revoke older than it is stale). */
  readonly #own = new Map<string, bigint>();
  /** The highest revision seen: read at, or written by a claim (lower later: etcd was restored). */
  #seen = -1n;
  #stopped: Promise<void> | undefined;

  private constructor(cluster: ClusterSettings, client: EtcdClient, deps: FleetDeps) {
    this.#cluster = cluster;
    this.#client = client;
    const { clock } = deps;
    const leases = new LeasePool(client, clock);
    const common = { client, leases, clock, prefix: cluster.etcd.prefix, node: cluster.node };
    this.#claims = new FleetClaims(common);
    this.#shared = new SharedDoors({
      ...common,
      groups: cluster.groups,
      door: deps.door,
      // Resolves when this open has acted here: not when the opener is idle, which a
      // steady stream of opens would put off (and the confirmation with it).
      open: (door: Door, grant: Grant, forMs: number) =>
        new Promise<boolean>((acted) =>
          deps.opener().request({
            door,
            source: grant.source,
            ...(grant.user === undefined ? {} : { user: grant.user }),
            // Fixed now, not when the batch is planned: never past the grant's until.
            until: deps.clock.now() + forMs,
            mirror: true,
            acted,
          })
        ),
      ownNewer: (key: string, revision: string) => (this.#own.get(key) ?? -1n) > BigInt(revision),
      reread: (revision: bigint) => {
        // Revisions went back (etcd restored from a snapshot): the ones remembered here
        // would take every revoke for a stale one.
        if (revision < this.#seen) this.#own.clear();
        if (revision > this.#seen) this.#seen = revision;
      },
      close: async (grant: Grant) => {
        await deps.opener().revoke({ door: grant.door, source: grant.source });
      },
    });
  }

  /** This node's fleet when `config` has a cluster (its files read), else `undefined`. */
  static forConfig(config: Config, deps: FleetDeps): Promise<Fleet | undefined> {
    return config.cluster ? Fleet.create(config.cluster, deps) : Promise.resolve(undefined);
  }

  /** Builds this node's fleet (reads its TLS files); nothing is contacted yet. */
  static async create(cluster: ClusterSettings, deps: FleetDeps): Promise<Fleet> {
    const tls = await readTls(cluster, deps.configFile);
    const client = new EtcdClient({
      endpoints: cluster.etcd.endpoints,
      timeoutMs: cluster.etcd.timeoutMs,
      ...tls,
    });
    return new Fleet(cluster, client, deps);
  }

  /** The settings it was built from (a reload may not change them). */
  get cluster(): ClusterSettings {
    return this.#cluster;
  }

  /** Commits a request's use (and grant) in etcd: see {@link FleetClaims.claim}. */
  async claim(request: OpenRequest): Promise<Verdict> {
    const verdict = await this.#claims.claim(request);
    const { door } = request;
    if (verdict.ok && verdict.revision !== undefined && door.share) {
      const key = grantKey(this.#cluster.etcd.prefix, door.share, door.name, request.source);
      this.#own.delete(key); // re-inserted last: the oldest go first below
      const revision = BigInt(verdict.revision);
      this.#own.set(key, revision);
      if (revision > this.#seen) this.#seen = revision;
      if (this.#own.size > 100_000) this.#own.delete(this.#own.keys().next().value!);
    }
    return verdict;
  }

  /** Starts watching the fleet's doors. */
  start(): void {
    this.#shared.start();
  }

  /** Revokes a shared door's grants on every node: see {@link SharedDoors.revoke}. */
  revoke(door: string, source?: string, user?: string): Promise<number> {
    return this.#shared.revoke(door, source, user);
  }

  /** What status shows. */
  status(): FleetStatus {
    return {
      node: this.#cluster.node,
      groups: this.#cluster.groups,
      endpoints: this.#cluster.etcd.endpoints,
      connected: this.#shared.connected,
      grants: this.#shared.grants(),
    };
  }

  /** Stops watching and releases the client. Safe to call twice. */
  stop(): Promise<void> {
    return this.#stopped ??= this.#shared.stop().then(() => this.#client.close());
  }

  /**
   * Takes back the grant of a shared door this gateway claimed but could not open (its
   * store refused the commit), so the other gateways close it too. Best effort.
   */
  async withdraw(request: OpenRequest): Promise<void> {
    const { door } = request;
    if (!door.share || request.mirror) return;
    await this.#shared.withdraw(door.share, door.name, request.source);
  }
}
