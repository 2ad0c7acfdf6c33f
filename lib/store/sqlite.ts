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
import { writeChanges } from "./sqlite_write.ts";
import type { LoadResult, OpenRecord, Store, StoreChanges, StoredState } from "./store.ts";
import {
  migrate,
  readSnapshot,
  type Row,
  SCHEMA,
  type StoreSnapshot,
  toRecord,
} from "./sqlite_schema.ts";
import {
  currentBoot,
  directoryOf,
  ensureDirectory,
  fileKind,
  finishImport,
  lostEvidence,
  markedGeneration,
  MARKER_ENCODER,
  markerOf,
  refuseForeign,
  refuseNonRegular,
  takeStateLock,
} from "./state_files.ts";

export { readStore, type StoreSnapshot } from "./sqlite_schema.ts";

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
    // What the state holds runs as sesame's user (close and pending open commands): a file
    // or directory another user can change is refused, as a secret file others can read is.
    for (const path of [this.path, `${this.path}-wal`, directoryOf(this.path)]) {
      refuseForeign(path);
    }
    // The files sesame writes beside the database: never through a link, a device or a FIFO.
    for (const beside of [`${this.path}.lock`, markerOf(this.path)]) {
      refuseNonRegular(
        beside,
        "sesame writes it beside the state_file and never through a link; remove it",
      );
    }
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
          new StateFileError(`damaged database: ${(e as Error).message}`, { cause: e }),
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
      writeChanges((sql) => this.#statement(sql), changes);
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
    this.#lock ??= takeStateLock(this.path);
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
    refuseNonRegular(this.path, "state_file must name a file sesame owns");
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
