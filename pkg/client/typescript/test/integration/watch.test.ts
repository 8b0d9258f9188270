/**
 * watch() against the real agent, through a proxy whose connections the test cuts: the
 * snapshot, events of real changes, a resumption with Last-Event-ID after a drop, a 410 Gone
 * after the agent's small ring (api.watchRingSize 16) overflowed, re-listed as RESYNC, and a
 * 410 after the agent restarted without a state file (a new epoch).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import type { Dev8Client, WatchEvent } from "../../src/client.js";
import type { Environment } from "../../src/types.js";
import { LocalAgent, waitFor } from "../helpers/agent.js";
import { CutProxy } from "../helpers/proxy.js";

const RING = 16;
let la: LocalAgent;
let direct: Dev8Client;

before(async () => {
  la = await LocalAgent.start({ watchRingSize: RING });
  direct = la.client();
});

after(async () => {
  if (!la) return;
  const { agent, sim, agentLog } = await la.stop();
  assert.equal(agent, 0, `dev8-agent exited ${agent}\n${agentLog}`);
  assert.equal(sim, 0, `azsim exited ${sim}`);
});

const spec = (name: string) => ({ userId: "u-watch", name, cloudRegion: "eastus", powerState: "Stopped" as const });

/** A watch running in the background, collecting what it yields. */
class Watcher {
  readonly events: WatchEvent[] = [];
  readonly reconnects: unknown[] = [];
  private ac = new AbortController();
  private done: Promise<unknown>;

  constructor(client: Dev8Client, resourceVersion?: number) {
    const opts = {
      signal: this.ac.signal,
      minBackoffMs: 50,
      maxBackoffMs: 200,
      onReconnect: (i: { reason: unknown }) => this.reconnects.push(i.reason),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    };
    this.done = (async () => {
      for await (const ev of client.watch(opts)) this.events.push(ev);
    })().catch((err: unknown) => err);
  }

  /** The last state seen of each id (RESYNC replaces everything). */
  state(): Map<string, Environment> {
    const m = new Map<string, Environment>();
    for (const ev of this.events) {
      if (ev.type === "RESYNC") {
        m.clear();
        for (const e of ev.items) m.set(e.id, e);
      } else if (ev.type === "DELETED") m.delete(ev.object.id);
      else m.set(ev.object.id, ev.object);
    }
    return m;
  }

  objectEvents(id: string): Array<{ type: string; rv: number; name: string | undefined }> {
    return this.events.flatMap((e) => (e.type !== "RESYNC" && e.object.id === id ? [{ type: e.type, rv: e.resourceVersion, name: e.object.spec?.name }] : []));
  }

  async until(what: string, pred: () => boolean, timeoutMs = 15_000): Promise<void> {
    await waitFor(what, () => pred(), timeoutMs, 20).catch((err: unknown) => {
      throw new Error(`${String(err)}\nevents: ${JSON.stringify(this.events.map((e) => (e.type === "RESYNC" ? `RESYNC@${e.resourceVersion}(${e.items.length})` : `${e.type}@${e.resourceVersion}:${e.object.id}`)))}`);
    });
  }

  async stop(): Promise<void> {
    this.ac.abort();
    const r = await this.done;
    if (r instanceof Error) throw r;
  }
}

describe("watch against the agent", { timeout: 120_000 }, () => {
  it("sends every environment as ADDED first, then the changes, in resourceVersion order", async () => {
    await direct.put("tw-snap-a", spec("a"));
    await direct.put("tw-snap-b", spec("b"));
    const w = new Watcher(direct);
    await w.until("the snapshot", () => w.state().has("tw-snap-a") && w.state().has("tw-snap-b"));
    assert.ok(w.events.slice(0, 2).every((e) => e.type === "ADDED"));
    await direct.put("tw-snap-a", spec("a2"));
    await w.until("the rename of tw-snap-a", () => w.state().get("tw-snap-a")?.spec?.name === "a2");
    const rvs = w.events.flatMap((e) => (e.type === "RESYNC" ? [] : [e.resourceVersion]));
    assert.deepEqual(rvs, [...rvs].sort((x, y) => x - y), "resourceVersions never go back");
    const mod = w.objectEvents("tw-snap-a").find((e) => e.name === "a2");
    assert.equal(mod?.type, "MODIFIED");
    await direct.delete("tw-snap-b");
    await w.until("tw-snap-b's DELETED", () => !w.state().has("tw-snap-b"), 30_000);
    await w.stop();
    assert.deepEqual(w.reconnects, []);
  });

  it("resumes with Last-Event-ID after the connection drops: no change lost, none repeated", async () => {
    const proxy = await new CutProxy(Number(new URL(la.baseUrl).port)).start();
    await direct.put("tw-res-1", spec("r0"));
    const w = new Watcher(la.client(undefined, proxy.baseUrl), (await direct.list({ limit: 1 })).resourceVersion);
    await direct.put("tw-res-1", spec("r1"));
    await w.until("r1", () => w.state().get("tw-res-1")?.spec?.name === "r1");

    proxy.block(); // the stream drops; reconnections are refused meanwhile
    for (const n of ["r2", "r3", "r4"]) await direct.put("tw-res-1", spec(n));
    proxy.unblock();
    await w.until("r4 after the resumption", () => w.state().get("tw-res-1")?.spec?.name === "r4");
    await w.stop();
    await proxy.stop();

    // A PUT is one event and the reconciler's status changes are more: the names, once
    // consecutive repeats are collapsed, show each change in order; the resourceVersions, that
    // no event came twice.
    const evs = w.objectEvents("tw-res-1");
    const names = evs.map((e) => e.name).filter((n, i, a) => i === 0 || a[i - 1] !== n);
    // The reconciler's status changes of r0 (the creation) may come after the list it started
    // from: they show the name r0.
    if (names[0] === "r0") names.shift();
    assert.deepEqual(names, ["r1", "r2", "r3", "r4"], "each change, in order");
    const rvs = evs.map((e) => e.rv);
    assert.ok(rvs.every((rv, i) => i === 0 || rv > (rvs[i - 1] as number)), `no event repeated: ${rvs.join(",")}`);
    assert.ok(!w.events.some((e) => e.type === "RESYNC"), "a resumption, not a re-list");
    assert.ok(w.reconnects.length >= 1);
    const heads = proxy.watchHeads();
    assert.ok(heads.length >= 2, `${heads.length} watch requests`);
    const last = heads.at(-1) ?? "";
    const lei = /\r\nlast-event-id: (\d+)\r\n/i.exec(last);
    assert.ok(lei, `the resumption sends Last-Event-ID:\n${last}`);
    const received = w.events.flatMap((e) => (e.type === "RESYNC" ? [] : [e.resourceVersion]));
    assert.ok(received.includes(Number(lei[1])), `Last-Event-ID ${lei[1]} is the id of an event received`);
    const firstAfter = received.findIndex((rv) => rv > Number(lei[1]));
    assert.equal(received[firstAfter - 1], Number(lei[1]), "and the last one received before the drop");
    assert.match(last, /^GET \/api\/v1\/watch HTTP/, "no resourceVersion in the query of a resumption");
  });

  it("410 Gone after more changes than the ring holds: re-lists, yields RESYNC with the whole set, and continues", async () => {
    const proxy = await new CutProxy(Number(new URL(la.baseUrl).port)).start();
    await direct.put("tw-gone-1", spec("g0"));
    const rv = (await direct.list({ limit: 1 })).resourceVersion;
    const w = new Watcher(la.client(undefined, proxy.baseUrl), rv);
    await direct.put("tw-gone-1", spec("g1"));
    await w.until("g1", () => w.state().get("tw-gone-1")?.spec?.name === "g1");

    proxy.block();
    // More events than api.watchRingSize: the position of the watch leaves the ring.
    for (let i = 0; i < RING + 4; i++) await direct.put(`tw-gone-${(i % 4) + 2}`, spec(`burst-${i}`));
    await direct.put("tw-gone-1", spec("g2"));
    proxy.unblock();

    await w.until("a RESYNC", () => w.events.some((e) => e.type === "RESYNC"));
    const resync = w.events.find((e) => e.type === "RESYNC");
    assert.ok(resync && resync.type === "RESYNC");
    const listed = await direct.listAll();
    const ids = (items: Environment[]) => items.map((e) => e.id).sort();
    assert.deepEqual(ids(resync.items), ids(listed.items), "the whole desired set");
    assert.equal(resync.items.find((e) => e.id === "tw-gone-1")?.spec?.name, "g2");
    assert.equal(resync.items.find((e) => e.id === "tw-gone-5")?.spec?.name, `burst-${RING + 3}`);

    // Then events again, from the list's resourceVersion.
    await direct.put("tw-gone-1", spec("g3"));
    await w.until("g3 after the RESYNC", () => w.state().get("tw-gone-1")?.spec?.name === "g3");
    const later = w.events.slice(w.events.indexOf(resync) + 1);
    assert.ok(later.every((e) => e.type !== "RESYNC" && e.resourceVersion > resync.resourceVersion));
    await w.stop();
    await proxy.stop();
    const gone = proxy.watchHeads().at(-1) ?? "";
    assert.match(gone, new RegExp(`^GET /api/v1/watch\\?resourceVersion=${resync.resourceVersion} HTTP`));
  });

  it("after an agent restart without a state file (a new epoch), the old position is 410 and re-listed", async () => {
    await direct.put("tw-epoch-1", spec("e0"));
    const w = new Watcher(direct, (await direct.list({ limit: 1 })).resourceVersion);
    await direct.put("tw-epoch-1", spec("e1"));
    await w.until("e1", () => w.state().get("tw-epoch-1")?.spec?.name === "e1");

    const code = await la.restartAgent();
    assert.equal(code, 0, "the agent stops cleanly on SIGTERM");
    // The new run knows nothing until the backend's full sync: the watch's RESYNC shows that.
    await direct.put("tw-epoch-1", spec("e2"));
    await w.until("a RESYNC after the restart", () => w.events.some((e) => e.type === "RESYNC"));
    await w.until("e2", () => w.state().get("tw-epoch-1")?.spec?.name === "e2");
    const resync = w.events.find((e) => e.type === "RESYNC");
    assert.ok(resync && resync.type === "RESYNC");
    await w.stop();
  });
});
