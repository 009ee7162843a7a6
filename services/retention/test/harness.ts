import { createDataSource } from '@mcp/db';
import { retention } from '@mcp/proto';
import type * as grpc from '@grpc/grpc-js';
import { startServiceHarness, type ServiceHarness } from '@mcp/runtime/dist/testing';
import type { Client } from 'pg';
import { createRetentionService, retentionEntities } from '../src';

export { expectGrpcError } from '@mcp/runtime/dist/testing';

const REQUEST_TYPES = {
  runRetention: retention.RunRetentionRequest,
  listRuns: retention.ListRunsRequest,
  getRun: retention.GetRunRequest,
  listPolicies: retention.ListPoliciesRequest,
  upsertPolicy: retention.UpsertPolicyRequest,
  placeLegalHold: retention.PlaceLegalHoldRequest,
  releaseLegalHold: retention.ReleaseLegalHoldRequest,
  listLegalHolds: retention.ListLegalHoldsRequest,
} as const;
type Method = keyof typeof REQUEST_TYPES;
interface Requests {
  runRetention: retention.RunRetentionRequest;
  listRuns: retention.ListRunsRequest;
  getRun: retention.GetRunRequest;
  listPolicies: retention.ListPoliciesRequest;
  upsertPolicy: retention.UpsertPolicyRequest;
  placeLegalHold: retention.PlaceLegalHoldRequest;
  releaseLegalHold: retention.ReleaseLegalHoldRequest;
  listLegalHolds: retention.ListLegalHoldsRequest;
}
type DeepPartial<T> = T extends Date | string | number | boolean | undefined
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : { [K in keyof T]?: DeepPartial<T[K]> };
type RequestOf<M extends Method> = DeepPartial<Requests[M]>;
interface Responses {
  runRetention: retention.RunRetentionResponse;
  listRuns: retention.ListRunsResponse;
  getRun: retention.GetRunResponse;
  listPolicies: retention.ListPoliciesResponse;
  upsertPolicy: retention.UpsertPolicyResponse;
  placeLegalHold: retention.PlaceLegalHoldResponse;
  releaseLegalHold: retention.ReleaseLegalHoldResponse;
  listLegalHolds: retention.ListLegalHoldsResponse;
}

export interface Harness extends ServiceHarness<retention.RetentionServiceClient> {
  /** A unary call built with fromPartial, carrying a bearer key (default: the admin's). */
  call<M extends Method>(method: M, request: RequestOf<M>, options?: Partial<grpc.CallOptions> & { token?: string }): Promise<Responses[M]>;
}

export async function startHarness(options: { batchSize?: number } = {}): Promise<Harness> {
  const h = await startServiceHarness({
    serviceName: 'retention',
    createDataSource: (url) => createDataSource({ url, entities: retentionEntities, poolSize: 6 }),
    createServices: (deps) => [createRetentionService({ ...deps, batchSize: options.batchSize })],
    clientConstructor: retention.RetentionServiceClient,
  });
  return {
    ...h,
    call: (method, request, callOptions) =>
      h.unary(method, (REQUEST_TYPES[method].fromPartial as (r: unknown) => unknown)(request), { deadline: Date.now() + 60_000, ...callOptions }),
  };
}

export interface Fixture {
  userId: string;
  agentId: string;
  serverId: string;
  connectionId: string;
}

/** A user, agent, MCP server and connection (the rows log rows reference). */
export async function createFixture(pg: Client, name: string): Promise<Fixture> {
  const { rows } = await pg.query(
    `WITH u AS (INSERT INTO users (username, email) VALUES ($1, $1 || '@example.test') RETURNING id),
          a AS (INSERT INTO agents (user_id, name) SELECT id, $1 || '-agent' FROM u RETURNING id, user_id),
          s AS (INSERT INTO mcp_servers (name, owner_id) SELECT $1 || '-server', user_id FROM a RETURNING id),
          c AS (INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT a.id, s.id FROM a, s RETURNING id)
     SELECT u.id AS "userId", a.id AS "agentId", s.id AS "serverId", c.id AS "connectionId" FROM u, a, s, c`,
    [name],
  );
  return rows[0];
}

export const DAY_MS = 86_400_000;

/** `count` connection log rows spread evenly over [from, to). */
export async function insertConnectionLogs(pg: Client, connectionId: string, from: Date, to: Date, count: number): Promise<void> {
  await pg.query(
    `INSERT INTO agent_mcp_connection_logs (connection_id, event_type, event_details, timestamp)
     SELECT $1, 'usage_recorded', 'row ' || i, $2::timestamptz + (($3::timestamptz - $2::timestamptz) * i / $4)
       FROM generate_series(0, $4 - 1) AS i`,
    [connectionId, from, to, count],
  );
}

export async function insertStatusLogs(pg: Client, serverId: string, from: Date, to: Date, count: number): Promise<void> {
  await pg.query(
    `INSERT INTO mcp_server_status_logs (server_id, source, details, timestamp)
     SELECT $1, 'heartbeat', 'row ' || i, $2::timestamptz + (($3::timestamptz - $2::timestamptz) * i / $4)
       FROM generate_series(0, $4 - 1) AS i`,
    [serverId, from, to, count],
  );
}

export async function count(pg: Client, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await pg.query(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0].n;
}

export function daysAgo(days: number, from = Date.now()): Date {
  return new Date(from - days * DAY_MS);
}

/** Start of the UTC day `days` days ago. */
export function utcDay(days: number): Date {
  const d = daysAgo(days);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}

export function totals(run: retention.Run, table: string): retention.TableResult {
  const t = run.tables.find((x) => x.table === table);
  if (!t) throw new Error(`run ${run.id} has no result for ${table}`);
  return t;
}
