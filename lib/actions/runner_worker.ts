/// <reference lib="deno.worker" />
/**
 * The worker behind {@link WorkerRunner}: spawns commands so the main thread never blocks.
 * @module
 */
import { runCommand } from "./runner.ts";

self.onmessage = async (
  event: MessageEvent<{ id: number; argv: string[]; timeoutMs: number; input?: string }>,
) => {
  const { id, argv, timeoutMs, input } = event.data;
  self.postMessage({ id, result: await runCommand(argv, timeoutMs, input) });
};
