import { trace } from '@opentelemetry/api';
import type { QueryRunner } from 'typeorm';
import { peerAddress } from './auth/guard';
import type { CallContext } from './calls';
import type { Redactor } from './redaction';

/** One audited action: who (from the call), what, to which resource, and how it went. */
export interface AuditEntry {
  /** e.g. 'retention.run', 'legal_hold.place', 'incident.resolve'. */
  action: string;
  resourceType: string;
  resourceId?: string;
  mcpServerId?: string;
  description?: string;
  requestData?: unknown;
  responseData?: unknown;
  success?: boolean;
  statusCode?: number;
  durationMs?: number;
  errorMessage?: string;
}

/**
 * JSON text for a jsonb column. jsonb cannot hold U+0000, which a request may
 * carry in a field its service ignores (a read-only one): the audit copy
 * shows it as U+FFFD rather than failing the audited action.
 */
function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? v.replaceAll('\u0000', '\uFFFD') : v));
}

/**
 * Writes one audit_logs row inside the caller's transaction, so an action and
 * its audit row commit together or not at all: the platform audits itself.
 * Request/response data pass through the redactor first.
 *
 * The database chains the row (docs/audit-integrity.md): the first audit row
 * of a transaction takes the chain lock, held until commit. Call this last in
 * the transaction, so the lock is held briefly and never while waiting for
 * other locks. Under REPEATABLE READ a concurrent chain writer's commit makes
 * it fail with a serialization error: retry the transaction.
 */
export async function recordAudit(
  q: QueryRunner,
  ctx: Pick<CallContext, 'principal' | 'peer' | 'metadata'>,
  entry: AuditEntry,
  redactor: Redactor,
): Promise<void> {
  const spanContext = trace.getActiveSpan()?.spanContext();
  const traceId = spanContext && /^[0-9a-f]{32}$/.test(spanContext.traceId) && !/^0+$/.test(spanContext.traceId) ? spanContext.traceId : null;
  const userAgent = ctx.metadata.get('user-agent')[0];
  await q.query(
    `INSERT INTO audit_logs (user_id, action_type, resource_type, resource_id, mcp_server_id, description,
       request_data, response_data, status_code, duration_ms, success, error_message, ip_address, user_agent, trace_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
    [
      ctx.principal.userId,
      entry.action,
      entry.resourceType,
      entry.resourceId ?? null,
      entry.mcpServerId ?? null,
      entry.description ? redactor.redactText(entry.description) : null,
      entry.requestData === undefined ? null : storableJson(redactor.redact(entry.requestData)),
      entry.responseData === undefined ? null : storableJson(redactor.redact(entry.responseData)),
      entry.statusCode ?? 0,
      entry.durationMs ?? null,
      entry.success ?? true,
      entry.errorMessage ?? null,
      peerAddress(ctx.peer),
      userAgent === undefined ? null : String(userAgent),
      traceId,
    ],
  );
}
