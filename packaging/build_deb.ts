/**
 * `deno task deb [--arch amd64|arm64]`: builds dist/sesame_<version>-1_<arch>.deb with
 * dpkg-deb, offline but for npm: sesame bundled into one file (`deno bundle`, the command
 * runner's worker as a second file), the official Deno runtime from npm (its sha512
 * checked against packaging/runtime.json), /usr/bin/sesame (packaging/sesame.sh), the
 * units, the fail2ban filter and jail, man pages and completions generated from the help
 * texts, the docs and a changelog.
 * @module
 */
import { parseArgs } from "node:util";
import { completion } from "../lib/cli/completions.ts";
import { configPage, sesamePage } from "../lib/cli/manual.ts";
import meta from "../deno.json" with { type: "json" };
import runtime from "./runtime.json" with { type: "json" };

const root = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({
  args: Deno.args,
  options: { arch: { type: "string" }, out: { type: "string", default: `${root}dist` } },
});
const arch = values.arch ?? (Deno.build.arch === "aarch64" ? "arm64" : "amd64");
const pin = runtime.arch[arch as keyof typeof runtime.arch];
if (!pin) throw new Error(`--arch must be one of ${Object.keys(runtime.arch).join(", ")}`);
const version = `${meta.version}-1`;
const out = values.out!;
const stage = `${out}/deb/sesame_${version}_${arch}`;
const release = releaseDate();

async function run(argv: string[], options: { cwd?: string; stdout?: "piped" } = {}) {
  const piped = options.stdout === "piped";
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd ?? root,
    stdout: piped ? "piped" : "inherit",
  }).output();
  if (output.code !== 0) throw new Error(`${argv.join(" ")} exited with ${output.code}`);
  return piped ? new TextDecoder().decode(output.stdout) : "";
}

async function put(path: string, content: string | Uint8Array, mode = 0o644) {
  const file = `${stage}${path}`;
  await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  if (typeof content === "string") await Deno.writeTextFile(file, content);
  else await Deno.writeFile(file, content);
  await Deno.chmod(file, mode);
}

async function copy(from: string, to: string, mode = 0o644) {
  await put(to, await Deno.readFile(`${root}${from}`), mode);
}

/** gzip -9n: no name, no time stamp, so a rebuild gives the same bytes. */
async function gzip(path: string) {
  await run(["gzip", "-9nf", `${stage}${path}`]);
}

/** The date of the newest CHANGELOG.md entry ("## 0.2.0 — 2026-12-06"). */
function releaseDate(): string {
  const text = Deno.readTextFileSync(`${root}CHANGELOG.md`);
  const m = text.match(/^## (\S+) — (\d{4}-\d{2}-\d{2})$/m);
  if (!m || m[1] !== meta.version) {
    throw new Error(`CHANGELOG.md's newest entry must be version ${meta.version}`);
  }
  return m[2];
}

/** CHANGELOG.md as a Debian changelog (newest first, each entry its own stanza). */
function debianChangelog(): string {
  const text = Deno.readTextFileSync(`${root}CHANGELOG.md`);
  const stanzas: string[] = [];
  for (const m of text.matchAll(/^## (\S+) — (\S+)\n([\s\S]*?)(?=^## |(?![\s\S]))/gm)) {
    const items = m[3].trim().split(/\n(?=- )/).map((item) =>
      wrap(item.replace(/^- /, "").replace(/\s*\n\s*/g, " "), 76).map((l, i) =>
        `${i === 0 ? "  * " : "    "}${l}`
      ).join("\n")
    );
    const date = new Date(`${m[2]}T12:00:00Z`).toUTCString().replace("GMT", "+0000");
    stanzas.push(
      `sesame (${m[1]}-1) unstable; urgency=medium\n\n${items.join("\n")}\n\n` +
        ` -- sesame developers <sesame-developers@example.org>  ${date}\n`,
    );
  }
  return stanzas.join("\n");
}

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

/** Fetches the runtime package from npm (cached in dist/cache) and checks its sha512. */
async function fetchRuntime(): Promise<Uint8Array> {
  const cache = `${out}/cache`;
  await Deno.mkdir(cache, { recursive: true });
  const name = pin.package.replace(/^@/, "").replace("/", "-");
  const tarball = `${cache}/${name}-${runtime.version}.tgz`;
  if (!(await Deno.stat(tarball).catch(() => undefined))) {
    await run([
      "npm",
      "pack",
      "--silent",
      "--pack-destination",
      cache,
      `${pin.package}@${runtime.version}`,
    ]);
  }
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-512", await Deno.readFile(tarball)),
  );
  const integrity = `sha512-${btoa(String.fromCharCode(...digest))}`;
  if (integrity !== pin.integrity) {
    await Deno.remove(tarball);
    throw new Error(`${tarball}: sha512 ${integrity} is not the pinned ${pin.integrity}`);
  }
  const dir = await Deno.makeTempDir();
  try {
    await run(["tar", "-xzf", tarball, "-C", dir, "package/deno"]);
    return await Deno.readFile(`${dir}/package/deno`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function build() {
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  const deno = Deno.execPath();
  const lib = `${stage}/usr/lib/sesame`;
  await Deno.mkdir(lib, { recursive: true });
  await run([deno, "bundle", "-q", "--platform", "deno", "-o", `${lib}/sesame.js`, "cli.ts"]);
  await run([
    deno,
    "bundle",
    "-q",
    "--platform",
    "deno",
    "-o",
    `${lib}/runner_worker.js`,
    "lib/actions/runner_worker.ts",
  ]);
  await put("/usr/lib/sesame/deno", await fetchRuntime(), 0o755);
  await copy("packaging/sesame.sh", "/usr/bin/sesame", 0o755);

  await copy("deploy/sesame.service", "/lib/systemd/system/sesame.service");
  await copy("deploy/sesame@.service", "/lib/systemd/system/sesame@.service");
  await copy("deploy/fail2ban/filter.d/sesame.conf", "/etc/fail2ban/filter.d/sesame.conf");
  await copy("deploy/fail2ban/jail.d/sesame.conf", "/etc/fail2ban/jail.d/sesame.conf");
  await copy("examples/server.yaml", "/etc/sesame/sesame.yaml.example", 0o600);
  await Deno.chmod(`${stage}/etc/sesame`, 0o700);

  await put("/usr/share/man/man8/sesame.8", sesamePage(release));
  await gzip("/usr/share/man/man8/sesame.8");
  const config = await Deno.readTextFile(`${root}docs/CONFIG.md`);
  await put("/usr/share/man/man5/sesame.yaml.5", configPage(config, release));
  await gzip("/usr/share/man/man5/sesame.yaml.5");
  await put("/usr/share/bash-completion/completions/sesame", completion("bash"));
  await put("/usr/share/zsh/vendor-completions/_sesame", completion("zsh"));
  await put("/usr/share/fish/vendor_completions.d/sesame.fish", completion("fish"));

  const doc = "/usr/share/doc/sesame";
  await copy("packaging/debian/copyright", `${doc}/copyright`);
  await copy("packaging/debian/lintian-overrides", "/usr/share/lintian/overrides/sesame");
  await put(`${doc}/changelog.Debian`, debianChangelog());
  await gzip(`${doc}/changelog.Debian`);
  await copy("CHANGELOG.md", `${doc}/changelog`);
  await gzip(`${doc}/changelog`);
  for (const file of ["README.md", "SECURITY.md", ...docs()]) await copy(file, `${doc}/${file}`);
  for (const file of ["client.yaml", "server.yaml", "sesame.yaml"]) {
    await copy(`examples/${file}`, `${doc}/examples/${file}`);
  }

  await controlFiles();
  const deb = `${out}/sesame_${version}_${arch}.deb`;
  await run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z6", "--build", stage, deb]);
  console.log(deb);
}

function docs(): string[] {
  return [...Deno.readDirSync(`${root}docs`)].filter((e) => e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`).sort();
}

async function controlFiles() {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else files.push(path);
    }
  };
  walk(stage);
  let bytes = 0;
  const sums: string[] = [];
  for (const file of files.sort()) {
    const data = await Deno.readFile(file);
    bytes += data.length;
    const rel = file.slice(stage.length + 1);
    if (!rel.startsWith("etc/")) sums.push(`${await md5(file)}  ${rel}`);
  }
  const conffiles = files.map((f) => f.slice(stage.length)).filter((f) => f.startsWith("/etc/"));
  await put("/DEBIAN/control", control(Math.ceil(bytes / 1024)));
  await put("/DEBIAN/conffiles", conffiles.join("\n") + "\n");
  await put("/DEBIAN/md5sums", sums.join("\n") + "\n");
  for (const script of ["postinst", "prerm", "postrm"]) {
    await copy(`packaging/debian/${script}`, `/DEBIAN/${script}`, 0o755);
  }
}

async function md5(file: string): Promise<string> {
  return (await run(["md5sum", file], { stdout: "piped" })).split(" ")[0];
}

function control(installedKiB: number): string {
  return `Package: sesame
Version: ${version}
Architecture: ${arch}
Maintainer: sesame developers <sesame-developers@example.org>
Installed-Size: ${installedKiB}
Depends: libc6 (>= 2.27), libgcc-s1
Recommends: nftables, tcpdump
Suggests: iptables, conntrack, fail2ban
Section: net
Priority: optional
Homepage: https://github.com/sesame/sesame
Description: port knocker with rotating one-time knock sequences
 sesame keeps a service's port closed until a client knocks the right sequence
 on a pool of ports. Sequences are derived from a shared secret with HMAC and
 change every period, each is accepted once, and the door opens for the
 knocking address only (an nftables set element with a timeout, iptables rules
 or a command), closing by itself. It also takes fwknop's single-packet
 authorization and knockd-style static sequences.
 .
 The package runs sesame on the Deno runtime it ships (${runtime.version}), which gets
 no Debian security updates: each Deno security release gets a new package.
`;
}

await build();
