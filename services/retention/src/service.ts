import { retention, SERVICE_PROTO_FILES } from '@mcp/proto';
import { monitoringReport } from '@mcp/db';
import { createCallHandlers, platformMetrics, type ServiceDeps, type ServiceUnit } from '@mcp/runtime';
import { PartitionCatalog } from './catalog';
import { Executor } from './executor';
import { RetentionHandlers } from './handlers';
import { LegalHolds } from './holds';
import { Planner } from './planner';
import { RetentionRepository } from './repository';
import { RetentionRuns } from './runs';

export const FULL_NAME = 'mcp.retention.v1.RetentionService';
export const DEFAULT_PORT = 50054;
/** Rows per transaction when trimming or expiring row by row: short locks, bounded WAL per commit. */
export const DEFAULT_BATCH_SIZE = 5_000;

export interface RetentionServiceOptions extends Pick<ServiceDeps, 'dataSource' | 'guard' | 'logger' | 'redactor'> {
  batchSize?: number;
}

export interface RetentionService extends ServiceUnit {
  handlers: RetentionHandlers;
}

/** Wires repositories -> domain -> handlers, and the handlers into a grpc-js service. */
export function createRetentionService(options: RetentionServiceOptions): RetentionService {
  const { dataSource, redactor } = options;
  const repository = new RetentionRepository();
  const catalog = new PartitionCatalog();
  const runs = new RetentionRuns({
    dataSource,
    repository,
    redactor,
    planner: new Planner(catalog, repository),
    executor: new Executor(catalog, repository, options.batchSize ?? DEFAULT_BATCH_SIZE),
  });
  const handlers = new RetentionHandlers({ dataSource, repository, runs, holds: new LegalHolds(dataSource, repository, redactor), redactor });
  const call = createCallHandlers({ logger: options.logger, guard: options.guard });
  const implementation: retention.RetentionServiceServer = {
    runRetention: call.unary('retention:run', (req: retention.RunRetentionRequest, ctx) => handlers.runRetention(req, ctx)),
    listRuns: call.unary('retention:read', (req: retention.ListRunsRequest, ctx) => handlers.listRuns(req, ctx)),
    getRun: call.unary('retention:read', (req: retention.GetRunRequest, ctx) => handlers.getRun(req, ctx)),
    listPolicies: call.unary('retention:read', (req: retention.ListPoliciesRequest, ctx) => handlers.listPolicies(req, ctx)),
    upsertPolicy: call.unary('retention:manage_policies', (req: retention.UpsertPolicyRequest, ctx) => handlers.upsertPolicy(req, ctx)),
    placeLegalHold: call.unary('legal_hold:manage', (req: retention.PlaceLegalHoldRequest, ctx) => handlers.placeLegalHold(req, ctx)),
    releaseLegalHold: call.unary('legal_hold:manage', (req: retention.ReleaseLegalHoldRequest, ctx) => handlers.releaseLegalHold(req, ctx)),
    listLegalHolds: call.unary('retention:read', (req: retention.ListLegalHoldsRequest, ctx) => handlers.listLegalHolds(req, ctx)),
  };
  return {
    registration: {
      fullName: FULL_NAME,
      definition: retention.RetentionServiceService,
      implementation,
      protoFile: SERVICE_PROTO_FILES[FULL_NAME],
    },
    handlers,
    // Retention owns database upkeep, so it is the one service exporting seed 004's
    // monitoring figures as gauges (read at each metric export).
    start: async () => {
      platformMetrics.observeDatabase(() =>
        monitoringReport({ query: async (sql, params) => ({ rows: await dataSource.query(sql, params) }) }),
      );
    },
    close: async () => undefined,
  };
}
