/**
 * Mappers between a Prisma `Environment` row of the Next.js backend and the agent's spec and
 * status. The row's columns are those of the platform's architecture note (its INSERT lists
 * id, user_id, name, status, cloud_provider, cloud_region, aci_container_group_id,
 * aci_public_ip, azure_file_share_name, vs_code_url, cpu_cores, memory_gb, storage_gb,
 * base_image, created_at, updated_at, last_accessed_at; Prisma names them in camelCase).
 */
import type {
  Environment,
  EnvironmentPhase,
  EnvironmentSyncItem,
  EnvVars,
  StoragePolicy,
  UpdatePolicy,
} from "./types.js";

/** Prisma's Decimal (or anything with toNumber), for a column declared Decimal. */
export interface DecimalLike {
  toNumber(): number;
}

/**
 * The columns of a Prisma `Environment` row that the mappers read or write. A full Prisma row
 * (with more columns) fits: the mappers take this structural type.
 */
export interface EnvironmentRow {
  id: string;
  userId: string;
  name: string;
  status: EnvironmentPhase | string;
  cloudProvider?: string | null;
  cloudRegion: string;
  baseImage?: string | null;
  cpuCores?: number | DecimalLike | null;
  memoryGB?: number | DecimalLike | null;
  storageGB?: number | DecimalLike | null;
  aciContainerGroupId?: string | null;
  aciPublicIp?: string | null;
  azureFileShareName?: string | null;
  vsCodeUrl?: string | null;
  createdAt?: Date | string | null;
  updatedAt?: Date | string | null;
  lastAccessedAt?: Date | string | null;
}

/** Spec fields that have no Prisma column; given to specFromRow when the backend has them. */
export interface SpecExtras {
  env?: EnvVars;
  autoStopMinutes?: number;
  storagePolicy?: StoragePolicy;
  updatePolicy?: UpdatePolicy;
}

function num(v: number | DecimalLike | null | undefined): number | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === "number" ? v : v.toNumber();
}

/**
 * The spec of a row, with its id: a body for PUT /api/v1/environments/{id} or an item of a
 * full sync.
 *
 * - `powerState` is never sent: it is sticky on the agent (an omitted one keeps the current
 *   state, a new environment starts Running), and a row has no such column; start and stop go
 *   through client.start / client.stop. Sending the row's `status` as a power state would undo
 *   a stop the agent is carrying out.
 * - `secretEnv` is sent only when `secrets` is given: omitted, the agent keeps the stored
 *   secrets; `{}` clears them.
 * - Columns that are null are left out, so the agent's defaults apply (baseImage "node",
 *   cpuCores 2, memoryGB 4, storageGB 20).
 * - `updatePolicy` is not sticky on the agent: sent only when extras name it, and then it must
 *   be sent on every PUT (omitted, the agent applies "Immediate").
 * - `cloudProvider` is passed through when the row has one: the agent accepts only "AZURE"
 *   and refuses another value (400 naming the field) rather than provisioning it on Azure.
 */
export function specFromRow(
  row: EnvironmentRow,
  secrets?: EnvVars,
  extras?: SpecExtras,
): EnvironmentSyncItem {
  const spec: EnvironmentSyncItem = {
    id: row.id,
    userId: row.userId,
    name: row.name,
    cloudRegion: row.cloudRegion,
  };
  if (row.cloudProvider !== null && row.cloudProvider !== undefined) {
    spec.cloudProvider = row.cloudProvider as "AZURE"; // another value: the agent refuses it
  }
  if (row.baseImage !== null && row.baseImage !== undefined) spec.baseImage = row.baseImage;
  const cpu = num(row.cpuCores);
  if (cpu !== undefined) spec.cpuCores = cpu;
  const mem = num(row.memoryGB);
  if (mem !== undefined) spec.memoryGB = mem;
  const storage = num(row.storageGB);
  if (storage !== undefined) spec.storageGB = storage;
  if (secrets !== undefined) spec.secretEnv = { ...secrets };
  if (extras?.env !== undefined) spec.env = { ...extras.env };
  if (extras?.autoStopMinutes !== undefined) spec.autoStopMinutes = extras.autoStopMinutes;
  if (extras?.storagePolicy !== undefined) spec.storagePolicy = extras.storagePolicy;
  if (extras?.updatePolicy !== undefined) spec.updatePolicy = extras.updatePolicy;
  return spec;
}

/** The columns rowPatchFromStatus writes. */
export interface EnvironmentRowPatch {
  status: EnvironmentPhase;
  aciContainerGroupId: string | null;
  aciPublicIp: string | null;
  azureFileShareName: string | null;
  vsCodeUrl: string | null;
}

/**
 * The Prisma columns to update from an Environment the agent answered (a GET, a list item, a
 * watch event or a webhook body): `status` is the phase (the same EnvironmentStatus values)
 * and the resource fields carry the column names. A null is written as null: a stopped group
 * has no public IP, and a stale one must not stay in the row. Columns the backend owns (name,
 * sizes, lastAccessedAt, updatedAt) are not touched; Prisma's @updatedAt sets updatedAt.
 */
export function rowPatchFromStatus(env: Environment): EnvironmentRowPatch {
  const s = env.status;
  return {
    status: s.phase,
    aciContainerGroupId: s.aciContainerGroupId,
    aciPublicIp: s.aciPublicIp,
    azureFileShareName: s.azureFileShareName,
    vsCodeUrl: s.vsCodeUrl,
  };
}

/**
 * Whether the row already holds what rowPatchFromStatus(env) would write, so that a watch
 * consumer can skip a database write for the many events that change nothing it stores.
 */
export function rowMatchesStatus(row: Partial<EnvironmentRow>, env: Environment): boolean {
  const p = rowPatchFromStatus(env);
  return (
    row.status === p.status &&
    (row.aciContainerGroupId ?? null) === p.aciContainerGroupId &&
    (row.aciPublicIp ?? null) === p.aciPublicIp &&
    (row.azureFileShareName ?? null) === p.azureFileShareName &&
    (row.vsCodeUrl ?? null) === p.vsCodeUrl
  );
}
