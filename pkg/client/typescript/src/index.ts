export * from "./types.js";
/** The types openapi-typescript generates from pkg/api/openapi.yaml (`npm run gen`). */
export type * as OpenApi from "./generated.js";
export { Dev8ApiError, parseRetryAfter } from "./errors.js";
export {
  Dev8Client,
  WatchProtocolError,
  isValidEnvironmentId,
  type Dev8ClientOptions,
  type ListAllResult,
  type PutOptions,
  type PutResult,
  type RequestOptions,
  type WatchEvent,
  type WatchOptions,
} from "./client.js";
export { SseParser, type SseEvent, type SseParserCallbacks } from "./sse.js";
export {
  WEBHOOK_HEADERS,
  WebhookVerificationError,
  parseWebhook,
  verifyWebhook,
  webhookSignature,
  type WebhookDelivery,
} from "./webhook.js";
export {
  rowMatchesStatus,
  rowPatchFromStatus,
  specFromRow,
  type DecimalLike,
  type EnvironmentRow,
  type EnvironmentRowPatch,
  type SpecExtras,
} from "./prisma.js";
