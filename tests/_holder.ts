/**
 * Holds one TCP connection open for firewall tests: prints "connected", then for each
 * line on stdin sends "ping" and prints "pong" if it comes back within 1 s, else "dead".
 */
const [host, port] = Deno.args;
const conn = await Deno.connect({ hostname: host, port: Number(port) });
console.log("connected");
const input = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
for await (const _ of input) {
  try {
    await conn.write(new TextEncoder().encode("ping\n"));
    const buf = new Uint8Array(16);
    const n = await Promise.race([
      conn.read(buf),
      new Promise<null>((r) => setTimeout(() => r(null), 1000)),
    ]);
    console.log(n ? "pong" : "dead");
  } catch {
    console.log("dead");
  }
}
