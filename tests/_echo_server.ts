/** The protected service in firewall tests: a line echo server on 0.0.0.0 and ::. */
const port = Number(Deno.args[0]);
const listener = Deno.listen({ hostname: "::", port });
console.log("ready");
for await (const conn of listener) {
  (async () => {
    const buf = new Uint8Array(256);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        await conn.write(buf.subarray(0, n));
      }
    } catch { /* reset */ }
    try {
      conn.close();
    } catch { /* closed */ }
  })();
}
