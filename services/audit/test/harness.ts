import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { createDataSource } from '@mcp/db';
import { audit } from '@mcp/proto';
import { startServiceHarness, type ServiceHarness } from '@mcp/runtime/dist/testing';
import { auditEntities, createAuditService, type IngestLimits } from '../src';

export { expectGrpcError } from '@mcp/runtime/dist/testing';

type ServiceClient = audit.AuditServiceClient;

const REQUEST_TYPES = {
  recordAuditEvents: audit.RecordAuditEventsRequest,
  searchAuditLogs: audit.SearchAuditLogsRequest,
  summarizeActivity: audit.SummarizeActivityRequest,
  recordSecurityEvents: audit.RecordSecurityEventsRequest,
  listSecurityEvents: audit.ListSecurityEventsRequest,
  assignIncident: audit.AssignIncidentRequest,
  addIncidentNote: audit.AddIncidentNoteRequest,
  resolveIncident: audit.ResolveIncidentRequest,
  detectFailedLoginBursts: audit.DetectFailedLoginBurstsRequest,
  verifyIntegrity: audit.VerifyIntegrityRequest,
  createCheckpoint: audit.CreateCheckpointRequest,
  eraseSubject: audit.EraseSubjectRequest,
} as const;
type UnaryMethod = keyof typeof REQUEST_TYPES;
type RequestMessage<M extends UnaryMethod> = ReturnType<(typeof REQUEST_TYPES)[M]['create']>;
/** The response type, read off the callback of the client method's (metadata, options, callback) overload. */
type ResponseOf<M extends UnaryMethod> = Parameters<Extract<Parameters<ServiceClient[M]>[3], (...args: never[]) => void>>[1];

export type DeepPartial<T> = T extends Date | string | number | boolean | undefined | Buffer
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : { [K in keyof T]?: DeepPartial<T[K]> };
export type RequestOf<M extends UnaryMethod> = DeepPartial<RequestMessage<M>>;

/** A checkpoint key for tests: the service never stores it in the database. */
export const TEST_CHECKPOINT_KEY = Buffer.from('test-checkpoint-key-0123456789abcdef-0123456789');

export interface Harness extends ServiceHarness<ServiceClient> {
  /** A unary call built with fromPartial, carrying a bearer key (default: the admin's). */
  call<M extends UnaryMethod>(method: M, request: RequestOf<M>, options?: Partial<grpc.CallOptions> & { token?: string }): Promise<NonNullable<ResponseOf<M>>>;
  /** The directory holding the append-only checkpoint file. */
  checkpointDir: string;
}

export async function startHarness(options: { ingestLimits?: Partial<IngestLimits>; checkpointKey?: Buffer | null } = {}): Promise<Harness> {
  const checkpointDir = fs.mkdtempSync(path.join(os.tmpdir(), 'audit-checkpoints-'));
  const key = options.checkpointKey === null ? undefined : (options.checkpointKey ?? TEST_CHECKPOINT_KEY);
  const h = await startServiceHarness({
    serviceName: 'audit',
    createDataSource: (url) => createDataSource({ url, entities: auditEntities, poolSize: 12 }),
    createServices: (deps) => [
      createAuditService({ ...deps, ingestLimits: options.ingestLimits, checkpoint: { key, directory: checkpointDir, intervalMs: 0 } }),
    ],
    clientConstructor: audit.AuditServiceClient,
  });
  return {
    ...h,
    checkpointDir,
    call: (method, request, callOptions) =>
      h.unary(method, (REQUEST_TYPES[method].fromPartial as (r: unknown) => unknown)(request), callOptions),
    close: async () => {
      await h.close();
      fs.rmSync(checkpointDir, { recursive: true, force: true });
    },
  };
}

export async function countAuditRows(h: Harness): Promise<number> {
  const { rows } = await h.pg.query('SELECT count(*)::int AS n FROM audit_logs');
  return rows[0].n;
}

/** Reads a server stream to its end. */
export function collect<T>(call: grpc.ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    call.on('data', (m: T) => out.push(m));
    call.on('end', () => resolve(out));
    call.on('error', reject);
  });
}
