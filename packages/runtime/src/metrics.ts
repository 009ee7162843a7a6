import { metrics, type Attributes, type Counter, type Histogram } from '@opentelemetry/api';
import type { MonitoringReport } from '@mcp/db';

/**
 * The platform's metrics, exported over OTLP with the traces (see
 * docs/operations.md for what each one means). Instruments are created on
 * first use, after the telemetry preload registered the meter provider; with
 * no provider they are no-ops.
 */
class PlatformMetrics {
  private instruments: {
    rpcDuration: Histogram;
    rowsIngested: Counter;
    heartbeatTransitions: Counter;
    retentionRows: Counter;
    chainVerifications: Counter;
  } | undefined;

  private get i() {
    if (!this.instruments) {
      const meter = metrics.getMeter('mcp-platform');
      this.instruments = {
        rpcDuration: meter.createHistogram('rpc.server.duration', {
          unit: 'ms',
          description: 'Duration of each RPC, by method and gRPC status code',
        }),
        rowsIngested: meter.createCounter('mcp.rows.ingested', { description: 'Rows stored, by table' }),
        heartbeatTransitions: meter.createCounter('mcp.heartbeat.transitions', {
          description: 'Status changes recorded from heartbeats and the stale sweeper, by source and new health',
        }),
        retentionRows: meter.createCounter('mcp.retention.rows', {
          description: 'Rows removed or archived by retention, by table and action',
        }),
        chainVerifications: meter.createCounter('mcp.audit.chain.verifications', {
          description: 'Audit chain verifications, by result',
        }),
      };
    }
    return this.instruments;
  }

  rpc(method: string, code: string, durationMs: number): void {
    this.i.rpcDuration.record(durationMs, { 'rpc.method': method, 'rpc.grpc.status_code': code });
  }

  rowsIngested(table: string, rows: number): void {
    if (rows > 0) this.i.rowsIngested.add(rows, { table });
  }

  heartbeatTransition(attributes: { source: string; health: string }): void {
    this.i.heartbeatTransitions.add(1, attributes);
  }

  retentionRows(table: string, action: 'deleted' | 'archived' | 'dropped_partition_rows', rows: number): void {
    if (rows > 0) this.i.retentionRows.add(rows, { table, action });
  }

  chainVerification(result: string, attributes: Attributes = {}): void {
    this.i.chainVerifications.add(1, { result, ...attributes });
  }

  /**
   * Seed 004's database monitoring as gauges, read at each metric export. One
   * service per database registers it (retention, which owns upkeep).
   */
  observeDatabase(readReport: () => Promise<MonitoringReport>): void {
    const meter = metrics.getMeter('mcp-platform');
    const hitRatio = meter.createObservableGauge('mcp.db.index_hit_ratio', { description: 'Index blocks served from cache (target > 0.95)' });
    const unusedIndexes = meter.createObservableGauge('mcp.db.unused_indexes', { description: 'Indexes never scanned since statistics reset' });
    const deadTuples = meter.createObservableGauge('mcp.db.dead_tuples', { description: 'Dead tuples awaiting VACUUM, by table' });
    const slowQueries = meter.createObservableGauge('mcp.db.slow_queries', { description: 'Statements running longer than 100 ms' });
    const auditRows = meter.createObservableGauge('mcp.db.audit_logs.rows', { description: 'Rows in audit_logs' });
    const auditBytes = meter.createObservableGauge('mcp.db.audit_logs.bytes', { unit: 'By', description: 'Size of audit_logs' });
    meter.addBatchObservableCallback(
      async (result) => {
        const report = await readReport();
        result.observe(hitRatio, report.indexHitRatio);
        result.observe(unusedIndexes, report.unusedIndexes.length);
        for (const t of report.tableBloat) result.observe(deadTuples, t.dead, { table: t.table });
        result.observe(slowQueries, report.slowQueries.length);
        result.observe(auditRows, report.auditLogs.rows);
        result.observe(auditBytes, report.auditLogs.bytes);
      },
      [hitRatio, unusedIndexes, deadTuples, slowQueries, auditRows, auditBytes],
    );
  }
}

export const platformMetrics = new PlatformMetrics();
