import { createDataSource } from '@mcp/db';
import { statussync } from '@mcp/proto';
import type * as grpc from '@grpc/grpc-js';
import { startServiceHarness, type ServiceHarness } from '@mcp/runtime/dist/testing';
import { createStatusSyncService, statusSyncEntities, type StatusSyncOptions, type StatusSyncService } from '../src';

export { expectGrpcError } from '@mcp/runtime/dist/testing';

type ServiceClient = statussync.StatusSyncServiceClient;

const REQUEST_TYPES = {
  upsertEnvironment: statussync.UpsertEnvironmentRequest,
  upsertServer: statussync.UpsertServerRequest,
  reportStatus: statussync.ReportStatusRequest,
  reportStatusBatch: statussync.ReportStatusBatchRequest,
  heartbeat: statussync.HeartbeatRequest,
  heartbeatBatch: statussync.HeartbeatBatchRequest,
  getServerStatusHistory: statussync.GetServerStatusHistoryRequest,
  listServerHealthHistory: statussync.ListServerHealthHistoryRequest,
  getServerDashboard: statussync.GetServerDashboardRequest,
} as const;
type UnaryMethod = keyof typeof REQUEST_TYPES;
type RequestMessage<M extends UnaryMethod> = ReturnType<(typeof REQUEST_TYPES)[M]['fromPartial']>;

type DeepPartial<T> = T extends Date | string | number | boolean | undefined
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : { [K in keyof T]?: DeepPartial<T[K]> };

interface Responses {
  upsertEnvironment: statussync.UpsertEnvironmentResponse;
  upsertServer: statussync.UpsertServerResponse;
  reportStatus: statussync.ReportStatusResponse;
  reportStatusBatch: statussync.ReportStatusBatchResponse;
  heartbeat: statussync.HeartbeatResponse;
  heartbeatBatch: statussync.HeartbeatBatchResponse;
  getServerStatusHistory: statussync.GetServerStatusHistoryResponse;
  listServerHealthHistory: statussync.ListServerHealthHistoryResponse;
  getServerDashboard: statussync.GetServerDashboardResponse;
}

export interface Harness extends ServiceHarness<ServiceClient> {
  /** A unary call built with fromPartial, carrying a bearer key (default: the admin's). */
  call<M extends UnaryMethod>(
    method: M,
    request: DeepPartial<RequestMessage<M>>,
    options?: Partial<grpc.CallOptions> & { token?: string },
  ): Promise<Responses[M]>;
  /** The service unit running in the harness (its sweeper, for driving sweeps directly). */
  unit: StatusSyncService;
}

/** Test defaults: the background sweeper is off unless a test turns it on. */
export async function startHarness(options: StatusSyncOptions = {}): Promise<Harness> {
  let unit: StatusSyncService | undefined;
  const h = await startServiceHarness({
    serviceName: 'status-sync',
    createDataSource: (url) => createDataSource({ url, entities: statusSyncEntities, poolSize: 8 }),
    createServices: (deps) => [(unit = createStatusSyncService({ ...deps, sweeper: { intervalMs: 0 }, ...options }))],
    clientConstructor: statussync.StatusSyncServiceClient,
  });
  return {
    ...h,
    unit: unit!,
    call: (method, request, options) => h.unary(method, (REQUEST_TYPES[method].fromPartial as (r: unknown) => unknown)(request), options),
  };
}

/** A user (SQL: users are managed by the security layer) owning a server registered through the RPC. */
export async function createServer(
  h: Harness,
  name: string,
  server: DeepPartial<statussync.Server> = {},
): Promise<{ ownerId: string; serverId: string }> {
  const {
    rows: [user],
  } = await h.pg.query('INSERT INTO users (username, email) VALUES ($1, $2) RETURNING id', [name, `${name}@example.test`]);
  const res = await h.call('upsertServer', { server: { name: `${name}-server`, ownerId: user.id, isEnabled: true, ...server } });
  return { ownerId: user.id, serverId: res.server!.id };
}

export async function countLogs(h: Harness, serverId?: string): Promise<number> {
  const { rows } = await h.pg.query(
    'SELECT count(*)::int AS n FROM mcp_server_status_logs WHERE $1::uuid IS NULL OR server_id = $1',
    [serverId ?? null],
  );
  return rows[0].n;
}

export function status(state: string, health: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ state, health, ...extra });
}
