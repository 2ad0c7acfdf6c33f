/**
 * The SQLite store on its own: file modes, first start against lost state, a damaged
 * database moved aside with its open doors salvaged, the import of an older JSON state,
 * high-water marks and the highest server time.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { tempDir } from "./_cli.ts";
import { DatabaseSync } from "node:sqlite";
import { readStore, SqliteStore } from "../lib/store/sqlite.ts";
import type { OpenRecord } from "../lib/store/store.ts";
import { StateFileError } from "../lib/errors.ts";

const RECORD: OpenRecord = {
  door: "ssh",
  source: "192.0.2.7",
  until: 2_000_000_000_000,
  close: ["/sbin/deny", "192.0.2.7"],
  firewall: { kind: "nft", ports: [22], protocol: "tcp" },
};

const mode = (path: string) => (Deno.statSync(path).mode! & 0o777).toString(8);

Deno.test("store: the database and its -wal and -shm files are private (0600), its directory made 0700", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/new/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  await store.commit({ opened: [RECORD], now: 1 });
  assertEquals(mode(`${dir.path}/new`), "700");
  for (const file of [path, `${path}-wal`, `${path}-shm`]) assertEquals(mode(file), "600", file);
  store.close();
});

Deno.test("store: a first start, a lost store (database deleted, marker left) and a truncated one are told apart", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const first = new SqliteStore(path);
  assertEquals((await first.load()).kind, "first");
  await first.commit({ used: [{ door: "ssh", secret: "f", counter: 9 }] });
  first.close();
  assertEquals((await reopen(path)).kind, "ok");

  await Deno.remove(path);
  const lost = await reopen(path);
  assertEquals(lost.kind, "lost");
  assertMatch(lost.kind === "lost" ? lost.evidence : "", /state\.db\.sesame exists/);

  await Deno.writeFile(path, new Uint8Array()); // truncated to nothing
  assertEquals((await reopen(path)).kind, "lost");

  for (const entry of Deno.readDirSync(dir.path)) await Deno.remove(`${dir.path}/${entry.name}`);
  assertEquals((await reopen(path)).kind, "first", "nothing left: a new state");
});

Deno.test("store: a damaged database is moved aside, its readable open doors salvaged, and a fresh one takes commits", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  // Enough rows for several pages, so damage to one page leaves others readable.
  const records = Array.from({ length: 400 }, (_, i) => ({
    ...RECORD,
    source: `10.0.${i >> 8}.${i & 255}`,
  }));
  await store.commit({ opened: records, used: [{ door: "ssh", secret: "f", counter: 5 }] });
  store.close();
  const bytes = await Deno.readFile(path);
  const pageSize = 4096; // SQLite's default
  assert(bytes.length > 6 * pageSize, `${bytes.length} bytes`);
  // Scribble over the header of the last page, a leaf of the open doors: its rows are lost.
  const last = bytes.length / pageSize - 1;
  for (let i = 0; i < 12; i++) bytes[last * pageSize + i] = 0xa5;
  await Deno.writeFile(path, bytes);

  const again = new SqliteStore(path);
  const loaded = await again.load();
  assertEquals(loaded.kind, "corrupt");
  if (loaded.kind !== "corrupt") return;
  assertMatch(loaded.keptAs, /state\.db\.corrupt-\d+$/);
  assert(Deno.statSync(loaded.keptAs).isFile, "the damaged copy is kept");
  assert(
    loaded.salvaged.length > 0 && loaded.salvaged.length < 400,
    `salvaged ${loaded.salvaged.length}`,
  );
  for (const r of loaded.salvaged) assertEquals(r.close, RECORD.close);
  await again.commit({ opened: [RECORD] });
  assertEquals(readStore(path).open.length, 1, "the fresh database works");
  again.close();
});

Deno.test("store: a JSON state file of an older sesame is imported once and kept aside", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      version: 1,
      used: [["ssh/59000000", 1], ["near/59000001/4:192.0.2.0/24", 1], ["ssh/<=58999999", 1]],
      open: [{ door: "ssh", ip: "192.0.2.7", until: 2_000_000_000_000, close: null }],
    }),
    { mode: 0o600 },
  );
  const store = new SqliteStore(path);
  const loaded = await store.load();
  assertEquals(loaded.kind, "ok");
  if (loaded.kind !== "ok") return;
  assertMatch(loaded.imported ?? "", /state\.json\.json-imported-\d+$/);
  assertEquals(
    loaded.state.used.map((c) => [c.door, c.counter, c.secret ?? null, c.prefix ?? null]).sort(),
    [["near", 59000001, null, "192.0.2.0/24"], ["ssh", 59000000, null, null]],
    "codes without a fingerprint, the highest per door; the floor is a mark like any other",
  );
  assertEquals(loaded.state.open.map((r) => r.source), ["192.0.2.7"]);
  store.close();
  const second = new SqliteStore(path);
  const again = await second.load();
  assertEquals(again.kind === "ok" && again.imported, undefined, "imported once");
  second.close();
});

Deno.test("store: a corrupt JSON state is refused: kept aside, and the load says so", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.json`;
  await Deno.writeTextFile(path, '{"version":1,"used":[["ssh/4', { mode: 0o600 });
  const store = new SqliteStore(path);
  const loaded = await store.load();
  assertEquals(loaded.kind, "corrupt");
  assertMatch(loaded.kind === "corrupt" ? loaded.keptAs : "", /state\.json\.corrupt-\d+$/);
  await store.commit({ opened: [RECORD] });
  store.close();
});

Deno.test("store: marks only rise, closed doors leave, and the highest server time is kept", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  const owner = { door: "near", secret: "f", prefix: "192.0.2.0/24" };
  await store.commit({ used: [{ ...owner, counter: 10 }], opened: [RECORD], now: 5000 });
  await store.commit({ used: [{ ...owner, counter: 7 }], now: 3000 }); // a clock stepped back
  await store.commit({ closed: [RECORD] });
  const snapshot = readStore(path);
  assertEquals(snapshot.used, [{ ...owner, counter: 10 }]);
  assertEquals(snapshot.open, []);
  assertEquals(snapshot.maxTime, 5000);
  store.close();
});

async function reopen(path: string) {
  const store = new SqliteStore(path);
  try {
    return await store.load();
  } finally {
    store.close();
  }
}

Deno.test("store: commits lost with the WAL (deleted, or a frame damaged) are lost state, not a clean start", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  await store.commit({ used: [{ door: "ssh", secret: "f", counter: 7 }], now: 1 });
  await store.commit({ opened: [RECORD], now: 2 });
  // As after a SIGKILL: nothing checkpointed, the commits live in the WAL only.
  const copy = async (name: string, files: string[]) => {
    await Deno.mkdir(`${dir.path}/${name}`);
    for (const f of files) await Deno.copyFile(`${dir.path}/${f}`, `${dir.path}/${name}/${f}`);
    return `${dir.path}/${name}/state.db`;
  };
  const noWal = await copy("nowal", ["state.db", "state.db.sesame"]);
  const withoutWal = await reopen(noWal);
  assertEquals(withoutWal.kind, "lost");
  assertMatch(
    withoutWal.kind === "lost" ? withoutWal.evidence : "",
    /at commit 0 but sesame had committed 2/,
  );

  const damaged = await copy("damaged", ["state.db", "state.db-wal", "state.db.sesame"]);
  const wal = await Deno.readFile(`${damaged}-wal`);
  wal[wal.length - 100] ^= 0xff; // the last frame fails its checksum: SQLite drops it quietly
  await Deno.writeFile(`${damaged}-wal`, wal);
  assertEquals((await reopen(damaged)).kind, "lost");

  const whole = await copy("whole", ["state.db", "state.db-wal", "state.db.sesame"]);
  const ok = await reopen(whole);
  assertEquals(ok.kind === "ok" && ok.state.used.length, 1, "an intact copy loads");
  store.close();
});

Deno.test("store: a store the machine stopped under (another boot's note) is lost state; one sesame was killed under, or closed, is not", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  // A firewall door's commit waits for no fsync: a power loss may take it.
  await store.commit({ used: [{ door: "ssh", secret: "f", counter: 7 }], now: 1, sync: "normal" });
  const noted = () => {
    const db = new DatabaseSync(path);
    try {
      return (db.prepare("SELECT value FROM meta WHERE key = 'boot'").get() as
        | { value: number }
        | undefined)?.value;
    } finally {
      db.close();
    }
  };
  const boot = noted();
  assert(boot !== undefined, "the boot is noted while the store is open");
  // As after a SIGKILL (same boot): the page cache kept every commit.
  const killed = await copyOf(dir.path, "killed");
  const afterKill = await reopen(killed);
  assertEquals(afterKill.kind, "ok", "a crash of sesame alone loses nothing");
  store.close();
  assertEquals(noted(), undefined, "a clean close clears the note");
  assertEquals((await reopen(path)).kind, "ok");

  // As after a power loss: the note of a boot that is not this one.
  const db = new DatabaseSync(path);
  db.prepare("INSERT INTO meta VALUES ('boot', ?)").run(boot! + 1);
  db.close();
  const afterPowerLoss = await reopen(path);
  assertEquals(afterPowerLoss.kind, "lost");
  if (afterPowerLoss.kind === "lost") {
    assertMatch(afterPowerLoss.evidence, /machine stopped while sesame was running/);
    assertEquals(afterPowerLoss.state?.used.length, 1, "what could be read is still given");
  }
  assertEquals((await reopen(path)).kind, "ok", "reported once: the next start is clean");
});

Deno.test("store: a second store on the same state file is refused until the first closes", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const first = new SqliteStore(path);
  await first.load();
  await first.commit({ used: [{ door: "ssh", secret: "f", counter: 7 }], now: 1 });
  const second = new SqliteStore(path);
  let refused = "";
  try {
    await second.load();
  } catch (e) {
    refused = (e as Error).message;
  }
  assertMatch(
    refused,
    new RegExp(
      `another sesame \\(pid ${Deno.pid}\\) uses the state at .*state\\.db .*one daemon per state file`,
    ),
  );
  assertEquals(readStore(path).used.length, 1, "the refused one changed nothing");
  first.close();
  assertEquals((await second.load()).kind, "ok");
  second.close();
});

async function copyOf(from: string, name: string): Promise<string> {
  await Deno.mkdir(`${from}/${name}`);
  for (const f of ["state.db", "state.db-wal", "state.db.sesame"]) {
    await Deno.copyFile(`${from}/${f}`, `${from}/${name}/${f}`);
  }
  return `${from}/${name}/state.db`;
}

Deno.test("store: a state_file that is a symbolic link or a device is refused, and never chmodded", async () => {
  await using dir = await tempDir();
  const target = `${dir.path}/target`;
  await Deno.writeTextFile(target, "", { mode: 0o644 });
  await Deno.chmod(target, 0o644);
  await Deno.symlink(target, `${dir.path}/link.db`);
  for (
    const [path, why] of [
      [`${dir.path}/link.db`, /is not a regular file \(a symbolic link\)/],
      ["/dev/null", /is not a regular file|Requires all access/], // Deno guards /dev too
    ] as const
  ) {
    const store = new SqliteStore(path);
    let error: Error | undefined;
    await store.load().catch((e) => error = e);
    assertMatch(error?.message ?? "", why);
  }
  assertEquals((Deno.statSync(target).mode! & 0o777).toString(8), "644");
  assertEquals((Deno.statSync("/dev/null").mode! & 0o777).toString(8), "666");
});

Deno.test("store: the marker and the lock beside the state are never written through a link", async () => {
  await using dir = await tempDir();
  const victim = `${dir.path}/victim`;
  await Deno.writeTextFile(victim, "precious\n");
  for (const beside of ["state.db.sesame", "state.db.lock"]) {
    await Deno.remove(`${dir.path}/${beside}`).catch(() => {});
    await Deno.symlink(victim, `${dir.path}/${beside}`);
    const store = new SqliteStore(`${dir.path}/state.db`);
    let error: Error | undefined;
    await store.load().catch((e) => error = e);
    store.close();
    assertMatch(
      error?.message ?? "",
      new RegExp(`${beside} is not a regular file \\(a symbolic link\\)`),
    );
    assertEquals(
      await Deno.readTextFile(victim),
      "precious\n",
      `${beside}: the target is untouched`,
    );
    await Deno.remove(`${dir.path}/${beside}`);
  }
});

Deno.test("store: a JSON state with a counter beyond safe integers is refused as corrupt", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.json`;
  await Deno.writeTextFile(
    path,
    '{"version":1,"used":[["ssh/99999999999999999999999999",1]],"open":[]}',
    { mode: 0o600 },
  );
  const store = new SqliteStore(path);
  assertEquals((await store.load()).kind, "corrupt");
  store.close();
});

Deno.test("store: readStore reads a version 1 store (no user column), as an older daemon still running leaves it", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const db = new DatabaseSync(path);
  db.exec(`
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE used_codes (door TEXT NOT NULL, secret TEXT NOT NULL, prefix TEXT NOT NULL,
  counter INTEGER NOT NULL, PRIMARY KEY (door, secret, prefix)) WITHOUT ROWID;
CREATE TABLE open_doors (door TEXT NOT NULL, source TEXT NOT NULL, until INTEGER NOT NULL,
  close TEXT, firewall TEXT, PRIMARY KEY (door, source)) WITHOUT ROWID;
INSERT INTO used_codes VALUES ('ssh', 'f1', '', 1000);
INSERT INTO open_doors VALUES ('ssh', '192.0.2.7', 99, NULL, NULL);
PRAGMA user_version = 1;`);
  db.close();
  const snapshot = readStore(path);
  assertEquals(snapshot.used, [{ door: "ssh", counter: 1000, secret: "f1" }]);
  assertEquals(snapshot.open.map((r) => r.source), ["192.0.2.7"]);
});

Deno.test("store: a version 2 store gains the pending column; a pending open command round-trips and clears", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const db = new DatabaseSync(path);
  db.exec(`
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE used_codes (door TEXT NOT NULL, secret TEXT NOT NULL, prefix TEXT NOT NULL,
  counter INTEGER NOT NULL, user TEXT NOT NULL DEFAULT '', PRIMARY KEY (door, secret, prefix)) WITHOUT ROWID;
CREATE TABLE open_doors (door TEXT NOT NULL, source TEXT NOT NULL, until INTEGER NOT NULL,
  close TEXT, firewall TEXT, user TEXT NOT NULL DEFAULT '', PRIMARY KEY (door, source)) WITHOUT ROWID;
INSERT INTO open_doors VALUES ('ssh', '192.0.2.7', 99, NULL, NULL, '');
PRAGMA user_version = 2;`);
  db.close();
  const store = new SqliteStore(path);
  const loaded = await store.load();
  assertEquals(loaded.kind === "ok" && loaded.state.open.map((r) => r.pending), [undefined]);
  const record = { door: "ssh", source: "192.0.2.8", until: 99, close: null };
  await store.commit({ opened: [{ ...record, pending: ["/sbin/allow", "192.0.2.8"] }] });
  assertEquals(readStore(path).open.find((r) => r.source === "192.0.2.8")?.pending, [
    "/sbin/allow",
    "192.0.2.8",
  ]);
  await store.commit({ opened: [record] }); // the command ran
  assertEquals(readStore(path).open.find((r) => r.source === "192.0.2.8")?.pending, undefined);
  store.close();
});

Deno.test("store: used SPA packets are kept across a reopen and pruned only below the horizon given", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  await store.commit({ spa: [{ digest: "d1", seen: 1000 }, { digest: "d2", seen: 5000 }] });
  store.close();
  const again = new SqliteStore(path);
  const loaded = await again.load();
  assertEquals(loaded.kind === "ok" && loaded.state.spa?.map((s) => s.digest).sort(), ["d1", "d2"]);
  await again.commit({ pruneSpaBefore: 2000 });
  assertEquals(readStore(path).spa?.map((s) => s.digest), ["d2"]);
  again.close();
});

Deno.test("store: the SPA refusal horizon of a lost state is kept (the highest) across reopens", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const store = new SqliteStore(path);
  await store.load();
  await store.commit({ refuseSpaBefore: 5000, now: 1 });
  await store.commit({ refuseSpaBefore: 3000, now: 2 }); // never lowered
  store.close();
  const again = await reopen(path);
  assertEquals(again.kind === "ok" && again.state.spaRefuseBefore, 5000);
});

Deno.test("store: a state file or directory another user can change is refused (sesame runs the commands it holds)", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  const first = new SqliteStore(path);
  await first.load();
  first.close();
  const refused = async (why: RegExp) => {
    const store = new SqliteStore(path);
    try {
      await store.load();
      assert(false, "loaded");
    } catch (e) {
      assert(e instanceof StateFileError && why.test(e.message), String(e));
    } finally {
      store.close();
    }
  };
  await Deno.chmod(path, 0o666);
  await refused(/state\.db can be changed by other users \(mode 0666\).*chmod go-w/);
  await Deno.chmod(path, 0o600);
  await Deno.chmod(dir.path, 0o777);
  await refused(/can be changed by other users \(mode 0777\).*chmod o-w/);
  await Deno.chmod(dir.path, 0o700);
  if (Deno.uid() === 0) {
    await Deno.chown(path, 65534, null); // nobody
    await refused(/belongs to uid 65534, not to the user sesame runs as \(uid 0\)/);
    await Deno.chown(path, 0, null);
  }
  const store = new SqliteStore(path);
  assertEquals((await store.load()).kind, "ok", "its own file, 0600, in its own directory: fine");
  store.close();
});
