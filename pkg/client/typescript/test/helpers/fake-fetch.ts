/** A fetch that records requests and answers from a script, for tests without a server. */
export interface Recorded {
  method: string;
  url: URL;
  headers: Headers;
  body: string | undefined;
}

export type Responder = (req: Recorded, signal: AbortSignal | undefined) => Response | Promise<Response>;

export function fakeFetch(responder: Responder): { fetch: typeof globalThis.fetch; calls: Recorded[] } {
  const calls: Recorded[] = [];
  const fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const rec: Recorded = {
      method: init?.method ?? "GET",
      url: new URL(String(input)),
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? init.body : undefined,
    };
    calls.push(rec);
    return responder(rec, init?.signal ?? undefined);
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

export function apiError(
  status: number,
  code: string,
  message: string,
  field?: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, { error: field === undefined ? { code, message } : { code, message, field } }, headers);
}
