/** Sends one UDP datagram: `deno run _udp_send.ts HOST PORT LOCAL_ADDRESS PAYLOAD` (tests only). */
import { sendDatagram } from "../lib/net/sender.ts";
const [host, port, localAddress, payload] = Deno.args;
await sendDatagram(Number(port), new TextEncoder().encode(payload), { host, localAddress });
