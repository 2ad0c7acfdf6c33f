/**
 * `sesame check --connect`: can this node reach its fleet? Each etcd member's status,
 * then a linearizable read of the prefix and a leased write under it, as this node's
 * credentials allow (what listen needs: a user whose role is limited to the prefix).
 * @module
 */
import type { ClusterSettings } from "../config/types.ts";
import { EtcdClient } from "./etcd.ts";
import { readTls } from "./fleet.ts";

/** What the check found: one line per finding, and whether listen could work with it. */
export interface ConnectionReport {
  readonly ok: boolean;
  readonly lines: readonly string[];
}

/** Tries the connection; never throws for an unreachable etcd (that is a finding). */
export async function checkConnection(
  cluster: ClusterSettings,
  configFile?: string,
): Promise<ConnectionReport> {
  const tls = await readTls(cluster, configFile);
  const lines: string[] = [];
  const { endpoints, prefix, timeoutMs } = cluster.etcd;
  const client = new EtcdClient({ endpoints, timeoutMs, ...tls });
  try {
    for (const endpoint of endpoints) {
      try {
        const s = await client.memberStatus(endpoint);
        const hex = (id: string | undefined) => id ? BigInt(id).toString(16) : "none";
        lines.push(
          `etcd ${endpoint}: version ${s.version}, member ${hex(s.member)}, leader ${
            hex(s.leader)
          }`,
        );
      } catch (e) {
        lines.push(`etcd ${endpoint}: ${cause(e as Error)}`);
      }
    }
    try {
      const { kvs } = await client.range(prefix);
      const lease = await client.grantLease(60);
      const key = `${prefix}check/${encodeURIComponent(cluster.node)}`;
      await client.txn({
        compare: [],
        success: [{ put: { key, value: new Date().toISOString(), lease } }],
        failure: [],
      });
      lines.push(
        `fleet: read ${kvs.length} key${
          kvs.length === 1 ? "" : "s"
        } under ${prefix} and wrote ${key}: node ${cluster.node} can take part`,
      );
      return { ok: true, lines };
    } catch (e) {
      lines.push(
        `fleet: node ${cluster.node} cannot read and write ${prefix} with a quorum: ${
          (e as Error).message
        }`,
      );
      return { ok: false, lines };
    }
  } finally {
    client.close();
  }
}

/** What a member's failure to answer means, in an admin's words. */
function cause(e: Error): string {
  const text = `${e.name} ${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`;
  if (e.name === "EtcdRefused") return e.message;
  if (/TimeoutError|aborted|timed out/i.test(text)) {
    return `answers nothing in time (it runs without a leader, i.e. no quorum, or is overloaded): ${e.message}`;
  }
  if (/refused|unreachable|fetch failed|No route|os error/i.test(text)) {
    return `not reachable (connection refused or no route): ${e.message}`;
  }
  return e.message;
}
