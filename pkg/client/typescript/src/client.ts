/**
 * A small client of the dev8-agent API on the Fetch API of Node.js 20 (no runtime
 * dependencies): every route, typed errors (Dev8ApiError), optional If-Match, paging, and a
 * watch stream that resumes by itself.
 */
import { randomUUID } from "node:crypto";

import { Dev8ApiError, errorFromResponse } from "./errors.js";
import { SseParser, type SseEvent } from "./sse.js";
import type {
  Environment,
  EnvironmentEvents,
  EnvironmentList,
  EnvironmentSpecInput,
  EnvironmentSyncItem,
  FullSyncResult,
  ListParams,
  Orphans,
  PreflightReport,
  ReaperResumeResult,
  RetainedShares,
  Status,
  UsageParams,
  UsageRows,
  WatchEventType,
} from "./types.js";

/** `^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$` without "--": what the agent takes as an id. */
export function isValidEnvironmentId(id: string): boolean {
  return /^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$/.test(id) && !id.includes("--");
}

export interface Dev8ClientOptions {
  /** The agent's address, e.g. "http://dev8-agent.dev8.svc:8080" (a path prefix is kept). */
  baseUrl: string;
  /** One of the agent's AGENT_API_KEYS. */
  apiKey: string;
  /** Defaults to the global fetch (Node.js 20). */
  fetch?: typeof globalThis.fetch;
  /** Per request, watch streams excepted; default 30 s. 0 disables it. */
  timeoutMs?: number;
  /** Makes the X-Request-Id of each request; default crypto.randomUUID. */
  requestId?: () => string;
  /** Sent with every request (e.g. a User-Agent). */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** X-Request-Id of this request (1..128 of [A-Za-z0-9._:-]); the agent logs and echoes it. */
  requestId?: string;
}

export interface PutOptions extends RequestOptions {
  /**
   * If-Match: the generation the caller last read (409 Conflict when the environment has moved
   * on), or "*" (409 when it does not exist). Absent: the PUT applies unconditionally.
   */
  ifMatch?: number | "*";
}

export interface PutResult {
  environment: Environment;
  /** 201 (created) rather than 200 (updated or unchanged). */
  created: boolean;
  /** The ETag, `"<generation>"`. */
  etag: string | null;
}

export interface ListAllResult {
  items: Environment[];
  /**
   * The resourceVersion of the first page: every change after it is either in the items or
   * comes as a watch event from it, so a watch started there misses nothing.
   */
  resourceVersion: number;
}

export type WatchEvent =
  | { type: WatchEventType; resourceVersion: number; object: Environment }
  | {
      /**
       * Synthetic: the watch could not resume (410 Gone: its resourceVersion left the agent's
       * ring, or came from an earlier run of the agent) and listed every environment again.
       * `items` is the whole desired set: an environment the consumer holds that is not in it
       * was deleted meanwhile. Events continue from `resourceVersion`.
       */
      type: "RESYNC";
      resourceVersion: number;
      items: Environment[];
    };

export interface WatchOptions {
  /**
   * Start after this resourceVersion (from a list, a previous event or a full sync). Absent:
   * the agent first sends every environment as ADDED.
   */
  resourceVersion?: number;
  /** Ends the watch: the iterator then finishes without an error. */
  signal?: AbortSignal;
  /**
   * No byte for this long (the agent sends a heartbeat every 15 s) means a dead connection:
   * it is dropped and resumed. Default 45 s; 0 disables it.
   */
  idleTimeoutMs?: number;
  /** Reconnection delay after the first failure, doubled per failure (with jitter); default 250 ms. */
  minBackoffMs?: number;
  /** Upper bound of the reconnection delay; default 30 s. */
  maxBackoffMs?: number;
  /** Told before each reconnection, with why (an error, an HTTP error, or the end of the stream). */
  onReconnect?: (info: { attempt: number; delayMs: number; reason: unknown; lastEventId: string }) => void;
}

type Query = Record<string, string | number | undefined>;

interface Call {
  method: string;
  path: string;
  query?: Query | undefined;
  body?: unknown;
  headers?: Record<string, string>;
  opts?: RequestOptions | undefined;
}

const WATCH_PATH = "/api/v1/watch";

/**
 * The spec without its null fields. The API documents null as "left out"; agents built before
 * that held for the sticky fields took "powerState": null as Running (starting a stopped
 * workspace) and "secretEnv": null as no secrets. Leaving nulls out means the same to every
 * agent.
 */
function withoutNulls<T extends object>(spec: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) if (v !== null && v !== undefined) out[k] = v;
  return out as T;
}

/** The watch stream carried something that is not the agent's protocol; thrown by watch(). */
export class WatchProtocolError extends Error {
  override readonly name = "WatchProtocolError";
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class Dev8Client {
  private readonly base: string;
  private readonly apiKey: string;
  private readonly fetchFn: typeof globalThis.fetch;
  private readonly timeoutMs: number;
  private readonly makeRequestId: () => string;
  private readonly extraHeaders: Record<string, string>;

  constructor(opts: Dev8ClientOptions) {
    if (!opts.baseUrl) throw new TypeError("Dev8Client: baseUrl is required");
    if (!opts.apiKey) throw new TypeError("Dev8Client: apiKey is required");
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.apiKey = opts.apiKey;
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.makeRequestId = opts.requestId ?? randomUUID;
    this.extraHeaders = { ...(opts.headers ?? {}) };
  }

  // ---- environments -------------------------------------------------------------------

  /**
   * PUT /api/v1/environments/{id}: creates (201) or replaces (200) the environment's spec.
   * The answer comes at once; convergence follows asynchronously (watch it).
   */
  async put(id: string, spec: EnvironmentSpecInput, opts: PutOptions = {}): Promise<PutResult> {
    const headers: Record<string, string> = {};
    if (opts.ifMatch !== undefined) {
      headers["If-Match"] = opts.ifMatch === "*" ? "*" : `"${opts.ifMatch}"`;
    }
    const { res, json } = await this.call<Environment>({
      method: "PUT",
      path: `/api/v1/environments/${encodeURIComponent(id)}`,
      body: withoutNulls(spec),
      headers,
      opts,
    });
    return { environment: json, created: res.status === 201, etag: res.headers.get("etag") };
  }

  /**
   * POST /api/v1/environments: creates an environment with the spec's id, or a generated one
   * when it has none; 409 Conflict when the id exists.
   */
  async create(spec: EnvironmentSpecInput, opts?: RequestOptions): Promise<Environment> {
    return (
      await this.call<Environment>({ method: "POST", path: "/api/v1/environments", body: withoutNulls(spec), opts })
    ).json;
  }

  /** GET /api/v1/environments/{id}; 404 NotFound when the agent does not know it. */
  async get(id: string, opts?: RequestOptions): Promise<Environment> {
    return (await this.call<Environment>({ method: "GET", path: this.envPath(id), opts })).json;
  }

  /** GET /api/v1/environments: one page, in id order. */
  async list(params: ListParams = {}, opts?: RequestOptions): Promise<EnvironmentList> {
    const query: Query = {
      userId: params.userId,
      cloudRegion: params.cloudRegion,
      phase: params.phase,
      limit: params.limit,
      continue: params.continue || undefined,
    };
    return (await this.call<EnvironmentList>({ method: "GET", path: "/api/v1/environments", query, opts })).json;
  }

  /** Every page of a list, following `continue`; `for await (const page of client.listPages())`. */
  async *listPages(params: ListParams = {}, opts?: RequestOptions): AsyncGenerator<EnvironmentList, void, undefined> {
    let cont = params.continue;
    for (;;) {
      const page = await this.list({ ...params, continue: cont }, opts);
      yield page;
      if (!page.continue) return;
      cont = page.continue;
    }
  }

  /** Every environment matching params (1000 a page unless params.limit says otherwise). */
  async listAll(params: ListParams = {}, opts?: RequestOptions): Promise<ListAllResult> {
    const items: Environment[] = [];
    let rv: number | undefined;
    for await (const page of this.listPages({ limit: 1000, ...params }, opts)) {
      if (rv === undefined) rv = page.resourceVersion;
      items.push(...page.items);
    }
    return { items, resourceVersion: rv ?? 0 };
  }

  /**
   * DELETE /api/v1/environments/{id}: always 202 with the object in phase DELETING (a
   * tombstone with `spec: null` for an id the agent did not know); it disappears (a DELETED
   * event) once Azure holds nothing of it.
   */
  async delete(id: string, opts?: RequestOptions): Promise<Environment> {
    return (await this.call<Environment>({ method: "DELETE", path: this.envPath(id), opts })).json;
  }

  /** POST .../start: powerState Running; 202 with the object. A start also counts as activity. */
  async start(id: string, opts?: RequestOptions): Promise<Environment> {
    return (await this.call<Environment>({ method: "POST", path: `${this.envPath(id)}/start`, opts })).json;
  }

  /** POST .../stop: powerState Stopped; 202 with the object. */
  async stop(id: string, opts?: RequestOptions): Promise<Environment> {
    return (await this.call<Environment>({ method: "POST", path: `${this.envPath(id)}/stop`, opts })).json;
  }

  /**
   * POST .../restart: applies now a change held back by updatePolicy OnNextStart (the group is
   * recreated with the new spec); 202 with the object, no new generation; 409 while deleting.
   */
  async restart(id: string, opts?: RequestOptions): Promise<Environment> {
    return (await this.call<Environment>({ method: "POST", path: `${this.envPath(id)}/restart`, opts })).json;
  }

  /** POST .../activity: records activity now (resets the auto-stop clock); 204. */
  async activity(id: string, opts?: RequestOptions): Promise<void> {
    await this.call<undefined>({ method: "POST", path: `${this.envPath(id)}/activity`, opts });
  }

  /**
   * PUT /api/v1/environments: the full sync. The items replace the whole desired set at once,
   * all or nothing (one bad item: 400 naming `items[N].field`, nothing changes); environments
   * left out turn DELETING (Ready reason RemovedFromDesiredSet) and their resources become
   * orphans.
   */
  async fullSync(items: EnvironmentSyncItem[], opts?: RequestOptions): Promise<FullSyncResult> {
    return (
      await this.call<FullSyncResult>({
        method: "PUT",
        path: "/api/v1/environments",
        body: { items: items.map((i) => withoutNulls(i)) },
        opts,
      })
    ).json;
  }

  // ---- controller ---------------------------------------------------------------------

  /** GET /api/v1/environments/{id}/events: the last 64 events, oldest first (kept in memory). */
  async events(id: string, opts?: RequestOptions): Promise<EnvironmentEvents> {
    return (await this.call<EnvironmentEvents>({ method: "GET", path: `${this.envPath(id)}/events`, opts })).json;
  }

  /** GET /api/v1/orphans */
  async orphans(opts?: RequestOptions): Promise<Orphans> {
    return (await this.call<Orphans>({ method: "GET", path: "/api/v1/orphans", opts })).json;
  }

  /** GET /api/v1/usage: usage and cost rows per environment and period. */
  async usage(params: UsageParams = {}, opts?: RequestOptions): Promise<UsageRows> {
    const query: Query = {
      from: params.from,
      to: params.to,
      userId: params.userId,
      granularity: params.granularity,
    };
    return (await this.call<UsageRows>({ method: "GET", path: "/api/v1/usage", query, opts })).json;
  }

  /** GET /api/v1/retained: shares kept after their environment was deleted. */
  async retained(opts?: RequestOptions): Promise<RetainedShares> {
    return (await this.call<RetainedShares>({ method: "GET", path: "/api/v1/retained", opts })).json;
  }

  /**
   * GET /api/v1/preflight: the checks of `dev8-agent preflight`, read through ARM now (answers
   * once the slowest read is in; calls during a run share it).
   */
  async preflight(opts?: RequestOptions): Promise<PreflightReport> {
    return (await this.call<PreflightReport>({ method: "GET", path: "/api/v1/preflight", opts })).json;
  }

  /** POST /api/v1/reaper/resume: lifts a suspension of the reaper. */
  async resumeReaper(opts?: RequestOptions): Promise<ReaperResumeResult> {
    return (await this.call<ReaperResumeResult>({ method: "POST", path: "/api/v1/reaper/resume", opts })).json;
  }

  /** GET /api/v1/status */
  async status(opts?: RequestOptions): Promise<Status> {
    return (await this.call<Status>({ method: "GET", path: "/api/v1/status", opts })).json;
  }

  // ---- watch --------------------------------------------------------------------------

  /**
   * GET /api/v1/watch as an async iterator of events, over fetch streaming:
   *
   *     for await (const ev of client.watch({ signal })) { ... }
   *
   * - A dropped connection (an error, the end of the stream, no byte for idleTimeoutMs, a 429
   *   or 5xx) is resumed with Last-Event-ID after a backoff, so no event is lost or repeated.
   * - 410 Gone (the agent's ring no longer holds the events after ours, or the agent restarted
   *   without its state file) lists every environment again and yields one RESYNC event with
   *   the whole list, then continues from the list's resourceVersion.
   * - A drop while the agent was still sending its first snapshot (a watch started without
   *   resourceVersion) also re-lists: the snapshot's events share one id, so resuming from it
   *   could skip the part not yet received.
   * - 400 and 401 are thrown (as Dev8ApiError): retrying cannot help.
   * - The signal ends it quietly; so does leaving the for-await loop.
   */
  async *watch(opts: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    const signal = opts.signal;
    const idleMs = opts.idleTimeoutMs ?? 45_000;
    const minBackoff = opts.minBackoffMs ?? 250;
    const maxBackoff = opts.maxBackoffMs ?? 30_000;

    // Where the next connection starts: Last-Event-ID when set, else resourceVersion (or the
    // snapshot when neither is).
    let lastEventId = "";
    let fromRv: number | undefined = opts.resourceVersion;
    let failures = 0;
    let mustRelist = false;

    const backoff = async (reason: unknown, retryAfterMs?: number): Promise<void> => {
      failures++;
      const exp = Math.min(maxBackoff, minBackoff * 2 ** Math.min(failures - 1, 30));
      const jittered = exp / 2 + Math.random() * (exp / 2);
      const delayMs = Math.max(jittered, retryAfterMs ?? 0);
      opts.onReconnect?.({ attempt: failures, delayMs, reason, lastEventId });
      await sleep(delayMs, signal);
    };

    while (!signal?.aborted) {
      if (mustRelist) {
        let list: ListAllResult;
        try {
          list = await this.listAll({}, { signal });
        } catch (err) {
          if (signal?.aborted) return;
          if (err instanceof Dev8ApiError && !err.retryable) throw err;
          await backoff(err, err instanceof Dev8ApiError ? err.retryAfterMs : undefined);
          continue;
        }
        mustRelist = false;
        lastEventId = "";
        fromRv = list.resourceVersion;
        yield { type: "RESYNC", resourceVersion: list.resourceVersion, items: list.items };
        continue;
      }

      const conn = new AbortController();
      const onAbort = (): void => conn.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      let idleTimer: ReturnType<typeof setTimeout> | undefined;
      const armIdle = (): void => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = undefined;
        if (idleMs > 0) {
          idleTimer = setTimeout(
            () => conn.abort(new Error(`no byte from the watch stream for ${idleMs} ms`)),
            idleMs,
          );
        }
      };
      const disarmIdle = (): void => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = undefined;
      };

      // A stream started without a position begins with the snapshot; until an event with
      // another id arrives, a drop cannot be resumed safely.
      const snapshot = lastEventId === "" && fromRv === undefined;
      let snapshotId: string | undefined;
      let snapshotDone = !snapshot;
      let delivered = false;
      let reason: unknown = new Error("the watch stream ended");
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream", "Cache-Control": "no-cache" };
        let query: Query | undefined;
        if (lastEventId !== "") headers["Last-Event-ID"] = lastEventId;
        else if (fromRv !== undefined) query = { resourceVersion: fromRv };
        armIdle();
        let res: Response;
        try {
          res = await this.fetchFn(this.url(WATCH_PATH, query), {
            method: "GET",
            headers: this.headers(headers, undefined),
            signal: conn.signal,
          });
        } catch (err) {
          if (signal?.aborted) return;
          disarmIdle();
          await backoff(err);
          continue;
        }
        if (res.status === 410) {
          await res.body?.cancel().catch(() => undefined);
          disarmIdle();
          mustRelist = true;
          continue;
        }
        if (!res.ok || !res.body) {
          disarmIdle();
          const err = await errorFromResponse(res, "GET", WATCH_PATH);
          if (!err.retryable && err.status !== 408) throw err;
          await backoff(err, err.retryAfterMs);
          continue;
        }

        // Connected: failures count again from here (a stream that ends at once still waits
        // minBackoffMs before the next attempt).
        failures = 0;
        const queue: SseEvent[] = [];
        const parser = new SseParser({ onEvent: (ev) => queue.push(ev) });
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            armIdle();
            const { done, value } = await reader.read();
            if (done) break;
            parser.push(decoder.decode(value, { stream: true }));
            disarmIdle();
            while (queue.length > 0) {
              const ev = queue.shift() as SseEvent;
              // The agent cut the stream (it fell behind, or its snapshot outlasted the
              // ring): list again, as after a 410.
              if (ev.event === "ERROR") mustRelist = true;
              const out = this.toWatchEvent(ev);
              if (snapshot && !snapshotDone) {
                if (snapshotId === undefined) snapshotId = ev.id;
                else if (ev.id !== snapshotId) snapshotDone = true;
              }
              lastEventId = ev.id;
              if (out) {
                delivered = true;
                yield out;
                if (signal?.aborted) return;
              }
            }
          }
        } catch (err) {
          if (signal?.aborted) return;
          if (err instanceof WatchProtocolError) throw err;
          reason = err;
        } finally {
          parser.end();
          reader.releaseLock();
        }
      } finally {
        disarmIdle();
        signal?.removeEventListener("abort", onAbort);
        conn.abort();
      }
      if (signal?.aborted) return;
      if (snapshot && !snapshotDone && lastEventId !== "") {
        // Dropped during (or right after) the snapshot: resuming from its shared id could
        // skip objects not yet received. List again instead.
        mustRelist = true;
      }
      if (!delivered) {
        await backoff(reason);
      } else {
        opts.onReconnect?.({ attempt: 0, delayMs: 0, reason, lastEventId });
      }
    }
  }

  private toWatchEvent(ev: SseEvent): WatchEvent | undefined {
    if (ev.event !== "ADDED" && ev.event !== "MODIFIED" && ev.event !== "DELETED") {
      return undefined; // a later agent's event type: skipped, its id still counts
    }
    const rv = Number(ev.id);
    let object: Environment;
    try {
      object = JSON.parse(ev.data) as Environment;
    } catch {
      // Resuming would fetch the same event again: this is not a dropped connection.
      throw new WatchProtocolError(`the ${ev.event} event ${ev.id} carries data that is not JSON`);
    }
    return { type: ev.event, resourceVersion: Number.isSafeInteger(rv) ? rv : NaN, object };
  }

  // ---- plumbing -----------------------------------------------------------------------

  private envPath(id: string): string {
    return `/api/v1/environments/${encodeURIComponent(id)}`;
  }

  private url(path: string, query?: Query): string {
    let u = this.base + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== "") q.append(k, String(v));
      }
      const s = q.toString();
      if (s) u += `?${s}`;
    }
    return u;
  }

  private headers(extra: Record<string, string>, requestId: string | undefined): Record<string, string> {
    return {
      ...this.extraHeaders,
      Authorization: `Bearer ${this.apiKey}`,
      "X-Request-Id": requestId ?? this.makeRequestId(),
      ...extra,
    };
  }

  private async call<T>(c: Call): Promise<{ res: Response; json: T }> {
    const headers: Record<string, string> = { Accept: "application/json", ...(c.headers ?? {}) };
    let body: string | undefined;
    if (c.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(c.body);
    }
    const signals: AbortSignal[] = [];
    if (c.opts?.signal) signals.push(c.opts.signal);
    if (this.timeoutMs > 0) signals.push(AbortSignal.timeout(this.timeoutMs));
    const init: RequestInit = { method: c.method, headers: this.headers(headers, c.opts?.requestId) };
    if (body !== undefined) init.body = body;
    if (signals.length === 1) init.signal = signals[0] as AbortSignal;
    else if (signals.length > 1) init.signal = AbortSignal.any(signals);
    const res = await this.fetchFn(this.url(c.path, c.query), init);
    if (!res.ok) throw await errorFromResponse(res, c.method, c.path);
    if (res.status === 204) return { res, json: undefined as T };
    const text = await res.text();
    try {
      return { res, json: JSON.parse(text) as T };
    } catch {
      throw new Dev8ApiError({
        status: res.status,
        code: "UnexpectedResponse",
        message: `HTTP ${res.status} answered a body that is not JSON`,
        requestId: res.headers.get("x-request-id") ?? undefined,
        method: c.method,
        path: c.path,
      });
    }
  }
}
