/**
 * The sesame command line. Everything happens in lib/cli; this file only runs it.
 * @module
 */
import { main } from "./lib/cli/main.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
