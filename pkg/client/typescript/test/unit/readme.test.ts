/**
 * The README's "Integrating from Next.js" examples type-check against this package (with
 * stand-ins for the backend's Prisma client and secret store), so the documentation cannot
 * drift from the API.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";

import { PKG_DIR } from "../helpers/compat.js";

const README = join(PKG_DIR, "../../../README.md");

const STUBS: Record<string, string> = {
  "lib/prisma.ts": `
import type { EnvironmentRow, EnvironmentRowPatch } from "@dev8/agent-client";
type Where = { id?: string | { notIn: string[] }; status?: string | { not: string } };
export declare const prisma: {
  environment: {
    findMany(args?: { where?: Where }): Promise<EnvironmentRow[]>;
    updateMany(args: { where: Where; data: Partial<EnvironmentRowPatch> }): Promise<{ count: number }>;
    deleteMany(args: { where: Where }): Promise<{ count: number }>;
  };
};
`,
  "lib/secrets.ts": `
import type { EnvironmentRow, EnvVars } from "@dev8/agent-client";
export declare function secretsOf(row: EnvironmentRow): EnvVars | undefined;
`,
};

describe("README", () => {
  it("the Integrating from Next.js examples type-check against the client", () => {
    const text = readFileSync(README, "utf8");
    const start = text.indexOf("\n## Integrating from Next.js\n");
    assert.ok(start >= 0, "README.md has a section '## Integrating from Next.js'");
    const end = text.indexOf("\n## ", start + 1);
    const section = text.slice(start, end < 0 ? undefined : end);
    const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] as string);
    assert.ok(blocks.length >= 4, `${blocks.length} ts blocks`);

    const dir = join(PKG_DIR, "build", "readme");
    rmSync(dir, { recursive: true, force: true });
    const files: string[] = [];
    const write = (rel: string, body: string): void => {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), body);
      files.push(rel);
    };
    for (const [rel, body] of Object.entries(STUBS)) write(rel, body);
    for (const b of blocks) {
      const m = /^\/\/ (\S+\.ts)\n/.exec(b);
      assert.ok(m, `every example starts with a "// path.ts" line:\n${b.slice(0, 80)}`);
      write(m[1] as string, b);
    }
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          noEmit: true,
          strict: true,
          target: "es2022",
          lib: ["es2023"],
          module: "esnext",
          moduleResolution: "bundler",
          types: ["node"],
          typeRoots: [join(PKG_DIR, "node_modules/@types")],
          skipLibCheck: true,
          pretty: false,
          paths: { "@/*": ["./*"], "@dev8/agent-client": [join(PKG_DIR, "src/index.ts")] },
        },
        files,
      }),
    );
    const tsc = spawnSync(process.execPath, [join(PKG_DIR, "node_modules/typescript/bin/tsc"), "-p", dir], {
      encoding: "utf8",
      cwd: PKG_DIR,
    });
    assert.equal(tsc.status, 0, `the README's examples do not compile:\n${tsc.stdout}${tsc.stderr}`);
  });
});
