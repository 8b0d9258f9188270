#!/usr/bin/env node
// npm run gen [-- --in FILE] [-- --out FILE]: generates TypeScript types from the agent's OpenAPI
// document (pkg/api/openapi.yaml) with the pinned openapi-typescript, into src/generated.ts.
// Without the document it says so and generates nothing (exit 0).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? resolve(args[i + 1]) : dflt;
}
const input = opt("--in", resolve(pkgDir, "../../api/openapi.yaml"));
const output = opt("--out", join(pkgDir, "src/generated.ts"));
const shown = (p) => relative(process.cwd(), p) || p;

if (!existsSync(input)) {
  console.log(`gen: ${shown(input)} does not exist (the OpenAPI document of the agent): nothing generated`);
  process.exit(0);
}
mkdirSync(dirname(output), { recursive: true });
const cli = join(pkgDir, "node_modules/openapi-typescript/bin/cli.js");
if (!existsSync(cli)) {
  console.error("gen: openapi-typescript is not installed: run `npm ci` in pkg/client/typescript");
  process.exit(1);
}
// --default-non-nullable=false: a property with a `default` stays optional unless the document
// lists it in `required` (otherwise every defaulted field of a request body became required).
const r = spawnSync(process.execPath, [cli, input, "--output", output, "--default-non-nullable=false"], {
  stdio: "inherit",
});
if (r.status !== 0) {
  console.error(`gen: openapi-typescript failed on ${shown(input)}`);
  process.exit(r.status ?? 1);
}
console.log(`gen: ${shown(output)} from ${shown(input)}`);
