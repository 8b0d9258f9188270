/**
 * The check behind test/unit/openapi-compat.test.ts: generates types from an OpenAPI document
 * with scripts/gen.mjs (the pinned openapi-typescript), then type-checks, with the pinned tsc,
 * that each hand-written type of src/types.ts is assignable to its generated schema and back.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** pkg/client/typescript (this file runs from dist/test/helpers). */
export const PKG_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const OPENAPI_YAML = resolve(PKG_DIR, "../../api/openapi.yaml");

export interface Pair {
  /** A type exported by src/types.ts. */
  hand: string;
  /** Names the schema may have in components.schemas, the likeliest first. */
  schema: string[];
  /** Missing from the document: a failure (true) or not checked (false). */
  required: boolean;
}

/** The hand-written types and the schema names they are checked against. */
export const PAIRS: Pair[] = [
  { hand: "Environment", schema: ["Environment"], required: true },
  { hand: "EnvironmentSpec", schema: ["EnvironmentSpec", "Spec"], required: true },
  { hand: "EnvironmentStatus", schema: ["EnvironmentStatus", "Status_", "EnvStatus"], required: true },
  { hand: "EnvironmentList", schema: ["EnvironmentList", "ListResult"], required: true },
  { hand: "FullSyncResult", schema: ["FullSyncResult", "SyncResult"], required: true },
  { hand: "Orphans", schema: ["Orphans", "OrphanList"], required: true },
  { hand: "Status", schema: ["Status", "ControllerStatus"], required: true },
  { hand: "ApiError", schema: ["ApiError", "Error", "ErrorResponse"], required: true },
  { hand: "EnvironmentSpecInput", schema: ["EnvironmentSpecInput", "EnvironmentSpecRequest", "SpecInput"], required: false },
  // Not FullSyncItem: `allOf: [EnvironmentSpecInput, {required: [id]}]` comes out of
  // openapi-typescript as `EnvironmentSpecInput & unknown`, with id still optional.
  { hand: "EnvironmentSyncItem", schema: ["EnvironmentSyncItem", "SyncItem"], required: false },
  { hand: "EnvironmentUsage", schema: ["EnvironmentUsage"], required: true },
  { hand: "UsageRow", schema: ["UsageRow"], required: true },
  { hand: "RetainedShare", schema: ["RetainedShare"], required: true },
  { hand: "PreflightReport", schema: ["PreflightReport"], required: true },
  { hand: "ContainerStatus", schema: ["ContainerStatus"], required: true },
  { hand: "EnvironmentEvent", schema: ["EnvironmentEvent"], required: true },
  { hand: "AutoStopPendingCondition", schema: ["AutoStopPendingCondition"], required: true },
  { hand: "Condition", schema: ["Condition"], required: false },
  { hand: "ReadyCondition", schema: ["ReadyCondition"], required: false },
  { hand: "SyncedCondition", schema: ["SyncedCondition"], required: false },
  { hand: "RedactedMap", schema: ["RedactedMap"], required: false },
  { hand: "EnvVars", schema: ["EnvMap", "EnvVars"], required: false },
  { hand: "ErrorCode", schema: ["ErrorCode"], required: false },
  { hand: "EnvironmentPhase", schema: ["Phase", "EnvironmentPhase"], required: false },
  { hand: "WatchEventType", schema: ["WatchEventType"], required: false },
  { hand: "LastError", schema: ["LastError"], required: false },
  { hand: "RetryStatus", schema: ["RetryStatus", "Retry"], required: false },
  { hand: "Orphan", schema: ["Orphan"], required: false },
  { hand: "RegionStatus", schema: ["RegionStatus"], required: false },
  { hand: "ReaperStatus", schema: ["ReaperStatus"], required: false },
  { hand: "ReaperResumeResult", schema: ["ReaperResumeResult", "ResumeResult"], required: false },
];

export interface CompatResult {
  ok: boolean;
  /** What failed: the generator's or tsc's output, or the required schemas not found. */
  output: string;
  /** "Environment <-> Environment" for each pair checked. */
  checked: string[];
  missing: string[];
  schemas: string[];
}

/** The keys of `components.schemas` in openapi-typescript's output. */
export function schemaNames(generated: string): string[] {
  const start = generated.indexOf("export interface components {");
  if (start < 0) return [];
  const lines = generated.slice(start).split("\n");
  const names: string[] = [];
  let inSchemas = false;
  for (const line of lines) {
    if (!inSchemas) {
      if (/^ {4}schemas: \{/.test(line)) inSchemas = true;
      continue;
    }
    if (/^ {4}\S/.test(line)) break;
    const m = /^ {8}(?:"([^"]+)"|'([^']+)'|([A-Za-z_$][\w$]*))\??: /.exec(line);
    if (m) names.push((m[1] ?? m[2] ?? m[3]) as string);
  }
  return names;
}

/** Generates types from yaml into build/compat-<work>/generated.ts; the schema names found. */
export function generate(yaml: string, work: string): { dir: string; schemas: string[]; error?: string } {
  const dir = join(PKG_DIR, "build", `compat-${work}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const generated = join(dir, "generated.ts");
  const gen = spawnSync(process.execPath, [join(PKG_DIR, "scripts/gen.mjs"), "--in", yaml, "--out", generated], {
    encoding: "utf8",
  });
  if (gen.status !== 0 || !existsSync(generated)) {
    return { dir, schemas: [], error: `npm run gen failed:\n${gen.stdout}${gen.stderr}` };
  }
  return { dir, schemas: schemaNames(readFileSync(generated, "utf8")) };
}

/** The pairs whose schema the document has, and the required ones it lacks. */
export function match(pairs: Pair[], schemas: string[]): { found: Array<[Pair, string]>; missing: string[] } {
  const found: Array<[Pair, string]> = [];
  const missing: string[] = [];
  for (const p of pairs) {
    const name = p.schema.find((s) => schemas.includes(s));
    if (name) found.push([p, name]);
    else if (p.required) missing.push(`${p.hand} (looked for ${p.schema.join(", ")})`);
  }
  return { found, missing };
}

export function checkCompat(yaml: string, pairs: Pair[], work: string): CompatResult {
  const { dir, schemas, error } = generate(yaml, work);
  if (error) return { ok: false, output: error, checked: [], missing: [], schemas };
  const { found, missing } = match(pairs, schemas);
  const lines = [
    'import type { components } from "./generated.js";',
    'import type * as H from "../../src/types.js";',
    'type S = components["schemas"];',
  ];
  const checked: string[] = [];
  for (const [p, name] of found) {
    const s = `S[${JSON.stringify(name)}]`;
    lines.push(
      `// ${p.hand} <-> components.schemas.${name}`,
      `declare const hand_${p.hand}: H.${p.hand};`,
      `export const handToGenerated_${p.hand}: ${s} = hand_${p.hand};`,
      `declare const gen_${p.hand}: ${s};`,
      `export const generatedToHand_${p.hand}: H.${p.hand} = gen_${p.hand};`,
    );
    checked.push(`${p.hand} <-> ${name}`);
  }
  writeFileSync(join(dir, "compat.ts"), `${lines.join("\n")}\n`);
  // No @types/node: the types need none, and loading them would triple tsc's time.
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        noEmit: true,
        strict: true,
        target: "es2022",
        lib: ["es2023"],
        module: "nodenext",
        moduleResolution: "nodenext",
        types: [],
        skipLibCheck: true,
        pretty: false,
      },
      files: ["compat.ts"],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(PKG_DIR, "node_modules/typescript/bin/tsc"), "-p", dir], {
    encoding: "utf8",
    cwd: PKG_DIR,
  });
  let output = `${tsc.stdout}${tsc.stderr}`;
  if (missing.length > 0) {
    output += `\nschemas not found in the document: ${missing.join("; ")}\n(it has: ${schemas.join(", ")}; the names are in test/helpers/compat.ts PAIRS)`;
  }
  return { ok: tsc.status === 0 && missing.length === 0, output, checked, missing, schemas };
}
