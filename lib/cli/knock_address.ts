/**
 * Where `sesame knock` sends to (the host, resolved once) and, when asked, from which
 * local address the server will see it come.
 * @module
 */
import { lookup } from "node:dns/promises";
import { parseAddress } from "../address.ts";
import { UsageError } from "../errors.ts";

/** Resolves a host once, before the first knock. */
export async function resolve(host: string, family: 0 | 4 | 6): Promise<string> {
  if (host.includes("%")) {
    throw new UsageError(
      `knock: ${
        JSON.stringify(host)
      } has a zone (%): link-local addresses are refused by sesame servers; knock a global or unique-local address`,
    );
  }
  const literal = parseAddress(host.replace(/^\[(.*)\]$/, "$1"));
  if (literal) {
    if (family !== 0 && literal.family !== family) {
      throw new UsageError(`knock: ${host} is not an IPv${family} address`);
    }
    return literal.text;
  }
  try {
    // The first address in getaddrinfo's order: the one ssh and the --exec program use.
    // (Deno's lookup sorts IPv4 first unless asked for the resolver's order.)
    const { address } = await lookup(host, { family, verbatim: true, order: "verbatim" } as never);
    return address;
  } catch (e) {
    throw new UsageError(
      `knock: cannot resolve ${JSON.stringify(host)}: ${
        (e as { code?: string }).code ?? (e as Error).message
      }`,
    );
  }
}

/**
 * The local address the system sends from to reach `host` (what a server sees on a LAN):
 * the route's source, from the routing table (`ip route get`). A connected UDP socket
 * would say it too, but in Deno it reports the wildcard address.
 */
export async function localAddressFor(host: string): Promise<string> {
  for (const ip of ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]) {
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(ip, {
        args: ["route", "get", host],
        stdout: "piped",
        stderr: "null",
      }).output();
    } catch {
      continue; // not there
    }
    const src = / src (\S+)/.exec(new TextDecoder().decode(out.stdout))?.[1];
    if (out.success && src && parseAddress(src)) return parseAddress(src)!.text;
    break;
  }
  throw new UsageError(
    `knock: cannot tell the local address towards ${host} (no route, or no "ip" command): give it with --from`,
  );
}
