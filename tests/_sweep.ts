/** A plain in-order connect sweep from one source: connect, complete the handshake, close; bounded. */
import { sendKnock } from "../lib/net/sender.ts";
const [host, source, from, to] = Deno.args;
if (!host.startsWith("127.")) throw new Error("loopback only");
for (let port = Number(from); port <= Math.min(Number(to), Number(from) + 5000); port++) {
  await sendKnock({ port, protocol: "tcp" }, { host, localAddress: source, tcpTimeoutMs: 200 });
}
