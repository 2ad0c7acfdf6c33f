/**
 * Validation of `cluster`: this node's name and groups, and how to reach etcd. The files
 * it names (CA, client certificate, key) are read when `listen` starts, not here.
 * @module
 */
import { describe } from "../ports.ts";
import type { Checker } from "./checker.ts";
import { CLUSTER_KEYS, DOOR_NAME, ETCD_KEYS } from "./schema.ts";
import type { ClusterSettings, Door } from "./types.ts";

/** Default key prefix in etcd. */
export const DEFAULT_PREFIX = "/sesame/";
/** Default time limit of one etcd call, ms. */
export const DEFAULT_ETCD_TIMEOUT_MS = 2_000;

/** Validates `cluster`; `undefined` when absent or broken (its issues are in `c`). */
export function checkCluster(c: Checker, raw: unknown): ClusterSettings | undefined {
  if (raw === undefined) return undefined;
  const cluster = c.map(raw, ["cluster"], CLUSTER_KEYS);
  if (!cluster) return undefined;
  const node = cluster.node;
  if (typeof node !== "string" || !DOOR_NAME.test(node)) {
    c.fail(
      ["cluster", "node"],
      `must name this node (1–32 letters, digits, "_" or "-"), unique in the fleet, received ${
        describe(node)
      }`,
    );
  }
  const groups: string[] = [];
  if (cluster.groups !== undefined) {
    if (!Array.isArray(cluster.groups)) {
      c.fail(
        ["cluster", "groups"],
        `must be a list of group names, received ${describe(cluster.groups)}`,
      );
    } else {
      cluster.groups.forEach((g, i) => {
        if (typeof g !== "string" || !DOOR_NAME.test(g)) {
          c.fail(
            ["cluster", "groups", i],
            `must be a group name (door-name rules), received ${describe(g)}`,
          );
        } else if (!groups.includes(g)) groups.push(g);
      });
    }
  }
  const etcd = c.map(cluster.etcd, ["cluster", "etcd"], ETCD_KEYS);
  if (!etcd) return undefined;
  const endpoints: string[] = [];
  if (!Array.isArray(etcd.endpoints) || etcd.endpoints.length === 0) {
    c.fail(
      ["cluster", "etcd", "endpoints"],
      `must list etcd's client URLs, such as ["https://10.0.0.1:2379"], received ${
        describe(etcd.endpoints)
      }`,
    );
  } else {
    etcd.endpoints.forEach((e, i) => {
      const url = typeof e === "string" && URL.canParse(e) ? new URL(e) : undefined;
      if (
        !url || !["http:", "https:"].includes(url.protocol) || url.pathname !== "/" ||
        url.search || url.username || url.password
      ) {
        c.fail(
          ["cluster", "etcd", "endpoints", i],
          `must be an http:// or https:// URL of an etcd member, such as "https://10.0.0.1:2379", received ${
            describe(e)
          }`,
        );
      } else endpoints.push(url.origin);
    });
  }
  let prefix = DEFAULT_PREFIX;
  if (etcd.prefix !== undefined) {
    if (
      typeof etcd.prefix !== "string" || !/^\/[\x21-\x7e]*\/$/.test(etcd.prefix) ||
      etcd.prefix.length > 100
    ) {
      c.fail(
        ["cluster", "etcd", "prefix"],
        `must start and end with "/" (printable ASCII, no spaces), such as "/sesame/", received ${
          describe(etcd.prefix)
        }`,
      );
    } else prefix = etcd.prefix;
  }
  const file = (key: string): string | undefined => {
    const v = etcd[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v === "") {
      return c.fail(["cluster", "etcd", key], `must be a file path, received ${describe(v)}`);
    }
    return v;
  };
  const caFile = file("ca_file"), certFile = file("cert_file"), keyFile = file("key_file");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    c.fail(
      ["cluster", "etcd", certFile === undefined ? "key_file" : "cert_file"],
      `cert_file and key_file go together`,
    );
  }
  const passwordFile = file("password_file");
  let user: string | undefined;
  if (etcd.user !== undefined) {
    if (typeof etcd.user !== "string" || !/^[\x21-\x7e]{1,128}$/.test(etcd.user)) {
      c.fail(
        ["cluster", "etcd", "user"],
        `must be an etcd user name, received ${describe(etcd.user)}`,
      );
    } else user = etcd.user;
  }
  if ((user === undefined) !== (passwordFile === undefined)) {
    c.fail(
      ["cluster", "etcd", user === undefined ? "password_file" : "user"],
      `user and password_file go together`,
    );
  }
  const https = endpoints.length > 0 && endpoints.every((e) => e.startsWith("https:"));
  if (endpoints.some((e) => e.startsWith("https:")) && !https) {
    c.fail(
      ["cluster", "etcd", "endpoints"],
      `mixes https:// and http://: a call that moves on to an http:// member would cross the network in clear`,
    );
  }
  if (passwordFile !== undefined && !https && endpoints.length > 0) {
    c.fail(
      ["cluster", "etcd", "password_file"],
      `needs https:// endpoints: the password would cross the network in clear`,
    );
  }
  if (certFile !== undefined && !https) {
    c.fail(["cluster", "etcd", "cert_file"], `a client certificate needs https:// endpoints`);
  }
  const timeoutMs = c.duration(
    etcd.timeout,
    ["cluster", "etcd", "timeout"],
    DEFAULT_ETCD_TIMEOUT_MS,
    100,
    60_000,
  );
  if (typeof node !== "string" || !DOOR_NAME.test(node) || endpoints.length === 0) return undefined;
  return {
    node,
    groups,
    etcd: {
      endpoints,
      prefix,
      ...(caFile === undefined ? {} : { caFile }),
      ...(certFile === undefined ? {} : { certFile }),
      ...(keyFile === undefined ? {} : { keyFile }),
      ...(user === undefined ? {} : { user }),
      ...(passwordFile === undefined ? {} : { passwordFile }),
      timeoutMs,
    },
  };
}

/**
 * A door's `share` and `fleet`, read beside the door: only with `cluster` (a door's
 * `fleet` is then `required` unless it says `local`).
 */
export function withFleet<D extends Door>(
  c: Checker,
  door: D,
  raw: Record<string, unknown>,
  clustered: boolean,
): D {
  const at = (key: string) => ["doors", door.name, key];
  if (!clustered) {
    for (const key of ["share", "fleet"]) {
      if (raw[key] !== undefined) {
        c.fail(at(key), `needs a cluster section (see "Several gateways" in the README)`, true);
      }
    }
    return door;
  }
  const fleet = c.oneOf(raw.fleet, at("fleet"), "required", ["required", "local"] as const);
  let share: string | undefined;
  if (raw.share !== undefined) {
    if (typeof raw.share !== "string" || !DOOR_NAME.test(raw.share)) {
      c.fail(
        at("share"),
        `must be a group name (door-name rules), received ${describe(raw.share)}`,
      );
    } else if (!door.open) {
      c.fail(at("share"), `a door without "open" has nothing to share`, true);
    } else share = raw.share;
  }
  return { ...door, fleet, ...(share === undefined ? {} : { share }) };
}
