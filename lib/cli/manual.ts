/**
 * The man pages, generated: `sesame(8)` from the help texts (the same words as `--help`)
 * and `sesame.yaml(5)` from docs/CONFIG.md (the key reference). Plain roff (man(7)
 * macros), so `man` renders them anywhere.
 * @module
 */
import { HELP, VERSION } from "./help.ts";
import { helpCommands, helpOptions } from "./help_model.ts";

/** Escapes text for roff: backslashes, and a leading dot or quote that would be a request. */
export function roffText(text: string): string {
  return text.replace(/\\/g, "\\e").replace(/^([.'])/gm, "\\&$1");
}

/** A flag's spelling in roff, its hyphens as minus signs. */
function roffFlag(flag: string): string {
  return `\\fB${flag.replace(/-/g, "\\-")}\\fR`;
}

/** One help text (usage, paragraphs, options, indented blocks) as roff. */
function helpToRoff(text: string): string {
  const out: string[] = [];
  const blocks = text.trim().split(/\n\s*\n/);
  for (const block of blocks) {
    if (block.startsWith("Usage:")) {
      out.push(
        ".PP",
        ".nf",
        roffText(block.replace(/^Usage: /, "").replace(/\n {7}/g, "\n")),
        ".fi",
      );
    } else if (block.startsWith("Options:")) {
      for (const o of helpOptions(`\n${block}\n`)) {
        const value = o.value ? ` \\fI${roffText(o.value)}\\fR` : "";
        out.push(".TP", o.flags.map(roffFlag).join(", ") + value, roffText(o.text));
      }
    } else if (/^\s/.test(block) || block.split("\n").some((l) => /^ {2}\S/.test(l))) {
      out.push(".PP", ".nf", roffText(block), ".fi");
    } else {
      out.push(".PP", roffText(block.replace(/\s*\n\s*/g, " ")));
    }
  }
  return out.join("\n");
}

/** The header line of a page. */
function title(name: string, section: number, date: string, manual: string): string {
  return `.TH ${name} ${section} "${date}" "sesame ${VERSION}" "${manual}"`;
}

/**
 * `sesame(8)`: every command's help, one subsection each.
 *
 * @param date the page's date (YYYY-MM-DD), the release's.
 * @example
 * ```ts
 * import { sesamePage } from "./manual.ts";
 * import { match as assertMatch } from "node:assert/strict";
 * const page = sesamePage("2026-12-06");
 * assertMatch(page, /^\.TH SESAME 8 "2026-12-06"/);
 * assertMatch(page, /\.SS "sesame knock"/);
 * assertMatch(page, /\\fB\\-\\-door\\fR \\fINAME\\fR/);
 * ```
 */
export function sesamePage(date: string): string {
  const top = HELP[""];
  const summary = top.split("\n")[0].replace(/^sesame \S+ — /, "");
  const intro = top.slice(top.lastIndexOf("\n\n") + 2);
  const lines = [
    title("SESAME", 8, date, "System Administration"),
    ".SH NAME",
    `sesame \\- ${roffText(summary)}`,
    ".SH SYNOPSIS",
    ".B sesame",
    ".I command",
    "[\\fIoptions\\fR]",
    ".SH DESCRIPTION",
    roffText(intro.replace(/\s*\n\s*/g, " ").replace(/ See README\.md\.$/, "")),
    ".SH COMMANDS",
  ];
  for (const command of helpCommands()) {
    lines.push(`.SS "sesame ${command.name}"`, roffText(command.summary), helpToRoff(command.text));
  }
  lines.push(
    ".SH FILES",
    ".TP",
    "\\fI/etc/sesame/sesame.yaml\\fR",
    "the server config (see \\fBsesame.yaml\\fR(5)); the directory is root's only (0700)",
    ".TP",
    "\\fI/var/lib/sesame/\\fR",
    "the state (used codes, open doors), when the config's state_file points there",
    ".TP",
    "\\fI/run/sesame/\\fR",
    "the instance lock and the control socket of each network namespace's daemon",
    ".TP",
    "\\fI~/.config/sesame/client.yaml\\fR",
    "the default client config of knock and code ($XDG_CONFIG_HOME/sesame/client.yaml first)",
    ".SH EXIT STATUS",
    "0 success; 1 failure (bad config, door not opened, nothing to revoke);",
    "2 usage error; 3 no daemon answers; 70 internal error.",
    ".SH SEE ALSO",
    "\\fBsesame.yaml\\fR(5), \\fBnft\\fR(8), \\fBfail2ban\\fR(1), \\fBknockd\\fR(1), \\fBfwknop\\fR(8)",
  );
  return lines.join("\n") + "\n";
}

/**
 * `sesame.yaml(5)` from the key reference's Markdown (docs/CONFIG.md): headings become
 * sections, fenced blocks verbatim, `code` bold, list items indented paragraphs.
 *
 * @example
 * ```ts
 * import { configPage } from "./manual.ts";
 * import { match as assertMatch } from "node:assert/strict";
 * const page = configPage("# Config\n\n## listen\n\n### `listen.addresses`\n\nDefault: `[\"::\"]`.\n", "2026-12-06");
 * assertMatch(page, /\.SS "listen\.addresses"/);
 * assertMatch(page, /Default: \\fB\["::"\]\\fR\./);
 * ```
 */
export function configPage(markdown: string, date: string): string {
  const out = [
    title("SESAME.YAML", 5, date, "File Formats"),
    ".SH NAME",
    "sesame.yaml \\- the configuration of sesame, the port knocker",
    ".SH DESCRIPTION",
  ];
  let fenced = false;
  let paragraph: string[] = [];
  const flush = () => {
    if (paragraph.length > 0) out.push(inline(paragraph.join(" ")));
    paragraph = [];
  };
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) {
      flush();
      out.push(fenced ? ".fi\n.RE" : ".PP\n.RS 4\n.nf");
      fenced = !fenced;
    } else if (fenced) {
      out.push(roffText(line) || "");
    } else if (/^# /.test(line)) {
      continue; // the page's title is its NAME
    } else if (/^## /.test(line)) {
      flush();
      out.push(`.SH ${roffText(line.slice(3).replace(/`/g, "").toUpperCase())}`);
    } else if (/^###+ /.test(line)) {
      flush();
      out.push(`.SS "${roffText(line.replace(/^#+ /, "").replace(/`/g, ""))}"`);
    } else if (line.trim() === "") {
      flush();
      out.push(".PP");
    } else if (/^\s*[-*] /.test(line)) {
      flush();
      out.push(".IP \\(bu 2");
      paragraph.push(line.replace(/^\s*[-*] /, ""));
    } else paragraph.push(line.trim());
  }
  flush();
  out.push(".SH SEE ALSO", "\\fBsesame\\fR(8)");
  return out.join("\n").replace(/(\n\.PP)+/g, "\n.PP").replace(/\.PP\n(\.S[HS])/g, "$1") + "\n";
}

/** Markdown inline markup to roff: `code` bold, links as their text. */
function inline(text: string): string {
  return roffText(text)
    .replace(/\[([^\]]+)\]\([^)]+\)/g, "$1")
    .replace(/`([^`]+)`/g, "\\fB$1\\fR")
    .replace(/\*\*([^*]+)\*\*/g, "\\fB$1\\fR");
}
