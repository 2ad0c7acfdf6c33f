/**
 * The files beside a SQLite store, and what they tell at load: the marker (a store was
 * here, and its generation), the lock (one daemon per state file), the boot id (a power
 * loss), the state directory, an interrupted import, what kind of file the state is, and
 * the evidence that a store was lost. None of them is the state itself.
 * @module
 */
import { StateFileError } from "../errors.ts";

/** The first bytes of every SQLite database. */
export const SQLITE_HEADER = "SQLite format 3\0";

/**
 * Takes the state file's lock (`<path>.lock`, naming the holder's PID), or throws when
 * another daemon holds it: one daemon per state file. Closing the file releases it.
 */
export function takeStateLock(statePath: string): Deno.FsFile {
  const path = `${statePath}.lock`;
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
      `another sesame (pid ${holder}) uses the state at ${statePath} and holds ${path}: one daemon per state file; give each its own state_file`,
    );
  }
  try {
    file.truncateSync(0);
    file.writeSync(new TextEncoder().encode(`${Deno.pid}\n`)); // for the refusal above
  } catch { /* the lock is what counts */ }
  return file;
}

/** The generation the marker beside the database recorded, if any. */
export async function markedGeneration(path: string): Promise<number | undefined> {
  const text = await Deno.readTextFile(markerOf(path)).catch(() => "");
  const m = /generation (\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Encodes the marker's text (one encoder for every commit). */
export const MARKER_ENCODER = new TextEncoder();

/**
 * Refuses a path that exists and is not a regular file (a symlink, a directory, a device):
 * sesame never chmods or writes through one. `hint` says what to do.
 */
export function refuseNonRegular(path: string, hint: string): void {
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
      }): ${hint}`,
    );
  }
}

/**
 * Refuses a path that another user owns or that group or others may write (a directory:
 * others may write it, unless it is sticky, as /tmp is). Missing paths pass.
 * @throws {StateFileError} naming the fix.
 */
export function refuseForeign(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return;
  }
  const self = Deno.uid();
  const mode = (info.mode ?? 0) & 0o7777;
  if (self !== null && info.uid !== null && info.uid !== self) {
    throw new StateFileError(
      `${path} belongs to uid ${info.uid}, not to the user sesame runs as (uid ${self}): sesame runs the commands its state holds, so the state must be sesame's alone (chown ${self} ${path})`,
    );
  }
  const writable = info.isDirectory
    ? (mode & 0o002) !== 0 && (mode & 0o1000) === 0
    : (mode & 0o022) !== 0;
  if (writable) {
    throw new StateFileError(
      `${path} can be changed by other users (mode ${
        mode.toString(8).padStart(4, "0")
      }): sesame runs the commands its state holds, so the state must be sesame's alone (chmod ${
        info.isDirectory ? "o-w" : "go-w"
      } ${path})`,
    );
  }
}

/** The directory a path is in. */
export function directoryOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
}

/**
 * This boot's id (the kernel's, 48 bits of it), or undefined where it cannot be read.
 * Read by cat: Deno lets a program read /proc only with every permission granted.
 */
export function currentBoot(): number | undefined {
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
export function markerOf(path: string): string {
  return `${path}.sesame`;
}

/** Creates the state directory, mode 0700, when it is missing. */
export async function ensureDirectory(path: string): Promise<void> {
  await Deno.mkdir(directoryOf(path), { recursive: true, mode: 0o700 });
}

/** A crash between an import's two renames left the database under its temporary name. */
export async function finishImport(path: string): Promise<void> {
  const importing = `${path}.importing`;
  if (await exists(path) || !(await exists(importing))) return;
  if ((await fileKind(importing)) === "sqlite") await Deno.rename(importing, path);
}

export async function fileKind(path: string): Promise<"missing" | "empty" | "sqlite" | "json"> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "missing";
    throw new StateFileError(`cannot read state file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
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
export async function lostEvidence(path: string): Promise<string | undefined> {
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

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
