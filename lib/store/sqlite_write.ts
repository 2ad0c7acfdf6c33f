/**
 * The SQL of one commit's changes: used codes as high-water marks (a mark only rises),
 * open doors put or dropped, SPA digests kept once and pruned, and the floors kept at
 * their highest. The caller holds the transaction and counts the generation.
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { StoreChanges } from "./store.ts";

/**
 * Runs `changes` through `statement` (a prepared-statement cache), inside the caller's
 * transaction.
 */
export function writeChanges(
  statement: (sql: string) => StatementSync,
  changes: StoreChanges,
): void {
  if (changes.used?.length) {
    const upsert = statement(
      `INSERT INTO used_codes (door, secret, prefix, counter, user) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (door, secret, prefix)
       DO UPDATE SET counter = max(counter, excluded.counter), user = excluded.user`,
    );
    for (const c of changes.used) {
      upsert.run(c.door, c.secret, c.prefix ?? "", c.counter, c.user ?? "");
    }
  }
  if (changes.opened?.length) {
    const put = statement(
      `INSERT OR REPLACE INTO open_doors (door, source, until, close, firewall, user, pending)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const r of changes.opened) {
      put.run(
        r.door,
        r.source,
        r.until,
        r.close ? JSON.stringify(r.close) : null,
        r.firewall ? JSON.stringify(r.firewall) : null,
        r.user ?? "",
        r.pending ? JSON.stringify(r.pending) : null,
      );
    }
  }
  if (changes.closed?.length) {
    const drop = statement("DELETE FROM open_doors WHERE door = ? AND source = ?");
    for (const r of changes.closed) drop.run(r.door, r.source);
  }
  if (changes.spa?.length) {
    const put = statement(
      "INSERT INTO spa_digests (digest, seen) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
    );
    for (const s of changes.spa) put.run(s.digest, Math.floor(s.seen));
  }
  if (changes.pruneSpaBefore !== undefined) {
    statement("DELETE FROM spa_digests WHERE seen < ?").run(
      Math.floor(changes.pruneSpaBefore),
    );
  }
  if (changes.refuseSpaBefore !== undefined) {
    statement(
      `INSERT INTO meta VALUES ('spa_refuse_before', ?) ON CONFLICT (key)
       DO UPDATE SET value = max(value, excluded.value)`,
    ).run(Math.floor(changes.refuseSpaBefore));
  }
  if (changes.now !== undefined) {
    statement(
      `INSERT INTO meta VALUES ('max_time', ?) ON CONFLICT (key)
       DO UPDATE SET value = max(value, excluded.value)`,
    ).run(Math.floor(changes.now));
  }
}
