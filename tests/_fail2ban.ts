/** The shipped fail2ban filter, run by the real `fail2ban-regex`. */
import { ROOT } from "./_cli.ts";

/** The sources `fail2ban-regex` finds in the log file `file` with deploy/fail2ban's filter, sorted. */
export async function fail2banMatches(file: string): Promise<string[]> {
  const out = await new Deno.Command("fail2ban-regex", {
    args: ["-o", "ip", file, `${ROOT}deploy/fail2ban/filter.d/sesame.conf`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`fail2ban-regex failed: ${dec.decode(out.stderr)}`);
  return [...new Set(dec.decode(out.stdout).split("\n").map((l) => l.trim()).filter(Boolean))]
    .sort();
}
