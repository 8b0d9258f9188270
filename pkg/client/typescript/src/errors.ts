import type { ApiError, ErrorCode } from "./types.js";

/**
 * An error answer of the agent: `{"error":{"code","message","field"}}` with its HTTP status.
 * A body that is not the agent's (a proxy's 502 page, say) gets code "UnexpectedResponse".
 * Network failures and timeouts are not wrapped: they are what fetch throws (a TypeError
 * "fetch failed" with a cause, or an AbortError / TimeoutError DOMException).
 */
export class Dev8ApiError extends Error {
  override readonly name = "Dev8ApiError";
  /** The HTTP status: 400, 401, 404, 409, 410, 413, 429, 503, ... */
  readonly status: number;
  /** The agent's code (InvalidSpec, NotFound, Conflict, Gone, ...), or "UnexpectedResponse". */
  readonly code: ErrorCode | "UnexpectedResponse";
  /** The JSON path of the offending field ("cpuCores", "items[2].id"), when the agent names one. */
  readonly field: string | undefined;
  /** The answer's X-Request-Id (the one the client sent, echoed), for the agent's logs. */
  readonly requestId: string | undefined;
  /**
   * Retry-After of the answer in milliseconds, when it has one: a 409 while the reaper deletes
   * an orphan of this id, a 429 past 1000 watch clients, a 503.
   */
  readonly retryAfterMs: number | undefined;
  /** The method and path of the request, for messages and logs. */
  readonly method: string;
  readonly path: string;

  constructor(init: {
    status: number;
    code: ErrorCode | "UnexpectedResponse";
    message: string;
    field?: string | undefined;
    requestId?: string | undefined;
    retryAfterMs?: number | undefined;
    method: string;
    path: string;
  }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.field = init.field;
    this.requestId = init.requestId;
    this.retryAfterMs = init.retryAfterMs;
    this.method = init.method;
    this.path = init.path;
  }

  /** 404 NotFound: the agent does not know this id. */
  get isNotFound(): boolean {
    return this.status === 404;
  }

  /** 409 Conflict: a stale If-Match, an existing id on create, a deletion under way. */
  get isConflict(): boolean {
    return this.status === 409;
  }

  /** Whether the same request may succeed later unchanged (409 with Retry-After, 429, 5xx). */
  get retryable(): boolean {
    return (
      this.status === 429 ||
      this.status >= 500 ||
      (this.status === 409 && this.retryAfterMs !== undefined)
    );
  }

  override toString(): string {
    const where = this.field ? ` (field ${this.field})` : "";
    return `${this.name}: ${this.method} ${this.path}: ${this.status} ${this.code}: ${this.message}${where}`;
  }
}

/**
 * Retry-After as milliseconds: delta-seconds ("5") or an HTTP date; undefined when absent or
 * unreadable. A date in the past is 0.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

function isApiErrorBody(body: unknown): body is ApiError {
  if (typeof body !== "object" || body === null) return false;
  const e = (body as { error?: unknown }).error;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "string" &&
    typeof (e as { message?: unknown }).message === "string"
  );
}

/** Builds the error of a non-2xx answer from its body (read here). */
export async function errorFromResponse(
  res: Response,
  method: string,
  path: string,
): Promise<Dev8ApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body could not be read (connection cut): the status still says what happened.
  }
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const common = {
    status: res.status,
    requestId: res.headers.get("x-request-id") ?? undefined,
    retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
    method,
    path,
  };
  if (isApiErrorBody(body)) {
    return new Dev8ApiError({
      ...common,
      code: body.error.code,
      message: body.error.message,
      field: typeof body.error.field === "string" ? body.error.field : undefined,
    });
  }
  const snippet = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return new Dev8ApiError({
    ...common,
    code: "UnexpectedResponse",
    message: `HTTP ${res.status} ${res.statusText} without the agent's error body${snippet ? `: ${snippet}` : ""}`,
  });
}
