/** `sesame page`: write the one-file HTML page that knocks a door from a browser. @module */
import { UsageError } from "../errors.ts";
import { browserFit, knockPage } from "../page/page.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import { addressFlag, defaultClientConfig, findDoor, loadPrivateConfig } from "./common.ts";

/** The flags of `sesame page`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  door: { type: "string" },
  user: { type: "string" },
  out: { type: "string", short: "o" },
  "embed-secret": { type: "boolean" },
  "wait-open": { type: "string" },
  from: { type: "string" },
  force: { type: "boolean" },
} satisfies FlagSpec;

/** Runs `sesame page`; returns the exit code. */
export async function page(args: string[]): Promise<number> {
  const parsed = parseFlags("page", args, FLAGS, true);
  const [host, ...extra] = parsed.positionals;
  if (host === undefined || extra.length > 0) {
    throw new UsageError(
      `page: give one HOST (a name or an address)\nRun "sesame page --help" for usage.`,
    );
  }
  const file = stringFlag(parsed, "config", "page") ??
    defaultClientConfig((name) => Deno.env.get(name)) ??
    stringFlag(parsed, "config", "page", true);
  const config = await loadPrivateConfig(file, "refuse", false);
  const door = findDoor(
    config,
    stringFlag(parsed, "door", "page"),
    "page",
    stringFlag(parsed, "user", "page"),
  );
  const fit = browserFit(door);
  if (fit.refusal) throw new UsageError(`page: ${fit.refusal}`);
  for (const warning of fit.warnings) console.error(`warning: ${warning}`);
  const from = stringFlag(parsed, "from", "page");
  if (from !== undefined) addressFlag(from, "--from");
  const embed = parsed.values["embed-secret"] === true;
  let html: string;
  try {
    html = await knockPage({
      host: host.replace(/^\[(.*)\]$/, "$1"),
      door,
      embedSecret: embed,
      waitOpen: stringFlag(parsed, "wait-open", "page"),
      from,
    });
  } catch (e) {
    throw new UsageError(`page: ${(e as Error).message}`);
  }
  const out = stringFlag(parsed, "out", "page") ?? `knock-${door.name}.html`;
  try {
    await Deno.writeTextFile(out, html, {
      mode: embed ? 0o600 : 0o644,
      createNew: parsed.values.force !== true,
    });
    if (embed) await Deno.chmod(out, 0o600);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`page: ${out} exists; refusing to overwrite it (use --force)`);
    }
    throw new UsageError(`page: cannot write ${out}: ${(e as Error).message}`, { cause: e });
  }
  if (embed) {
    console.error(
      `warning: ${out} holds door ${door.name}'s secret: it is a credential (mode 0600). Open it with #knock at the end of its URL to knock at once.`,
    );
  }
  console.log(`wrote ${out}: open it in a browser to knock door ${door.name} on ${host}`);
  return 0;
}
