import { createDataSource } from '@mcp/db';
import { connectionlog } from '@mcp/proto';
import type * as grpc from '@grpc/grpc-js';
import { startServiceHarness, type ServiceHarness } from '@mcp/runtime/dist/testing';
import { connectionLogEntities, createConnectionLogService, type IngestLimits } from '../src';

export { expectGrpcError } from '@mcp/runtime/dist/testing';

type ServiceClient = connectionlog.ConnectionLogServiceClient;

const REQUEST_TYPES = {
  recordEvents: connectionlog.RecordEventsRequest,
  listEvents: connectionlog.ListEventsRequest,
  getAgentConnectionLogs: connectionlog.GetAgentConnectionLogsRequest,
  getRecentActivity: connectionlog.GetRecentActivityRequest,
  upsertAgent: connectionlog.UpsertAgentRequest,
  upsertConnection: connectionlog.UpsertConnectionRequest,
} as const;
type UnaryMethod = keyof typeof REQUEST_TYPES;

interface ServiceRequests {
  recordEvents: connectionlog.RecordEventsRequest;
  listEvents: connectionlog.ListEventsRequest;
  getAgentConnectionLogs: connectionlog.GetAgentConnectionLogsRequest;
  getRecentActivity: connectionlog.GetRecentActivityRequest;
  upsertAgent: connectionlog.UpsertAgentRequest;
  upsertConnection: connectionlog.UpsertConnectionRequest;
}
interface ServiceResponses {
  recordEvents: connectionlog.RecordEventsResponse;
  listEvents: connectionlog.ListEventsResponse;
  getAgentConnectionLogs: connectionlog.GetAgentConnectionLogsResponse;
  getRecentActivity: connectionlog.GetRecentActivityResponse;
  upsertAgent: connectionlog.UpsertAgentResponse;
  upsertConnection: connectionlog.UpsertConnectionResponse;
}
type DeepPartial<T> = T extends Date | string | number | boolean | undefined
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : { [K in keyof T]?: DeepPartial<T[K]> };
export type RequestOf<M extends UnaryMethod> = DeepPartial<ServiceRequests[M]>;

export interface Harness extends ServiceHarness<ServiceClient> {
  /** A unary call built with fromPartial, carrying a bearer key (default: the admin's). */
  call<M extends UnaryMethod>(
    method: M,
    request: RequestOf<M>,
    options?: Partial<grpc.CallOptions> & { token?: string },
  ): Promise<ServiceResponses[M]>;
}

/** The shared service harness (@mcp/runtime/dist/testing), with `call` typed per RPC of this service. */
export async function startHarness(
  ingestLimits?: Partial<IngestLimits>,
  env?: Record<string, string>,
  channelCredentials?: grpc.ChannelCredentials,
): Promise<Harness> {
  const h = await startServiceHarness({
    env,
    channelCredentials,
    serviceName: 'connection-log',
    createDataSource: (url) => createDataSource({ url, entities: connectionLogEntities, poolSize: 8 }),
    createServices: (deps) => [createConnectionLogService({ ...deps, ingestLimits })],
    clientConstructor: connectionlog.ConnectionLogServiceClient,
  });
  return {
    ...h,
    call: (method, request, options) =>
      h.unary(method, (REQUEST_TYPES[method].fromPartial as (r: unknown) => unknown)(request), options),
  };
}

export interface Fixture {
  userId: string;
  agentId: string;
  serverId: string;
  connectionId: string;
}

/** A user (SQL: users are managed by the security layer), then agent and connection through the RPCs. */
export async function createFixture(h: Harness, name: string): Promise<Fixture> {
  const {
    rows: [user],
  } = await h.pg.query('INSERT INTO users (username, email) VALUES ($1, $2) RETURNING id', [name, `${name}@example.test`]);
  const { agent } = await h.call('upsertAgent', { agent: { userId: user.id, name: `${name}-agent`, isActive: true } });
  const serverId = crypto.randomUUID();
  const { connection } = await h.call('upsertConnection', {
    connection: { agentId: agent!.id, mcpServerInstanceId: serverId, isActive: true, status: 'active' },
    serverName: `${name}-server`,
  });
  return { userId: user.id, agentId: agent!.id, serverId, connectionId: connection!.id };
}

export async function countLogs(h: Harness): Promise<number> {
  const { rows } = await h.pg.query('SELECT count(*)::int AS n FROM agent_mcp_connection_logs');
  return rows[0].n;
}

