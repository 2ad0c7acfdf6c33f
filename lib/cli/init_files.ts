/**
 * Writing what `sesame init` makes: secret-bearing files, mode 0600, all or nothing.
 * @module
 */
import { UsageError } from "../errors.ts";

/** Writes `text` to `path` with mode 0600; refuses an existing file unless `force`. */
export async function writeSecretFile(path: string, text: string, force: boolean): Promise<void> {
  try {
    await Deno.writeTextFile(path, text, { mode: 0o600, createNew: !force });
    await Deno.chmod(path, 0o600);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`init: ${path} exists; refusing to overwrite it (use --force)`);
    }
    throw new UsageError(`init: cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Writes every file or none: without `force`, any that exists already refuses the whole
 * set before one byte is written; a write that fails removes the files this call made.
 */
export async function writeAllOrNothing(
  files: readonly (readonly [path: string, text: string])[],
  force: boolean,
): Promise<void> {
  if (!force) {
    const existing = [];
    for (const [path] of files) {
      if (await Deno.lstat(path).then(() => true, () => false)) existing.push(path);
    }
    if (existing.length > 0) {
      // Often a config kept from an earlier install (removing the package keeps it): say
      // that it can serve as it is, and what --force would cost.
      const config = existing.find((p) => /\.ya?ml$/.test(p) && !/client/.test(p));
      throw new UsageError(
        `init: ${existing.join(", ")} ${
          existing.length === 1 ? "exists" : "exist"
        }; refusing to overwrite; nothing was written. ${
          config
            ? `Kept from an earlier install? "sesame check -c ${config}" says whether it serves as it is. `
            : ""
        }--force replaces ${
          existing.length === 1 ? "it" : "them"
        }, secrets included: every client then needs the new secret`,
      );
    }
  }
  for (const file of files) {
    const parent = file[0].includes("/") ? file[0].slice(0, file[0].lastIndexOf("/")) || "/" : ".";
    await Deno.mkdir(parent, { recursive: true, mode: 0o700 }).catch((e) => {
      throw new UsageError(`init: cannot create ${parent}: ${(e as Error).message}`, { cause: e });
    });
  }
  const written: string[] = [];
  try {
    for (const [path, text] of files) {
      const existed = await Deno.lstat(path).then(() => true, () => false);
      await writeSecretFile(path, text, force);
      if (!existed) written.push(path);
    }
  } catch (e) {
    for (const path of written) await Deno.remove(path).catch(() => {});
    throw e;
  }
}
