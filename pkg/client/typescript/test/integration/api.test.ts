/**
 * The client against the real dev8-agent and azsim: every route, the errors, the Prisma
 * mappers on real answers, and an environment converging through its lifecycle.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Dev8Client } from "../../src/client.js";
import { Dev8ApiError } from "../../src/errors.js";
import { rowPatchFromStatus, specFromRow, type EnvironmentRow } from "../../src/prisma.js";
import type { Environment, EnvironmentPhase } from "../../src/types.js";
import { API_KEY_2, LocalAgent, waitFor } from "../helpers/agent.js";

let la: LocalAgent;
let c: Dev8Client;

before(async () => {
  la = await LocalAgent.start();
  c = la.client();
});

after(async () => {
  if (!la) return;
  const { agent, sim, agentLog } = await la.stop();
  assert.equal(agent, 0, `dev8-agent exited ${agent}\n${agentLog}`);
  assert.equal(sim, 0, `azsim exited ${sim}`);
});

const spec = (userId = "u1", name = "my env") => ({ userId, name, cloudRegion: "eastus" });

async function rejected(p: Promise<unknown>): Promise<Dev8ApiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(e instanceof Dev8ApiError, `expected a Dev8ApiError, got ${String(e)}`);
  return e;
}

async function phase(id: string, want: EnvironmentPhase, extra: (e: Environment) => boolean = () => true): Promise<Environment> {
  return waitFor(`${id} to reach ${want}`, async () => {
    const e = await c.get(id);
    return e.status.phase === want && extra(e) ? e : undefined;
  }, 30_000, 200);
}

describe("environments", { timeout: 120_000 }, () => {
  it("put creates (201), an identical put changes nothing (200), a change bumps the generation", async () => {
    const r1 = await c.put("ts-put-1", { ...spec(), env: { EDITOR: "vim" } });
    assert.equal(r1.created, true);
    assert.equal(r1.environment.generation, 1);
    assert.equal(r1.etag, '"1"');
    assert.deepEqual(r1.environment.spec, {
      userId: "u1",
      name: "my env",
      cloudRegion: "eastus",
      baseImage: "node",
      cpuCores: 2,
      memoryGB: 4,
      storageGB: 20,
      powerState: "Running",
      env: { EDITOR: "vim" },
      secretEnv: {},
      autoStopMinutes: 0,
      storagePolicy: "Delete",
      updatePolicy: "Immediate",
    });
    const r2 = await c.put("ts-put-1", { ...spec(), env: { EDITOR: "vim" } });
    assert.deepEqual([r2.created, r2.environment.generation], [false, 1]);
    const r3 = await c.put("ts-put-1", { ...spec(), cpuCores: 1.5 }, { ifMatch: 1 });
    assert.deepEqual([r3.created, r3.environment.generation, r3.etag], [false, 2, '"2"']);
  });

  it("If-Match: a stale generation and * on a missing id are 409 Conflict", async () => {
    await c.put("ts-ifm-1", spec());
    const stale = await rejected(c.put("ts-ifm-1", { ...spec(), name: "x" }, { ifMatch: 7 }));
    assert.deepEqual([stale.status, stale.code, stale.isConflict, stale.retryable], [409, "Conflict", true, false]);
    assert.match(stale.message, /If-Match does not match the current generation 1/);
    const star = await rejected(c.put("ts-ifm-missing", spec(), { ifMatch: "*" }));
    assert.equal(star.status, 409);
    const ok = await c.put("ts-ifm-1", { ...spec(), name: "y" }, { ifMatch: "*" });
    assert.equal(ok.environment.generation, 2);
  });

  it("errors carry the status, code, message, field and the echoed request id", async () => {
    const bad = await rejected(c.put("ts-bad-1", { ...spec(), cpuCores: 3.3 }, { requestId: "ts-req-cpu" }));
    assert.deepEqual([bad.status, bad.code, bad.field, bad.requestId], [400, "InvalidSpec", "cpuCores", "ts-req-cpu"]);
    const unknown = await rejected(c.put("ts-bad-1", { ...spec(), colour: "red" } as never));
    assert.deepEqual([unknown.code, unknown.field], ["InvalidSpec", "colour"]);
    const region = await rejected(c.put("ts-bad-1", { ...spec(), cloudRegion: "mars" }));
    assert.equal(region.field, "cloudRegion");
    const id = await rejected(c.put("Bad--Id", spec()));
    assert.deepEqual([id.status, id.code, id.field], [400, "InvalidId", "id"]);
    const nf = await rejected(c.get("ts-nobody"));
    assert.deepEqual([nf.status, nf.code, nf.isNotFound], [404, "NotFound", true]);
    assert.match(nf.requestId ?? "", /^[0-9a-f-]{36}$/, "the client's generated X-Request-Id, echoed");
    const unauth = await rejected(new Dev8Client({ baseUrl: la.baseUrl, apiKey: "wrong" }).status());
    assert.deepEqual([unauth.status, unauth.code], [401, "Unauthorized"]);
    assert.equal((await la.client(API_KEY_2).status()).ready, true, "the second key of AGENT_API_KEYS works");
    const q = await rejected(c.list({ phase: "SLEEPING" as EnvironmentPhase }));
    assert.deepEqual([q.status, q.code, q.field], [400, "InvalidQuery", "phase"]);
    const lim = await rejected(c.list({ limit: 5000 }));
    assert.equal(lim.field, "limit");
    for (const op of [c.start("ts-nobody"), c.stop("ts-nobody"), c.activity("ts-nobody")]) {
      assert.equal((await rejected(op)).status, 404);
    }
  });

  it("create: with the body's id, with a generated id, 409 when the id exists", async () => {
    const e = await c.create({ ...spec(), id: "ts-create-1" });
    assert.equal(e.id, "ts-create-1");
    const g = await c.create(spec("u-gen"));
    assert.match(g.id, /^c[0-9a-f]{24}$/);
    const dup = await rejected(c.create({ ...spec(), id: "ts-create-1" }));
    assert.deepEqual([dup.status, dup.code], [409, "Conflict"]);
    await c.delete(g.id);
  });

  it("list filters by userId, cloudRegion and phase, and pages with continue", async () => {
    for (const id of ["ts-list-a", "ts-list-b", "ts-list-c"]) await c.put(id, spec("u-list"));
    await c.put("ts-list-w", { ...spec("u-list"), cloudRegion: "westeurope" });
    const mine = await c.list({ userId: "u-list" });
    assert.deepEqual(mine.items.map((e) => e.id), ["ts-list-a", "ts-list-b", "ts-list-c", "ts-list-w"]);
    assert.equal(mine.continue, "");
    assert.ok(mine.resourceVersion > 0);
    const west = await c.list({ userId: "u-list", cloudRegion: "westeurope" });
    assert.deepEqual(west.items.map((e) => e.id), ["ts-list-w"]);
    const none = await c.list({ userId: "u-list", phase: "STOPPED" });
    assert.deepEqual(none.items, []);
    const p1 = await c.list({ userId: "u-list", limit: 3 });
    assert.deepEqual([p1.items.length, p1.continue], [3, "ts-list-c"]);
    const pages: string[][] = [];
    for await (const page of c.listPages({ userId: "u-list", limit: 1 })) pages.push(page.items.map((e) => e.id));
    assert.deepEqual(pages, [["ts-list-a"], ["ts-list-b"], ["ts-list-c"], ["ts-list-w"]]);
    const all = await c.listAll({ userId: "u-list", limit: 2 });
    assert.equal(all.items.length, 4);
  });

  it("an environment converges: RUNNING with its resources, stop, start, activity, delete", async () => {
    const id = "ts-life-1";
    await c.put(id, { ...spec("u-life"), secretEnv: { GITHUB_TOKEN: "ghp_secret_value" } });
    const running = await phase(id, "RUNNING", (e) => e.status.vsCodeUrl !== null && e.status.aciPublicIp !== null);
    assert.deepEqual(running.spec?.secretEnv, { GITHUB_TOKEN: "<redacted>" });
    assert.equal(JSON.stringify(running).includes("ghp_secret_value"), false);
    const ready = running.status.conditions.find((x) => x.type === "Ready");
    assert.deepEqual([ready?.status, ready?.reason], ["True", "Available"]);
    assert.equal(running.status.observedGeneration, running.generation);

    const patch = rowPatchFromStatus(running);
    assert.equal(patch.status, "RUNNING");
    assert.equal(patch.aciContainerGroupId, `dev8-${id}`);
    assert.equal(patch.azureFileShareName, `dev8-${id}`);
    assert.match(patch.vsCodeUrl ?? "", /^http:\/\/dev8-ts-life-1-[0-9a-f]{6}\..*:8080$/);
    assert.ok(patch.aciPublicIp);

    const stopping = await c.stop(id);
    assert.equal(stopping.spec?.powerState, "Stopped");
    assert.equal(stopping.generation, running.generation + 1);
    const stopped = await phase(id, "STOPPED");
    assert.equal(rowPatchFromStatus(stopped).status, "STOPPED");

    const starting = await c.start(id);
    assert.equal(starting.spec?.powerState, "Running");
    await phase(id, "RUNNING", (e) => e.status.aciPublicIp !== null);
    assert.equal(await c.activity(id), undefined);
    assert.notEqual((await c.get(id)).status.lastActivityTime, null);

    const deleting = await c.delete(id);
    assert.equal(deleting.status.phase, "DELETING");
    await waitFor(`${id} to disappear`, async () => {
      const e = await c.get(id).catch((err: unknown) => err);
      return e instanceof Dev8ApiError && e.isNotFound;
    }, 30_000, 200);
  });

  it("delete of an id the agent never knew answers a tombstone (202, spec null)", async () => {
    const t = await c.delete("ts-never-known");
    assert.deepEqual([t.generation, t.spec, t.status.phase], [0, null, "DELETING"]);
  });

  it("updatePolicy OnNextStart holds a recreating change while running (UpdatePending); restart applies it", async () => {
    const id = "ts-upol-1";
    const held = { ...spec("u-upol"), updatePolicy: "OnNextStart" as const };
    const first = await c.put(id, held);
    assert.equal(first.environment.spec?.updatePolicy, "OnNextStart");
    await phase(id, "RUNNING", (e) => e.status.observedGeneration === 1 && e.status.vsCodeUrl !== null);

    const changed = await c.put(id, { ...held, env: { FEATURE: "on" } });
    assert.equal(changed.environment.generation, 2);
    const pending = await waitFor(`${id} to hold the change (Synced UpdatePending)`, async () => {
      const e = await c.get(id);
      const synced = e.status.conditions.find((x) => x.type === "Synced");
      return synced?.reason === "UpdatePending" ? e : undefined;
    }, 30_000, 200);
    assert.equal(pending.status.phase, "RUNNING", "the workspace keeps running meanwhile");
    assert.equal(pending.status.conditions.find((x) => x.type === "Synced")?.status, "False");

    const restarted = await c.restart(id);
    assert.equal(restarted.id, id);
    assert.equal(restarted.generation, 2, "a restart is no new generation");
    await phase(id, "RUNNING", (e) => {
      const synced = e.status.conditions.find((x) => x.type === "Synced");
      return e.status.observedGeneration === 2 && synced?.reason === "ReconcileSuccess";
    });
    const nf = await rejected(c.restart("ts-nobody"));
    assert.deepEqual([nf.status, nf.code], [404, "NotFound"]);
    await c.delete(id);
    const gone = await rejected(c.restart(id));
    assert.deepEqual([gone.status, gone.code], [409, "Conflict"], "409 while deleting");
  });
});

describe("Prisma rows", { timeout: 120_000 }, () => {
  const row = (id: string, over: Partial<EnvironmentRow> = {}): EnvironmentRow => ({
    id,
    userId: "user_prisma",
    name: `row ${id}`,
    status: "CREATING",
    cloudProvider: "AZURE",
    cloudRegion: "eastus",
    baseImage: "python",
    cpuCores: 1,
    memoryGB: 2,
    storageGB: 10,
    aciContainerGroupId: null,
    aciPublicIp: null,
    azureFileShareName: null,
    vsCodeUrl: null,
    createdAt: new Date(),
    updatedAt: new Date(),
    lastAccessedAt: null,
    ...over,
  });

  it("specFromRow is accepted as is, and sticky secretEnv and powerState survive a row's PUT", async () => {
    const id = "ts-row-1";
    const created = await c.put(id, specFromRow(row(id), { NPM_TOKEN: "npm_secret" }));
    assert.equal(created.created, true);
    assert.deepEqual(
      [created.environment.spec?.baseImage, created.environment.spec?.cpuCores, created.environment.spec?.memoryGB, created.environment.spec?.storageGB],
      ["python", 1, 2, 10],
    );
    await c.stop(id);
    // The row again, without secrets and (always) without powerState: both are kept.
    const again = await c.put(id, specFromRow(row(id, { status: "RUNNING" })));
    assert.deepEqual(again.environment.spec?.secretEnv, { NPM_TOKEN: "<redacted>" });
    assert.equal(again.environment.spec?.powerState, "Stopped", "a row's PUT never undoes a stop");
    assert.equal(again.created, false);
    // null means omitted too (the client leaves nulls out, for agents older than that rule).
    const nulls = await c.put(id, { ...specFromRow(row(id)), powerState: null, secretEnv: null });
    assert.equal(nulls.environment.spec?.powerState, "Stopped");
    assert.deepEqual(nulls.environment.spec?.secretEnv, { NPM_TOKEN: "<redacted>" });
    // {} clears the secrets.
    const cleared = await c.put(id, specFromRow(row(id), {}));
    assert.deepEqual(cleared.environment.spec?.secretEnv, {});
  });

  it("a cloudProvider other than AZURE is refused, naming the field", async () => {
    const e = await rejected(c.put("ts-row-aws", specFromRow(row("ts-row-aws", { cloudProvider: "AWS" }))));
    assert.deepEqual([e.status, e.field], [400, "cloudProvider"]);
  });

  it("full sync from rows: created, unchanged, a row gone is removed (DELETING, RemovedFromDesiredSet); status and orphans", async () => {
    const existing = await c.listAll();
    const rows = ["ts-sync-a", "ts-sync-b", "ts-sync-c"].map((id) => row(id));
    // Everything this file created stays desired too, so that only ts-sync-c goes later.
    const keep = existing.items.filter((e) => e.spec !== null && e.status.phase !== "DELETING");
    const keepItems = keep.map((e) => ({ id: e.id, ...e.spec!, secretEnv: undefined, powerState: undefined }));
    const first = await c.fullSync([...keepItems, ...rows.map((r) => specFromRow(r))]);
    assert.deepEqual([first.created, first.updated, first.removed], [3, 0, 0]);
    assert.equal(first.unchanged, keep.length);
    const second = await c.fullSync([...keepItems, ...rows.map((r) => specFromRow(r))]);
    assert.deepEqual([second.created, second.updated, second.removed, second.unchanged], [0, 0, 0, keep.length + 3]);
    assert.ok(second.resourceVersion >= first.resourceVersion);

    const third = await c.fullSync([...keepItems, ...rows.slice(0, 2).map((r) => specFromRow(r))]);
    assert.equal(third.removed, 1);
    const gone = await c.get("ts-sync-c").catch((e: unknown) => e);
    if (!(gone instanceof Dev8ApiError && gone.isNotFound)) {
      const g = gone as Environment;
      assert.equal(g.status.phase, "DELETING");
      const ready = g.status.conditions.find((x) => x.type === "Ready");
      assert.equal(ready?.reason, "RemovedFromDesiredSet");
      assert.equal(rowPatchFromStatus(g).status, "DELETING");
    }

    const bad = await rejected(c.fullSync([specFromRow(row("ts-sync-a")), { ...specFromRow(row("ts-sync-x")), cpuCores: 9 }]));
    assert.deepEqual([bad.status, bad.code, bad.field], [400, "InvalidSpec", "items[1].cpuCores"]);

    const st = await c.status();
    assert.equal(st.synced, true, "a full sync makes the desired set authoritative");
    assert.equal(st.controller, "dev8-tstest");
    assert.equal(typeof st.environments.byPhase.RUNNING, "number");
    assert.deepEqual(st.regions?.map((r) => r.name), ["eastus", "westeurope"]);
    assert.equal(st.azureTokenObtained, true);
    assert.ok(st.reaper && typeof st.reaper.state === "string");

    const orphans = await c.orphans();
    assert.ok(Array.isArray(orphans.items));
    for (const o of orphans.items) {
      assert.ok(o.kind === "containerGroup" || o.kind === "fileShare");
      assert.match(o.name, /^dev8-/);
    }
    assert.deepEqual(await c.resumeReaper(), { resumed: false });
  });
});

describe("preflight", { timeout: 60_000 }, () => {
  it("reads the subscription through the agent: every check named, nothing failing on azsim", async () => {
    const r = await c.preflight();
    const names = r.checks.map((ch) => ch.name);
    assert.ok(names.includes("credentials"));
    assert.ok(names.includes("region eastus: permissions"));
    assert.equal(r.summary.fail, 0, JSON.stringify(r.checks.filter((ch) => ch.status === "fail")));
    assert.equal(r.summary.pass + r.summary.warn, r.checks.length);
    for (const ch of r.checks) assert.equal(ch.fix === "", ch.status === "pass", ch.name);
  });
});
