/**
 * The SQLite store's schema and its reading: the tables, the migration from version 1, and
 * a consistent snapshot of the state for the daemon or for another process.
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { DatabaseSync as Database } from "node:sqlite";
import { StateFileError } from "../errors.ts";
import type { FirewallGrant, OpenRecord, StoredCode, StoredState } from "./store.ts";

/** The schema version this sesame writes. */
export const SCHEMA_VERSION = 3;

/** The tables, created when missing. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS used_codes (
  door TEXT NOT NULL, secret TEXT NOT NULL, prefix TEXT NOT NULL, counter INTEGER NOT NULL,
  user TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (door, secret, prefix)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_doors (
  door TEXT NOT NULL, source TEXT NOT NULL, until INTEGER NOT NULL, close TEXT, firewall TEXT,
  user TEXT NOT NULL DEFAULT '', pending TEXT,
  PRIMARY KEY (door, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spa_digests (digest TEXT PRIMARY KEY, seen INTEGER NOT NULL) WITHOUT ROWID;
`;

/**
 * Version 2 names the user of a door with `users` (a user's secret has its own
 * fingerprint, so the key of a used code already tells users apart). Version 3 keeps an
 * open command not yet known to have run (`pending`). Both only add columns: an older
 * sesame still reads and writes the file.
 */
export function migrate(db: DatabaseSync): void {
  const version = Number(
    (db.prepare("PRAGMA user_version").get() as { user_version: number })
      .user_version,
  );
  if (version >= SCHEMA_VERSION) return;
  for (const table of ["used_codes", "open_doors"]) {
    const columns = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
    if (!columns.some((c) => c.name === "user")) {
      db.exec(`ALTER TABLE ${table} ADD COLUMN user TEXT NOT NULL DEFAULT ''`);
    }
  }
  if (!hasColumn(db, "open_doors", "pending")) {
    db.exec("ALTER TABLE open_doors ADD COLUMN pending TEXT");
  }
  db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
}

/** What a reader sees: the state and the highest server time the daemon committed. */
export interface StoreSnapshot extends StoredState {
  /** The highest server time ever committed, ms (0 when none). */
  readonly maxTime: number;
  /** Commits made so far. */
  readonly generation: number;
}

/** An open door's row as SQLite returns it. */
export interface Row {
  door: unknown;
  source: unknown;
  until: unknown;
  close: unknown;
  firewall: unknown;
  user?: unknown;
  pending?: unknown;
}

/** A row as a record; undefined when it is damaged. */
export function toRecord(row: Row): OpenRecord | undefined {
  try {
    if (typeof row.door !== "string" || typeof row.source !== "string") return undefined;
    const until = Number(row.until);
    if (!Number.isFinite(until)) return undefined;
    const close = typeof row.close === "string" ? JSON.parse(row.close) as string[] : null;
    if (close !== null && !(Array.isArray(close) && close.every((a) => typeof a === "string"))) {
      return undefined;
    }
    const firewall = typeof row.firewall === "string"
      ? JSON.parse(row.firewall) as FirewallGrant
      : undefined;
    const user = typeof row.user === "string" && row.user !== "" ? { user: row.user } : {};
    const pending = typeof row.pending === "string" ? JSON.parse(row.pending) as string[] : null;
    if (
      pending !== null && !(Array.isArray(pending) && pending.every((a) => typeof a === "string"))
    ) {
      return undefined;
    }
    return {
      door: row.door,
      source: row.source,
      ...user,
      until,
      close,
      ...(firewall ? { firewall } : {}),
      ...(pending ? { pending } : {}),
    };
  } catch {
    return undefined;
  }
}

function hasColumn(db: DatabaseSync, table: string, column: string): boolean {
  return (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[])
    .some((c) => c.name === column);
}

/** The state now, in one read transaction. */
export function readSnapshot(db: DatabaseSync): StoreSnapshot {
  // One read transaction: a consistent snapshot while another connection writes.
  db.exec("BEGIN");
  try {
    const used =
      // A reader may meet a version 1 store (an older daemon still runs): no user column.
      (db.prepare(
        `SELECT door, secret, prefix, counter, ${
          hasColumn(db, "used_codes", "user") ? "user" : "'' AS user"
        } FROM used_codes`,
      ).all() as {
        door: string;
        secret: string;
        prefix: string;
        counter: number;
        user: string;
      }[]).map((r): StoredCode => ({
        door: r.door,
        ...(r.user ? { user: r.user } : {}),
        counter: Number(r.counter),
        ...(r.secret ? { secret: r.secret } : {}),
        ...(r.prefix ? { prefix: r.prefix } : {}),
      }));
    const open = (db.prepare("SELECT * FROM open_doors").all() as unknown as Row[]).map((row) => {
      const record = toRecord(row);
      if (!record) throw new StateFileError(`malformed open door ${JSON.stringify(row)}`);
      return record;
    });
    const meta = (key: string) =>
      Number(
        (db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as
          | { value: number }
          | undefined)?.value ?? 0,
      );
    const hasSpa = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spa_digests'",
    ).get() !== undefined;
    const spa = hasSpa
      ? (db.prepare("SELECT digest, seen FROM spa_digests").all() as {
        digest: string;
        seen: number;
      }[]).map((r) => ({ digest: r.digest, seen: Number(r.seen) }))
      : [];
    const spaRefuseBefore = meta("spa_refuse_before");
    return {
      used,
      open,
      spa,
      ...(spaRefuseBefore > 0 ? { spaRefuseBefore } : {}),
      maxTime: meta("max_time"),
      generation: meta("generation"),
    };
  } finally {
    db.exec("COMMIT");
  }
}

/**
 * Reads a store from another process (`sesame status`), read-only, as one consistent
 * snapshot, while the daemon may be writing.
 * @throws {StateFileError} when there is no readable store at `path`.
 */
export function readStore(path: string): StoreSnapshot {
  let db: DatabaseSync;
  try {
    db = new Database(path, { readOnly: true });
  } catch (e) {
    throw new StateFileError(`cannot read the state at ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    db.exec("PRAGMA busy_timeout = 2000");
    return readSnapshot(db);
  } catch (e) {
    throw new StateFileError(`cannot read the state at ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    db.close();
  }
}
