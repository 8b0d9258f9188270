/**
 * The dev8-agent API's JSON, written by hand from the C sources (pkg/spec/spec.c for the spec,
 * pkg/store/store.c obj_json for the object, pkg/api/*.c for the routes, pkg/reaper and
 * pkg/reconcile for the status and orphans answers). `npm run gen` generates src/generated.ts
 * from pkg/api/openapi.yaml once it exists, and test/unit/openapi-compat.test.ts checks that
 * these types and the generated ones are assignable both ways.
 *
 * Times are RFC 3339 strings in UTC ("2026-11-27T12:00:00Z"); a time the agent does not know
 * is null, never absent.
 */

/** The Prisma `EnvironmentStatus` values; the agent's `status.phase` uses exactly these. */
export type EnvironmentPhase =
  | "CREATING"
  | "STARTING"
  | "RUNNING"
  | "STOPPING"
  | "STOPPED"
  | "ERROR"
  | "DELETING";

export const ENVIRONMENT_PHASES: readonly EnvironmentPhase[] = [
  "CREATING",
  "STARTING",
  "RUNNING",
  "STOPPING",
  "STOPPED",
  "ERROR",
  "DELETING",
];

export type PowerState = "Running" | "Stopped";
export type StoragePolicy = "Delete" | "Retain";
/**
 * Whether a change that recreates a running container group (image, size, env, secrets) is
 * applied at once or waits for the next stop/start (Synced False, reason `UpdatePending`);
 * `POST .../restart` applies a waiting one. Not sticky: an omitted one is "Immediate".
 */
export type UpdatePolicy = "Immediate" | "OnNextStart";

/** Environment variables: names `^[A-Za-z_][A-Za-z0-9_]*$`, string values. */
export type EnvVars = Record<string, string>;

/**
 * A spec as a client sends it (PUT /api/v1/environments/{id}, POST /api/v1/environments, an
 * item of a full sync). Unknown fields are refused (400 InvalidSpec naming the field). null
 * for an optional field means the same as leaving it out; Dev8Client leaves null fields out
 * before sending all the same, because agents built before that rule held for the sticky
 * fields took a null powerState as Running and a null secretEnv as "no secrets".
 *
 * Sticky fields: on an existing environment an omitted `powerState` keeps the current one and
 * an omitted `secretEnv` keeps the stored secrets (`{}` clears them). A new environment
 * defaults to Running without secrets.
 */
export interface EnvironmentSpecInput {
  /** Only in a full-sync item (required there) or a POST; in a PUT it must equal the path's. */
  id?: string;
  /** Accepted so that the Prisma column can be passed through; "AZURE" is the only value. */
  cloudProvider?: "AZURE" | null;
  /** 1..128 characters. */
  userId: string;
  /** 1..128 characters. */
  name: string;
  /** One of the configured regions; fixed once the environment exists. */
  cloudRegion: string;
  /** A key of the agent's `images` config; default "node". */
  baseImage?: string | null;
  /** 0.5..4, a multiple of 0.5; default 2. */
  cpuCores?: number | null;
  /** 0.5..16, a multiple of 0.5; default 4. */
  memoryGB?: number | null;
  /** Integer 1..limits.maxStorageGB (1024 by default); default 20. Never shrinks. */
  storageGB?: number | null;
  /** Sticky: omitted keeps the current one (a new environment starts Running). */
  powerState?: PowerState | null;
  /** Plain container environment variables; default {}. */
  env?: EnvVars | null;
  /** Sent to ACI as secure values, answered as "<redacted>". Sticky when omitted. */
  secretEnv?: EnvVars | null;
  /** 0 (off) or 5..10080; default 0. */
  autoStopMinutes?: number | null;
  /** What happens to the file share when the environment is deleted; default "Delete". */
  storagePolicy?: StoragePolicy | null;
  /** See {@link UpdatePolicy}; default "Immediate" (not sticky). */
  updatePolicy?: UpdatePolicy | null;
}

/** A full-sync item: a spec that names its id. */
export type EnvironmentSyncItem = EnvironmentSpecInput & { id: string };

/** The value the agent answers in place of every secret. */
export const REDACTED = "<redacted>";

/** The names of stored secrets, every value "<redacted>". */
export type RedactedMap = Record<string, typeof REDACTED>;

/** A spec as the agent answers it: defaults filled in, every secret value "<redacted>". */
export interface EnvironmentSpec {
  userId: string;
  name: string;
  cloudRegion: string;
  baseImage: string;
  cpuCores: number;
  memoryGB: number;
  storageGB: number;
  powerState: PowerState;
  env: EnvVars;
  /** Names of the stored secrets, every value "<redacted>". */
  secretEnv: RedactedMap;
  autoStopMinutes: number;
  storagePolicy: StoragePolicy;
  updatePolicy: UpdatePolicy;
}

export type ConditionStatus = "True" | "False" | "Unknown";

/** Reasons of the Ready condition (README "The API"). */
export type ReadyReason =
  | "Available"
  | "Creating"
  | "Starting"
  | "Restarting"
  | "Stopping"
  | "Stopped"
  | "Deleting"
  | "Failed"
  | "RemovedFromDesiredSet"
  // workspace health (README "States a user can see")
  | "IdeStarting"
  | "ProbeFailing"
  | "CrashLoop"
  | "ImagePullFailed";

/** Reasons of the Synced condition. */
export type SyncedReason =
  | "Pending"
  | "ReconcileSuccess"
  | "ReconcileError"
  | "Throttled"
  | "Transitioning"
  | "Blocked"
  | "AutoStopped"
  | "UpdatePending"
  | "AzureUnreachable";

export interface ReadyCondition {
  type: "Ready";
  status: ConditionStatus;
  reason: ReadyReason;
  message: string;
  lastTransitionTime: string | null;
}

export interface SyncedCondition {
  type: "Synced";
  status: ConditionStatus;
  reason: SyncedReason;
  message: string;
  lastTransitionTime: string | null;
}

/** While an auto-stop is less than controller.autoStopWarningMinutes away. */
export interface AutoStopPendingCondition {
  type: "AutoStopPending";
  status: "True";
  reason: "Idle";
  message: string;
  lastTransitionTime: string | null;
}

/** Ready then Synced, then AutoStopPending while an auto-stop is near. */
export type Condition = ReadyCondition | SyncedCondition | AutoStopPendingCondition;
export type ConditionType = Condition["type"];

/** Azure's error code and message of the last failed step. */
export interface LastError {
  code: string;
  message: string;
}

/** While a failed step is being retried (the phase stays ERROR until it succeeds). */
export interface RetryStatus {
  attempts: number;
  /** When the next attempt starts; null while an attempt is under way. */
  nextAttemptTime: string | null;
}

export interface EnvironmentStatus {
  phase: EnvironmentPhase;
  observedGeneration: number;
  conditions: Condition[];
  /** The resource fields carry the Prisma column names. */
  aciContainerGroupId: string | null;
  aciPublicIp: string | null;
  azureFileShareName: string | null;
  fqdn: string | null;
  vsCodeUrl: string | null;
  lastActivityTime: string | null;
  lastReconcileTime: string | null;
  /** When the agent last read the container group from Azure. */
  observedTime: string | null;
  lastError: LastError | null;
  retry: RetryStatus | null;
  /** Usage since the first observation (a snapshot: at transitions, at most an hour old). */
  usage?: EnvironmentUsage;
  /** Cost per hour at the current size and power state; absent without a price table. */
  estimatedCostPerHour?: number;
  /** When a running workspace will be auto-stopped if nothing happens. */
  autoStopTime?: string;
  /** The workspace container as last read from Azure's instance view. */
  containers?: ContainerStatus[];
}

/** status.containers[]: Azure's instance view of the workspace container. */
export interface ContainerStatus {
  name: string;
  /** Azure's current state: Waiting, Running, Terminated. */
  state: string;
  restartCount: number;
  lastExitCode: number | null;
  lastRestartTime: string | null;
}

/** One entry of GET /api/v1/environments/{id}/events (and of watch EVENT items). */
export interface EnvironmentEvent {
  time: string;
  type: "Normal" | "Warning";
  /** PhaseChanged, ArmRequest, ArmSucceeded, ArmFailed, Reaped, ... or Azure's event name. */
  reason: string;
  message: string;
  source: "agent" | "azure" | "reaper";
  count: number;
}

/** GET /api/v1/environments/{id}/events: the last 64 events, oldest first. */
export interface EnvironmentEvents {
  environmentId: string;
  items: EnvironmentEvent[];
}

/** status.usage: what the agent observed the environment use (see the agent's README). */
export interface EnvironmentUsage {
  runningSeconds: number;
  cpuCoreSeconds: number;
  memoryGBSeconds: number;
  storageGBHours: number;
  /** Absent (with currency) when the region has no prices. */
  estimatedCost?: number;
  currency?: string;
  since: string;
}

/** The object every read answers (GET, PUT, list items, watch events, webhook bodies). */
export interface Environment {
  id: string;
  /** Bumped only when the spec really changes; 0 for a tombstone. */
  generation: number;
  /** null for a tombstone: a DELETE of an id the agent did not know (e.g. after a restart). */
  spec: EnvironmentSpec | null;
  status: EnvironmentStatus;
  createdAt: string | null;
  updatedAt: string | null;
}

/** GET /api/v1/environments */
export interface EnvironmentList {
  items: Environment[];
  resourceVersion: number;
  /** The token of the next page, "" on the last page. */
  continue: string;
}

/** Query of GET /api/v1/environments. */
export interface ListParams {
  userId?: string;
  cloudRegion?: string;
  phase?: EnvironmentPhase;
  /** 1..1000, default 500. */
  limit?: number;
  /** The `continue` token of the previous page. */
  continue?: string;
}

/** PUT /api/v1/environments (full sync). */
export interface FullSyncResult {
  created: number;
  updated: number;
  unchanged: number;
  removed: number;
  resourceVersion: number;
}

export type OrphanKind = "containerGroup" | "fileShare";
export type OrphanState = "Eligible" | "Waiting" | "Deleting" | "Kept";

export interface Orphan {
  kind: OrphanKind;
  /** The resource's name, `dev8-{envId}`. */
  name: string;
  envId: string;
  region: string;
  firstSeen: string;
  /** The earliest time the reaper may delete it. */
  reapAfter: string;
  state: OrphanState;
  /** Why the reaper waits (e.g. no full sync yet), or null. */
  blockedBy: string | null;
}

/** GET /api/v1/orphans */
export interface Orphans {
  items: Orphan[];
}

/** One row of GET /api/v1/usage: one environment over one UTC hour or day (ResourceUsage). */
export interface UsageRow {
  environmentId: string;
  userId: string;
  periodStart: string;
  periodEnd: string;
  runningSeconds: number;
  cpuCoreSeconds: number;
  memoryGBSeconds: number;
  storageGBHours: number;
  estimatedCost?: number;
  currency?: string;
}

/** GET /api/v1/usage */
export interface UsageRows {
  items: UsageRow[];
}

/** Filters of GET /api/v1/usage: RFC 3339 UTC times, at most 35 days apart. */
export interface UsageParams {
  from?: string;
  to?: string;
  userId?: string;
  granularity?: "hour" | "day";
}

/** A share kept after its environment was deleted (storagePolicy Retain). */
export interface RetainedShare {
  environmentId: string;
  userId: string;
  region: string;
  share: string;
  sizeGB: number;
  /** When the reaper may delete it; null when kept forever. */
  keepUntil: string | null;
}

/** GET /api/v1/retained */
export interface RetainedShares {
  items: RetainedShare[];
}

/** One check of GET /api/v1/preflight. */
export interface PreflightCheck {
  /** "credentials", "provider <namespace>", "region <name>: <check>", "image <key>", ... */
  name: string;
  status: "pass" | "warn" | "fail";
  message: string;
  /** Empty when the check passed. */
  fix: string;
}

/** GET /api/v1/preflight: the subscription checked against what the agent needs. */
export interface PreflightReport {
  checks: PreflightCheck[];
  summary: { pass: number; warn: number; fail: number };
}

/** POST /api/v1/reaper/resume */
export interface ReaperResumeResult {
  resumed: boolean;
}

export interface RegionStatus {
  name: string;
  lastListTime: string | null;
  /** Present only when the last list failed. */
  lastListError?: string;
  /** 3 failed list rounds in a row. */
  stale: boolean;
  failedLists: number;
}

export interface ThrottleStatus {
  queued: number;
  inflight: number;
  throttleWaits: number;
  throttled429: number;
}

export type ReaperState = "Disabled" | "WaitingForFullSync" | "Suspended" | "DryRun" | "Active";

export interface ReaperStatus {
  state: ReaperState;
  enabled: boolean;
  dryRun: boolean;
  authoritative: boolean;
  suspended: boolean;
  /** Present only while suspended. */
  suspendedReason?: string;
  orphans: { containerGroup: number; fileShare: number };
  reaped: { containerGroup: number; fileShare: number };
  managedResources: number;
  lastCycleTime: string | null;
}

/**
 * GET /api/v1/status. The controller's parts (queue, regions, throttle, token, reaper) are
 * absent only while the agent is shutting down.
 */
export interface Status {
  version: string;
  controller: string;
  /** Whether a full sync made the desired set authoritative. */
  synced: boolean;
  ready: boolean;
  resourceVersion: number;
  environments: {
    total: number;
    byPhase: Record<EnvironmentPhase, number>;
  };
  watchClients: number;
  queueDepth?: number;
  queueDelayed?: number;
  reconcilesActive?: number;
  regions?: RegionStatus[];
  throttle?: ThrottleStatus;
  azureTokenObtained?: boolean;
  reaper?: ReaperStatus;
}

/** Every code of an error answer (pkg/api and pkg/http), by status. */
export type ErrorCode =
  // 400
  | "InvalidJson"
  | "InvalidSpec"
  | "InvalidId"
  | "InvalidQuery"
  | "InvalidArgument"
  | "BadRequest"
  | "PlainHTTPToTLSPort"
  | "Unauthorized" // 401
  | "NotFound" // 404
  | "MethodNotAllowed" // 405
  | "RequestTimeout" // 408
  // 409
  | "Conflict"
  | "NoContainerGroup"
  | "Gone" // 410
  | "LengthRequired" // 411
  // 413
  | "PayloadTooLarge"
  | "TooManyItems"
  | "UnsupportedMediaType" // 415
  // 429
  | "TooManyRequests"
  | "SyncInProgress"
  | "RequestHeaderFieldsTooLarge" // 431
  | "InternalError" // 500
  | "AzureError" // 502
  // 503
  | "NotReady"
  | "ServiceUnavailable"
  | "TooManyConnections"
  | "StateNotWritable"
  | "ShuttingDown";

/** The body of every error answer. */
export interface ApiError {
  error: {
    code: ErrorCode;
    message: string;
    /** The JSON path of the offending field ("cpuCores", "items[2].id"), when there is one. */
    field?: string;
  };
}

/** The event types of the watch stream and of webhook deliveries (X-Dev8-Event). */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";
