/**
 * The durable store on SQLite (`node:sqlite`, built into Deno): used codes as high-water
 * marks, open doors with their expiry and grant, and the highest server time ever seen.
 * WAL mode: a commit costs one transaction whatever the store holds, and another process
 * (`sesame status`) reads a consistent snapshot while the daemon writes. The files are
 * mode 0600.
 *
 * Durability: every commit survives a crash of sesame (SIGKILL included) when it returns.
 * A commit that must also survive a crash of the machine (`sync: "full"`, the default)
 * waits for its fsync. The opener's commits of firewall doors do not (`sync: "normal"`):
 * the kernel forgets those doors with the machine anyway, and the fsync was most of an
 * opening's cost. What a power loss could take from them is the codes used lately, so the
 * store notes the boot it runs in, durably, and clears the note at a clean close: a start
 * that finds the note of another boot reports the state lost, and the daemon fails closed
 * (every code of the current window refused), as for a deleted database.
 *
 * At load the store also tells a first start (nothing sesame keeps is there) from lost
 * state (the database is gone but its marker, WAL or a moved-aside copy is not), imports a
 * JSON state file left by an older sesame once, and moves a damaged database aside after
 * salvaging the close actions it can still read.
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { StateFileError } from "../errors.ts";
import { parseState } from "./json_import.ts";
import type {
  FirewallGrant,
  LoadResult,
  OpenRecord,
  Store,
  StoreChanges,
  StoredCode,
  StoredState,
} from "./store.ts";

const SCHEMA_VERSION = 2;
const SQLITE_HEADER = "SQLite format 3\0";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS used_codes (
  door TEXT NOT NULL, secret TEXT NOT NULL, prefix TEXT NOT NULL, counter INTEGER NOT NULL,
  user TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (door, secret, prefix)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_doors (
  door TEXT NOT NULL, source TEXT NOT NULL, until INTEGER NOT NULL, close TEXT, firewall TEXT,
  user TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (door, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spa_digests (digest TEXT PRIMARY KEY, seen INTEGER NOT NULL) WITHOUT ROWID;
`;

/**
 * Version 2 names the user of a door with `users` (a user's secret has its own
 * fingerprint, so the key of a used code already tells users apart).
 */
function migrate(db: DatabaseSync): void {
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
  db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
}

/** What a reader sees: the state and the highest server time the daemon committed. */
export interface StoreSnapshot extends StoredState {
  /** The highest server time ever committed, ms (0 when none). */
  readonly maxTime: number;
  /** Commits made so far. */
  readonly generation: number;
}

/**
 * The state in SQLite.
 *
 * @example Commit, then read it back from another connection
 * ```ts
 * import { readStore, SqliteStore } from "./sqlite.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const store = new SqliteStore(`${dir}/state.db`);
 * assertEquals((await store.load()).kind, "first");
 * await store.commit({ used: [{ door: "ssh", secret: "f1", counter: 7 }], now: 1000 });
 * assertEquals(readStore(`${dir}/state.db`).used[0].counter, 7);
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class SqliteStore implements Store {
  /** The database file (the config's `state_file`). */
  readonly path: string;
  #db: DatabaseSync | undefined;
  readonly #statements = new Map<string, StatementSync>();
  /** Commits so far, as the database counts them (meta 'generation'). */
  #generation = 0;
  /** The marker file, open while the store is. */
  #marker: Deno.FsFile | undefined;
  /** Held from load to close: one daemon per state file. */
  #lock: Deno.FsFile | undefined;
  /** The synchronous mode set on the connection now. */
  #sync: "FULL" | "NORMAL" = "FULL";
  /** This boot's id, noted in the database while the store is open; undefined when unknown. */
  #boot: number | undefined;

  /** Opens nothing yet: {@link load} does. @param path the database file. */
  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<LoadResult> {
    try {
      const result = await this.#load();
      const boot = currentBoot();
      const unclean = this.#uncleanStop(boot);
      this.#noteBoot(boot);
      if (unclean && result.kind === "ok") {
        return { kind: "lost", evidence: unclean, state: result.state };
      }
      return result;
    } catch (e) {
      this.#releaseLock();
      if (e instanceof StateFileError) throw e;
      throw new StateFileError(`cannot open the state at ${this.path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  async #load(): Promise<LoadResult> {
    await ensureDirectory(this.path);
    // The files sesame writes beside the database: never through a link, a device or a FIFO.
    for (const beside of [`${this.path}.lock`, markerOf(this.path)]) refuseNonRegular(beside);
    this.#takeLock();
    await finishImport(this.path);
    const kind = await fileKind(this.path);
    if (kind === "missing" || kind === "empty") {
      const evidence = await lostEvidence(this.path);
      this.#open();
      this.#writeMarker();
      return evidence ? { kind: "lost", evidence } : { kind: "first" };
    }
    if (kind === "json") return await this.#importJson();
    const marked = await markedGeneration(this.path);
    let damage: string | undefined;
    try {
      this.#open();
      const check = this.#db!.prepare("PRAGMA quick_check").all() as { quick_check: string }[];
      if (check.length !== 1 || check[0].quick_check !== "ok") {
        damage = check.map((r) => r.quick_check).slice(0, 3).join("; ");
      }
    } catch (e) {
      damage = (e as Error).message;
    }
    if (damage === undefined) {
      let state: StoreSnapshot;
      try {
        state = this.#read();
      } catch (e) {
        return await this.#moveAside(
          new StateFileError(`damaged database: ${(e as Error).message}`),
        );
      }
      this.#generation = state.generation;
      this.#writeMarker();
      // The database is behind what sesame committed: commits were lost with its WAL (a
      // deleted or damaged -wal file; SQLite drops frames that fail their checksum).
      if (marked !== undefined && state.generation < marked) {
        return {
          kind: "lost",
          evidence:
            `the database is at commit ${state.generation} but sesame had committed ${marked} (its -wal file deleted or damaged?)`,
          state,
        };
      }
      return { kind: "ok", state };
    }
    return await this.#moveAside(new StateFileError(`damaged database: ${damage}`));
  }

  commit(changes: StoreChanges): Promise<void> {
    try {
      this.#write(changes);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  close(): void {
    // A clean close: the note goes, with an fsync that makes every commit before it durable.
    if (this.#db && this.#boot !== undefined) {
      try {
        this.#noteBoot(undefined);
      } catch { /* the next start then fails closed */ }
    }
    this.#closeMarker();
    this.#closeDb();
    this.#releaseLock(); // last: the files are settled
  }

  #closeDb(): void {
    this.#statements.clear();
    try {
      this.#db?.close();
    } catch { /* closed */ }
    this.#db = undefined;
  }

  /** A statement compiled once per connection: a commit runs them, not compiles them. */
  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) this.#statements.set(sql, statement = this.#db!.prepare(sql));
    return statement;
  }

  /**
   * Notes `boot` as the boot the store runs in (undefined: none, a clean close), durably.
   * Without a known boot every commit waits for its fsync.
   */
  #noteBoot(boot: number | undefined): void {
    const db = this.#db!;
    this.#setSync("FULL");
    db.exec("BEGIN IMMEDIATE");
    try {
      if (boot === undefined) db.exec("DELETE FROM meta WHERE key = 'boot'");
      else {
        this.#statement(
          "INSERT INTO meta VALUES ('boot', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ).run(boot);
      }
      db.exec("COMMIT");
    } catch (e) {
      try {
        db.exec("ROLLBACK");
      } catch { /* gone already */ }
      throw e;
    }
    this.#boot = boot;
  }

  /** Evidence that the machine stopped while a store was open in an earlier boot, if any. */
  #uncleanStop(boot: number | undefined): string | undefined {
    const row = this.#db!.prepare("SELECT value FROM meta WHERE key = 'boot'").get() as
      | { value: number }
      | undefined;
    if (row === undefined || Number(row.value) === boot) return undefined;
    return "the machine stopped while sesame was running (a power loss or a crash of the system): its last commits may not have reached the disk";
  }

  #setSync(mode: "FULL" | "NORMAL"): void {
    if (this.#sync === mode) return;
    this.#db!.exec(`PRAGMA synchronous = ${mode}`);
    this.#sync = mode;
  }

  /** One transaction: all of `changes` or none. Blocks the event loop for its duration only. */
  #write(changes: StoreChanges): void {
    const db = this.#db;
    if (!db) throw new StateFileError("the store is not open");
    // Without the boot noted, a lost commit could go unnoticed: then every commit syncs.
    this.#setSync(changes.sync === "normal" && this.#boot !== undefined ? "NORMAL" : "FULL");
    db.exec("BEGIN IMMEDIATE");
    try {
      if (changes.used?.length) {
        const upsert = this.#statement(
          `INSERT INTO used_codes (door, secret, prefix, counter, user) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (door, secret, prefix)
           DO UPDATE SET counter = max(counter, excluded.counter), user = excluded.user`,
        );
        for (const c of changes.used) {
          upsert.run(c.door, c.secret, c.prefix ?? "", c.counter, c.user ?? "");
        }
      }
      if (changes.opened?.length) {
        const put = this.#statement(
          `INSERT OR REPLACE INTO open_doors (door, source, until, close, firewall, user)
           VALUES (?, ?, ?, ?, ?, ?)`,
        );
        for (const r of changes.opened) {
          put.run(
            r.door,
            r.source,
            r.until,
            r.close ? JSON.stringify(r.close) : null,
            r.firewall ? JSON.stringify(r.firewall) : null,
            r.user ?? "",
          );
        }
      }
      if (changes.closed?.length) {
        const drop = this.#statement("DELETE FROM open_doors WHERE door = ? AND source = ?");
        for (const r of changes.closed) drop.run(r.door, r.source);
      }
      if (changes.spa?.length) {
        const put = this.#statement(
          "INSERT INTO spa_digests (digest, seen) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
        );
        for (const s of changes.spa) put.run(s.digest, Math.floor(s.seen));
      }
      if (changes.pruneSpaBefore !== undefined) {
        this.#statement("DELETE FROM spa_digests WHERE seen < ?").run(
          Math.floor(changes.pruneSpaBefore),
        );
      }
      if (changes.refuseSpaBefore !== undefined) {
        this.#statement(
          `INSERT INTO meta VALUES ('spa_refuse_before', ?) ON CONFLICT (key)
           DO UPDATE SET value = max(value, excluded.value)`,
        ).run(Math.floor(changes.refuseSpaBefore));
      }
      if (changes.now !== undefined) {
        this.#statement(
          `INSERT INTO meta VALUES ('max_time', ?) ON CONFLICT (key)
           DO UPDATE SET value = max(value, excluded.value)`,
        ).run(Math.floor(changes.now));
      }
      this.#statement(
        `INSERT INTO meta VALUES ('generation', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1`,
      ).run();
      db.exec("COMMIT");
    } catch (e) {
      try {
        db.exec("ROLLBACK");
      } catch { /* the transaction is gone already */ }
      throw e;
    }
    this.#generation++;
    this.#writeMarker();
  }

  /**
   * Writes the marker beside the database: it says a store is here (a deleted database
   * reads as lost, not new) and how many commits it has seen (a database behind it lost
   * commits). Not synced: after a power loss it can only lag, which fails nothing open.
   * Kept open and rewritten in place at a fixed width: one write a commit, where
   * truncating and rewriting the file cost as much as the commit itself.
   */
  #writeMarker(): void {
    try {
      this.#marker ??= Deno.openSync(markerOf(this.path), {
        write: true,
        create: true,
        truncate: true,
        mode: 0o600,
      });
      const bytes = MARKER_ENCODER.encode(
        `sesame state: its database is beside this file\ngeneration ${
          String(this.#generation).padStart(16, "0")
        }\n`,
      );
      this.#marker.seekSync(0, Deno.SeekMode.Start);
      for (let at = 0; at < bytes.length;) at += this.#marker.writeSync(bytes.subarray(at));
    } catch {
      this.#closeMarker(); // opened again by the next commit
    }
  }

  /**
   * Two daemons on one state file would each take the other's commits for their own and
   * clear the other's boot note at their clean stop: the second is refused.
   */
  #takeLock(): void {
    if (this.#lock) return;
    const path = `${this.path}.lock`;
    const file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    if (!file.tryLockSync(true)) {
      file.close();
      const holder = (() => {
        try {
          return Deno.readTextFileSync(path).trim() || "unknown";
        } catch {
          return "unknown";
        }
      })();
      throw new StateFileError(
        `another sesame (pid ${holder}) uses the state at ${this.path} and holds ${path}: one daemon per state file; give each its own state_file`,
      );
    }
    try {
      file.truncateSync(0);
      file.writeSync(new TextEncoder().encode(`${Deno.pid}\n`)); // for the refusal above
    } catch { /* the lock is what counts */ }
    this.#lock = file;
  }

  #releaseLock(): void {
    try {
      this.#lock?.close(); // closing the descriptor releases the lock
    } catch { /* closed */ }
    this.#lock = undefined;
  }

  #closeMarker(): void {
    try {
      this.#marker?.close();
    } catch { /* closed */ }
    this.#marker = undefined;
  }

  #open(): void {
    if (this.#db) return;
    // A regular file or nothing: never chmod or write through a symlink, a device or a FIFO.
    const info = (() => {
      try {
        return Deno.lstatSync(this.path);
      } catch {
        return undefined;
      }
    })();
    if (info && !info.isFile) {
      throw new StateFileError(
        `${this.path} is not a regular file (${
          info.isSymlink ? "a symbolic link" : info.isDirectory ? "a directory" : "a device or FIFO"
        }): state_file must name a file sesame owns`,
      );
    }
    // Created 0600 before SQLite sees it: its -wal and -shm files take the same mode.
    Deno.openSync(this.path, { create: true, write: true, mode: 0o600 }).close();
    Deno.chmodSync(this.path, 0o600);
    const db = new DatabaseSync(this.path);
    try {
      db.exec("PRAGMA busy_timeout = 2000");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      db.exec(SCHEMA);
      migrate(db);
    } catch (e) {
      db.close();
      throw e;
    }
    this.#db = db;
    this.#sync = "FULL";
  }

  #read(): StoreSnapshot {
    return readSnapshot(this.#db!);
  }

  /** A JSON state file from an older sesame: imported once, then kept aside. */
  async #importJson(): Promise<LoadResult> {
    let state: StoredState;
    try {
      state = parseState(await Deno.readTextFile(this.path));
    } catch (e) {
      const keptAs = `${this.path}.corrupt-${Date.now()}`;
      await Deno.rename(this.path, keptAs);
      this.#open();
      return { kind: "corrupt", error: e as Error, keptAs, salvaged: [] };
    }
    // Write the database beside it, then swap: a crash in between leaves one whole copy.
    const importing = `${this.path}.importing`;
    await Deno.remove(importing).catch(() => {});
    const fresh = new SqliteStore(importing);
    fresh.#open();
    fresh.#write({
      used: state.used.map((c) => ({ ...c, secret: c.secret ?? "" })),
      opened: state.open,
    });
    fresh.#db!.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    fresh.close();
    const keptAs = `${this.path}.json-imported-${Date.now()}`;
    await Deno.rename(this.path, keptAs);
    await Deno.rename(importing, this.path);
    await Deno.remove(markerOf(importing)).catch(() => {});
    this.#open();
    const imported = this.#read();
    this.#generation = imported.generation;
    this.#writeMarker();
    return { kind: "ok", state: imported, imported: keptAs };
  }

  /** Salvages the open records it can still read, then moves the database and its WAL aside. */
  async #moveAside(error: Error): Promise<LoadResult> {
    const salvaged: OpenRecord[] = [];
    try {
      this.#open();
      const rows = this.#db!.prepare("SELECT * FROM open_doors").iterate();
      for (;;) {
        let next;
        try {
          next = rows.next();
        } catch {
          break; // the rest is unreadable
        }
        if (next.done) break;
        const record = toRecord(next.value as unknown as Row);
        if (record) salvaged.push(record);
      }
    } catch { /* nothing readable */ }
    this.#closeDb(); // the lock stays: this load is not over
    const keptAs = `${this.path}.corrupt-${Date.now()}`;
    await Deno.rename(this.path, keptAs);
    for (const suffix of ["-wal", "-shm"]) {
      await Deno.rename(this.path + suffix, keptAs + suffix).catch(() => {});
    }
    this.#open();
    return { kind: "corrupt", error, keptAs, salvaged };
  }
}

interface Row {
  door: unknown;
  source: unknown;
  until: unknown;
  close: unknown;
  firewall: unknown;
  user?: unknown;
}

function toRecord(row: Row): OpenRecord | undefined {
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
    return {
      door: row.door,
      source: row.source,
      ...user,
      until,
      close,
      ...(firewall ? { firewall } : {}),
    };
  } catch {
    return undefined;
  }
}

function hasColumn(db: DatabaseSync, table: string, column: string): boolean {
  return (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[])
    .some((c) => c.name === column);
}

function readSnapshot(db: DatabaseSync): StoreSnapshot {
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
    db = new DatabaseSync(path, { readOnly: true });
  } catch (e) {
    throw new StateFileError(`cannot read the state at ${path}: ${(e as Error).message}`);
  }
  try {
    db.exec("PRAGMA busy_timeout = 2000");
    return readSnapshot(db);
  } catch (e) {
    throw new StateFileError(`cannot read the state at ${path}: ${(e as Error).message}`);
  } finally {
    db.close();
  }
}

/** The generation the marker beside the database recorded, if any. */
async function markedGeneration(path: string): Promise<number | undefined> {
  const text = await Deno.readTextFile(markerOf(path)).catch(() => "");
  const m = /generation (\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

const MARKER_ENCODER = new TextEncoder();

/** Refuses a path that exists and is not a regular file (a symlink, a directory, a device). */
function refuseNonRegular(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return; // missing: created as a regular file, 0600
  }
  if (!info.isFile) {
    throw new StateFileError(
      `${path} is not a regular file (${
        info.isSymlink ? "a symbolic link" : info.isDirectory ? "a directory" : "a device or FIFO"
      }): sesame writes it beside the state_file and never through a link; remove it`,
    );
  }
}

/**
 * This boot's id (the kernel's, 48 bits of it), or undefined where it cannot be read.
 * Read by cat: Deno lets a program read /proc only with every permission granted.
 */
function currentBoot(): number | undefined {
  for (const cat of ["/usr/bin/cat", "/bin/cat"]) {
    try {
      const out = new Deno.Command(cat, {
        args: ["/proc/sys/kernel/random/boot_id"],
        clearEnv: true,
        stdin: "null",
        stderr: "null",
      }).outputSync();
      if (!out.success) continue;
      const id = new TextDecoder().decode(out.stdout).trim().replaceAll("-", "");
      if (/^[0-9a-f]{32}$/.test(id)) return parseInt(id.slice(0, 12), 16);
    } catch { /* try the next */ }
  }
  return undefined;
}

/** The file that says a store was here (so a deleted database reads as lost, not new). */
function markerOf(path: string): string {
  return `${path}.sesame`;
}

/** Creates the state directory, mode 0700, when it is missing. */
async function ensureDirectory(path: string): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
}

/** A crash between an import's two renames left the database under its temporary name. */
async function finishImport(path: string): Promise<void> {
  const importing = `${path}.importing`;
  if (await exists(path) || !(await exists(importing))) return;
  if ((await fileKind(importing)) === "sqlite") await Deno.rename(importing, path);
}

async function fileKind(path: string): Promise<"missing" | "empty" | "sqlite" | "json"> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "missing";
    throw new StateFileError(`cannot read state file ${path}: ${(e as Error).message}`);
  }
  try {
    const head = new Uint8Array(16);
    const n = (await file.read(head)) ?? 0;
    // Empty: created, never written (a crash at the first start), or truncated (lost).
    if (n === 0) return "empty";
    if (new TextDecoder().decode(head.subarray(0, n)) === SQLITE_HEADER) return "sqlite";
    return "json"; // anything else is read as an older JSON state (or refused as corrupt)
  } finally {
    file.close();
  }
}

/** What shows that a store was here: its marker, its WAL, or a copy moved aside. */
async function lostEvidence(path: string): Promise<string | undefined> {
  for (const candidate of [markerOf(path), `${path}-wal`]) {
    if (await exists(candidate)) return `${candidate} exists`;
  }
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const base = path.slice(slash + 1);
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (
        entry.name.startsWith(`${base}.corrupt-`) || entry.name.startsWith(`${base}.json-imported-`)
      ) {
        return `${dir}/${entry.name} exists`;
      }
    }
  } catch { /* no directory: a first start */ }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
