/// <reference lib="deno.worker" />
/**
 * The worker behind {@link WorkerRunner}: spawns commands so the main thread never blocks.
 * @module
 */
import { runCommand } from "./runner.ts";

self.onmessage = async (event: MessageEvent<{ id: number; argv: string[]; timeoutMs: number }>) => {
  const { id, argv, timeoutMs } = event.data;
  self.postMessage({ id, result: await runCommand(argv, timeoutMs) });
};
