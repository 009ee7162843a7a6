import { audit } from '@mcp/proto';
import { trace } from '@opentelemetry/api';
import {
  decodePageToken,
  encodePageToken,
  FailedPreconditionError,
  hasPermission,
  inTransaction,
  NotFoundError,
  pageSize,
  PermissionDeniedError,
  platformMetrics,
  recordAudit,
  uuidv7,
  Violations,
  type CallContext,
  type IngestLimits,
  type Redactor,
  type ServerStreamWriter,
} from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import {
  eventKey,
  parseAuditEvents,
  parseSecurityEvents,
  RESOLUTIONS_TO_DB,
  SEVERITY_FROM_DB,
  SEVERITY_TO_DB,
  STATUS_FROM_DB,
  STATUS_TO_DB,
} from './events';
import { encodeChunk, type ExportFormat } from './export-format';
import type { CheckpointService } from './checkpoints';
import { ERASE_ACTION, SUBJECT_KEY_RESOURCE, type ChainVerifier, type VerifyResult } from './integrity';
import { ERASED_FIELDS_KEY } from './repository';
import type {
  AuditLogRepository,
  AuditQuery,
  AuditRow,
  ChainCursor,
  ErasureRepository,
  SecurityEventQuery,
  SecurityEventRepository,
  SecurityEventRow,
  TimeCursor,
} from './repository';

export interface AuditHandlerDeps {
  dataSource: DataSource;
  redactor: Redactor;
  limits: IngestLimits;
  logs: AuditLogRepository;
  securityEvents: SecurityEventRepository;
  erasure: ErasureRepository;
  verifier: ChainVerifier;
  checkpoints: CheckpointService;
}

const DAY_MS = 86_400_000;
const MAX_SUMMARY_WINDOW_MS = 366 * DAY_MS;
const MAX_BURST_WINDOW_SECONDS = 30 * 86_400;
const INT64_MAX = 9_223_372_036_854_775_807n;
const EXPORT_FORMATS: ReadonlyMap<audit.ExportFormat, ExportFormat> = new Map([
  [audit.ExportFormat.EXPORT_FORMAT_NDJSON, 'ndjson'],
  [audit.ExportFormat.EXPORT_FORMAT_CSV, 'csv'],
]);

/** Where an export stands: after this row, within the range fixed at its start. */
interface ExportPosition {
  after: ChainCursor | undefined;
  upTo: string;
  total: number;
}

/** Proto <-> domain for every RPC of mcp.audit.v1.AuditService. */
export class AuditHandlers {
  constructor(private readonly deps: AuditHandlerDeps) {}

  async recordAuditEvents(req: audit.RecordAuditEventsRequest, ctx: CallContext): Promise<audit.RecordAuditEventsResponse> {
    const events = parseAuditEvents(req.events, { userId: ctx.principal.userId, newId: uuidv7 }, this.deps.limits, this.deps.redactor);
    const positions = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      await this.deps.logs.lockChain(q);
      const stored = new Map((await this.deps.logs.existing(q, events)).map((r) => [eventKey(r.id, r.created_at), r.chain_seq]));
      const fresh = events.filter((e) => !stored.has(eventKey(e.id, e.createdAt)));
      const inserted = await this.deps.logs.insert(q, fresh);
      return { stored, inserted: new Map(inserted.map((r) => [eventKey(r.id, r.created_at), r.chain_seq])) };
    });
    trace.getActiveSpan()?.setAttributes({ 'mcp.batch.size': events.length, 'mcp.batch.stored': positions.inserted.size });
    platformMetrics.rowsIngested('audit_logs', positions.inserted.size);
    const acks = events.map((e) => {
      const key = eventKey(e.id, e.createdAt);
      const already = positions.stored.get(key);
      return { id: e.id, createdAt: e.createdAt, alreadyStored: already !== undefined, chainSequence: already ?? positions.inserted.get(key) ?? '0' };
    });
    return { acks, storedCount: positions.inserted.size, duplicateCount: positions.stored.size };
  }

  async searchAuditLogs(req: audit.SearchAuditLogsRequest, ctx: CallContext): Promise<audit.SearchAuditLogsResponse> {
    const v = new Violations();
    const query = parseAuditFilter(req.filter, v);
    v.throwIfAny();
    const scope = { rpc: 'SearchAuditLogs', query };
    // Row-level security decides what a caller without audit:read sees; saying
    // it in the query too lets the planner use the (user_id, created_at) index.
    if (!hasPermission(ctx.principal, 'audit:read')) query.ownerId = ctx.principal.userId;
    const cursor = req.pageToken ? decodePageToken<TimeCursor>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.logs.search(q, query, cursor, size + 1), { readAs: ctx.principal });
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      events: page.map(toAuditEvent),
      nextPageToken: rows.length > size && last ? encodePageToken({ ts: last.cursor_ts, id: last.id }, scope) : '',
    };
  }

  async summarizeActivity(req: audit.SummarizeActivityRequest, ctx: CallContext): Promise<audit.SummarizeActivityResponse> {
    const v = new Violations();
    const userId = v.uuid('user_id', req.userId) ?? ctx.principal.userId;
    const end = req.endTime ?? new Date();
    const start = req.startTime ?? new Date(end.getTime() - DAY_MS);
    if (start.getTime() >= end.getTime()) v.add('end_time', 'must be after start_time');
    else if (end.getTime() - start.getTime() > MAX_SUMMARY_WINDOW_MS) v.add('start_time', 'the window may span at most 366 days');
    v.throwIfAny();
    // Row-level security would silently return nothing; say why instead.
    if (userId !== ctx.principal.userId && !hasPermission(ctx.principal, 'audit:read')) {
      throw new PermissionDeniedError('summarising another user\'s activity requires the audit:read permission');
    }
    const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.logs.summarize(q, userId, start, end), { readAs: ctx.principal });
    return {
      actions: rows.map((r) => ({ actionType: r.action_type, count: r.count, averageDurationMs: r.avg ?? undefined })),
      startTime: start,
      endTime: end,
    };
  }

  /**
   * Pages in chain order up to the newest position at the start, each page
   * its own short transaction (no transaction held open while a slow client
   * reads); the next page is read only once the previous chunk was taken.
   */
  async exportAuditLogs(req: audit.ExportAuditLogsRequest, stream: ServerStreamWriter<audit.ExportAuditLogsResponse>, ctx: CallContext): Promise<void> {
    const v = new Violations();
    const query = parseAuditFilter(req.filter, v);
    const format = v.enumValue('format', req.format, EXPORT_FORMATS);
    const rowsPerChunk = req.rowsPerChunk === 0 ? 500 : v.integer('rows_per_chunk', req.rowsPerChunk, 1, 5000);
    v.throwIfAny();
    // The range is fixed by the first call (rows up to the chain head then), so a
    // resumed export neither repeats nor picks up rows it did not promise.
    const scope = { rpc: 'ExportAuditLogs', query, format };
    const resumed = req.cursor ? decodePageToken<ExportPosition>(req.cursor, scope, 'cursor') : undefined;
    const upTo = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      await recordAudit(
        q,
        ctx,
        { action: 'audit.export', resourceType: 'audit_logs', requestData: { filter: query, format, resumed: resumed !== undefined } },
        this.deps.redactor,
      );
      return resumed?.upTo ?? this.deps.logs.newestPosition(q);
    });
    let cursor: ChainCursor | undefined = resumed?.after;
    let total = resumed?.total ?? 0;
    // What this call sent (a resumed export's earlier calls are on their own spans), also when it breaks off.
    const sent = { rows: 0, chunks: 0 };
    const span = trace.getActiveSpan();
    try {
      for (let first = resumed === undefined; ; first = false) {
        const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.logs.inChainOrder(q, query, cursor, upTo, rowsPerChunk!), {
          readAs: ctx.principal,
        });
        total += rows.length;
        const last = rows.length < rowsPerChunk!;
        const tail = rows[rows.length - 1];
        if (tail) cursor = { seq: tail.chain_seq, id: tail.id };
        const position: ExportPosition = { after: cursor, upTo, total };
        await stream.write({
          data: Buffer.from(encodeChunk(format!, rows.map(toExportRecord), first)),
          rowCount: rows.length,
          totalRows: last ? String(total) : '0',
          last,
          cursor: encodePageToken(position, scope),
        });
        sent.rows += rows.length;
        sent.chunks += 1;
        if (last) return;
      }
    } finally {
      span?.setAttributes({ 'mcp.stream.rows': sent.rows, 'mcp.stream.chunks': sent.chunks });
    }
  }

  async recordSecurityEvents(req: audit.RecordSecurityEventsRequest, ctx: CallContext): Promise<audit.RecordSecurityEventsResponse> {
    const events = parseSecurityEvents(req.events, uuidv7, this.deps.limits, this.deps.redactor);
    const inserted = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const ids = await this.deps.securityEvents.insert(q, events);
      if (ids.size > 0) {
        await recordAudit(
          q,
          ctx,
          { action: 'security_events.record', resourceType: 'security_events', responseData: { stored: ids.size, ids: [...ids] } },
          this.deps.redactor,
        );
      }
      return ids;
    });
    trace.getActiveSpan()?.setAttributes({ 'mcp.batch.size': events.length, 'mcp.batch.stored': inserted.size });
    platformMetrics.rowsIngested('security_events', inserted.size);
    return {
      acks: events.map((e) => ({ id: e.id, alreadyStored: !inserted.has(e.id) })),
      storedCount: inserted.size,
      duplicateCount: events.length - inserted.size,
    };
  }

  async listSecurityEvents(req: audit.ListSecurityEventsRequest, ctx: CallContext): Promise<audit.ListSecurityEventsResponse> {
    const v = new Violations();
    const query = parseSecurityFilter(req.filter, v, this.deps.limits);
    v.throwIfAny();
    const scope = { rpc: 'ListSecurityEvents', query };
    const cursor = req.pageToken ? decodePageToken<TimeCursor>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.securityEvents.list(q, query, cursor, size + 1), {
      readAs: ctx.principal,
    });
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      events: page.map(toSecurityEvent),
      nextPageToken: rows.length > size && last ? encodePageToken({ ts: last.cursor_ts, id: last.id }, scope) : '',
    };
  }

  async assignIncident(req: audit.AssignIncidentRequest, ctx: CallContext): Promise<audit.AssignIncidentResponse> {
    const v = new Violations();
    const eventId = v.uuid('event_id', req.eventId, true);
    const assignee = v.uuid('assignee_id', req.assigneeId, true);
    v.throwIfAny();
    return this.incidentStep(ctx, eventId!, 'incident.assign', { assignee_id: assignee }, async (q, current) => {
      if (current.resolved) throw new FailedPreconditionError(`incident ${eventId} is already ${current.status}`);
      if (!(await this.deps.securityEvents.userExists(q, assignee!))) throw new FailedPreconditionError(`assignee_id: unknown user ${assignee}`);
      return this.deps.securityEvents.assign(q, eventId!, assignee!);
    });
  }

  async addIncidentNote(req: audit.AddIncidentNoteRequest, ctx: CallContext): Promise<audit.AddIncidentNoteResponse> {
    const v = new Violations();
    const eventId = v.uuid('event_id', req.eventId, true);
    const text = v.text('text', req.text, { required: true, maxLength: this.deps.limits.maxTextLength });
    v.throwIfAny();
    const note = this.deps.redactor.redactText(text!);
    return this.incidentStep(ctx, eventId!, 'incident.note', { text: note }, (q) =>
      this.deps.securityEvents.addNote(q, eventId!, ctx.principal.userId, note),
    );
  }

  async resolveIncident(req: audit.ResolveIncidentRequest, ctx: CallContext): Promise<audit.ResolveIncidentResponse> {
    const v = new Violations();
    const eventId = v.uuid('event_id', req.eventId, true);
    const resolution = v.enumValue('resolution', req.resolution, RESOLUTIONS_TO_DB);
    const notes = v.text('resolution_notes', req.resolutionNotes, { required: true, maxLength: this.deps.limits.maxTextLength });
    v.throwIfAny();
    const why = this.deps.redactor.redactText(notes!);
    return this.incidentStep(ctx, eventId!, 'incident.resolve', { resolution, resolution_notes: why }, async (q, current) => {
      if (current.resolved) throw new FailedPreconditionError(`incident ${eventId} is already ${current.status}`);
      return this.deps.securityEvents.resolve(q, eventId!, resolution!, ctx.principal.userId, why);
    });
  }

  async detectFailedLoginBursts(req: audit.DetectFailedLoginBurstsRequest, ctx: CallContext): Promise<audit.DetectFailedLoginBurstsResponse> {
    const v = new Violations();
    const threshold = req.threshold === 0 ? 5 : v.integer('threshold', req.threshold, 1, 1_000_000);
    const windowSeconds = req.windowSeconds === 0 ? 3600 : v.integer('window_seconds', req.windowSeconds, 1, MAX_BURST_WINDOW_SECONDS);
    v.throwIfAny();
    const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.securityEvents.failedLoginBursts(q, threshold!, windowSeconds!), {
      readAs: ctx.principal,
    });
    return {
      bursts: rows.map((r) => ({
        ipAddress: r.ip_address ?? undefined,
        failedAttempts: r.failed_attempts,
        firstAttemptAt: r.first_at,
        lastAttemptAt: r.last_at,
      })),
    };
  }

  async verifyIntegrity(req: audit.VerifyIntegrityRequest, ctx: CallContext): Promise<audit.VerifyIntegrityResponse> {
    const v = new Violations();
    const from = v.int64('from_sequence', req.fromSequence, 0n, INT64_MAX);
    const to = v.int64('to_sequence', req.toSequence, 0n, INT64_MAX);
    const bySequence = from !== '0' || to !== '0';
    const byTime = req.startTime !== undefined || req.endTime !== undefined;
    if (bySequence && byTime) v.add('start_time', 'give a sequence range or a time range, not both');
    if (from && to && to !== '0' && BigInt(from) > BigInt(to)) v.add('to_sequence', 'must not be below from_sequence');
    if (req.startTime && req.endTime && req.startTime.getTime() >= req.endTime.getTime()) v.add('end_time', 'must be after start_time');
    v.throwIfAny();
    // One snapshot for the whole walk, so rows moving to the archive meanwhile are seen exactly once.
    const result = await inTransaction(
      this.deps.dataSource,
      ctx,
      (q) =>
        this.deps.verifier.verify(q, {
          from: from && from !== '0' ? BigInt(from) : undefined,
          to: to && to !== '0' ? BigInt(to) : undefined,
          startTime: req.startTime,
          endTime: req.endTime,
        }),
      { isolation: 'REPEATABLE READ' },
    );
    platformMetrics.chainVerification(verificationResult(result));
    return toVerifyResponse(result);
  }

  async createCheckpoint(_req: audit.CreateCheckpointRequest, ctx: CallContext): Promise<audit.CreateCheckpointResponse> {
    const { checkpoint, rowsVerified } = await this.deps.checkpoints.create(ctx);
    return {
      checkpoint: {
        sequence: checkpoint.sequence.toString(),
        rowHash: checkpoint.rowHash,
        signedAt: checkpoint.signedAt,
        keyFingerprint: checkpoint.keyFingerprint,
        signature: checkpoint.signature,
      },
      rowsVerified: String(rowsVerified),
    };
  }

  async eraseSubject(req: audit.EraseSubjectRequest, ctx: CallContext): Promise<audit.EraseSubjectResponse> {
    const v = new Violations();
    const subjectId = v.uuid('user_id', req.userId, true);
    const reason = v.text('reason', req.reason, { required: true, maxLength: 2000 });
    v.throwIfAny();
    const { erasure, logs } = this.deps;
    return inTransaction(this.deps.dataSource, ctx, async (q) => {
      // Serialises with every chain writer: no row of the subject can be
      // chained with the old salt after it is destroyed.
      await logs.lockChain(q);
      const mentions = await erasure.mentionPattern(q, subjectId!);
      const held = await erasure.heldArchivedRows(q, subjectId!, mentions);
      if (held > 0) {
        throw new FailedPreconditionError(`${held} archived audit rows of or naming this subject are under legal hold; erase after the hold is released`);
      }
      const carriedForward = await erasure.erasureRecordsBy(q, subjectId!);
      const keyId = await erasure.destroySubjectKey(q, subjectId!);
      const auditRowsErased = await erasure.eraseAuditRows(q, subjectId!);
      const archivedRowsErased = await erasure.eraseArchivedRows(q, subjectId!);
      const securityEventsErased = await erasure.eraseSecurityEvents(q, subjectId!);
      const mentioning = [
        ...(await erasure.eraseMentionsInAuditRows(q, subjectId!, mentions)),
        ...(await erasure.eraseMentionsInArchivedRows(q, subjectId!, mentions)),
      ];
      const counts = {
        auditRowsErased: String(auditRowsErased),
        archivedRowsErased: String(archivedRowsErased),
        securityEventsErased: String(securityEventsErased),
        mentioningRowsErased: String(mentioning.length),
        legacyMentioningRowsKept: String(await erasure.legacyMentioningRows(q, subjectId!, mentions)),
        mentioningSecurityEventsCleared: String(await erasure.eraseMentionsInSecurityEvents(q, subjectId!, mentions)),
      };
      // Names the destroyed key, not the person: verification accepts rows committed with that key as erased,
      // and the listed (row id, field) pairs as emptied by this erasure.
      await recordAudit(
        q,
        ctx,
        {
          action: ERASE_ACTION,
          resourceType: SUBJECT_KEY_RESOURCE,
          resourceId: keyId,
          description: 'personal data of one subject erased (GDPR Art. 17)',
          requestData: { reason },
          responseData: { ...counts, [ERASED_FIELDS_KEY]: [...carriedForward, ...mentioning] },
        },
        this.deps.redactor,
      );
      return { ...counts, subjectKeyId: keyId ?? '' };
    });
  }

  /** Locks the incident, runs one workflow step and audits it, all in one transaction. */
  private async incidentStep(
    ctx: CallContext,
    eventId: string,
    action: string,
    details: Record<string, unknown>,
    step: (q: Parameters<Parameters<typeof inTransaction>[2]>[0], current: SecurityEventRow) => Promise<SecurityEventRow>,
  ): Promise<{ event: audit.SecurityEvent }> {
    const row = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const current = await this.deps.securityEvents.lockForUpdate(q, eventId);
      if (!current) throw new NotFoundError(`security event ${eventId} not found`);
      const updated = await step(q, current);
      await recordAudit(
        q,
        ctx,
        {
          action,
          resourceType: 'security_event',
          resourceId: eventId,
          requestData: details,
          responseData: { status_before: current.status, status_after: updated.status },
        },
        this.deps.redactor,
      );
      return updated;
    });
    return { event: toSecurityEvent(row) };
  }
}

export function parseAuditFilter(filter: audit.AuditFilter | undefined, v: Violations): AuditQuery {
  if (!filter) return {};
  const userIds = filter.userIds.map((id, i) => v.uuid(`filter.user_ids[${i}]`, id, true) ?? '');
  const actionTypes = filter.actionTypes.map((t, i) => v.text(`filter.action_types[${i}]`, t, { required: true, maxLength: 200 }) ?? '');
  if (filter.startTime && filter.endTime && filter.startTime.getTime() >= filter.endTime.getTime()) {
    v.add('filter.end_time', 'must be after start_time');
  }
  const traceId = v.text('filter.trace_id', filter.traceId, { maxLength: 32 });
  if (traceId && !/^[0-9a-f]{32}$/.test(traceId)) v.add('filter.trace_id', 'must be 32 lowercase hex digits');
  return {
    userIds: userIds.length > 0 ? userIds : undefined,
    actionTypes: actionTypes.length > 0 ? actionTypes : undefined,
    resourceType: v.text('filter.resource_type', filter.resourceType, { maxLength: 255 }) || undefined,
    resourceId: v.text('filter.resource_id', filter.resourceId, { maxLength: 255 }) || undefined,
    mcpServerId: v.uuid('filter.mcp_server_id', filter.mcpServerId),
    success: filter.success,
    startTime: filter.startTime,
    endTime: filter.endTime,
    text: v.text('filter.text', filter.text, { maxLength: 500 }) || undefined,
    traceId: traceId || undefined,
  };
}

function parseSecurityFilter(filter: audit.SecurityEventFilter | undefined, v: Violations, limits: IngestLimits): SecurityEventQuery {
  if (!filter) return {};
  const severities = filter.severities.map((s, i) => v.enumValue(`filter.severities[${i}]`, s, SEVERITY_TO_DB) ?? '');
  const statuses = filter.statuses.map((s, i) => v.enumValue(`filter.statuses[${i}]`, s, STATUS_TO_DB) ?? '');
  const eventTypes = filter.eventTypes.map((t, i) => v.text(`filter.event_types[${i}]`, t, { required: true, maxLength: 100 }) ?? '');
  if (filter.startTime && filter.endTime && filter.startTime.getTime() >= filter.endTime.getTime()) {
    v.add('filter.end_time', 'must be after start_time');
  }
  const min = filter.minThreatScore;
  if (min !== undefined && !(min >= 0 && min <= 100)) v.add('filter.min_threat_score', 'must be from 0 to 100');
  const indicators = v.json('filter.indicators_contain', filter.indicatorsContain, { maxBytes: limits.maxJsonBytes, maxDepth: limits.maxJsonDepth });
  // Stored indicators are always objects: an array or scalar could never be contained in one.
  const indicatorsIsObject = typeof indicators === 'object' && indicators !== null && !Array.isArray(indicators);
  if (indicators !== undefined && !indicatorsIsObject) v.add('filter.indicators_contain', 'must be a JSON object');
  return {
    severities: severities.length > 0 ? severities : undefined,
    statuses: statuses.length > 0 ? statuses : undefined,
    eventTypes: eventTypes.length > 0 ? eventTypes : undefined,
    unresolvedOnly: filter.unresolvedOnly,
    startTime: filter.startTime,
    endTime: filter.endTime,
    minThreatScore: min,
    assignedTo: v.uuid('filter.assigned_to', filter.assignedTo),
    indicatorsContain: indicatorsIsObject ? JSON.stringify(indicators) : undefined,
  };
}

export function toAuditEvent(r: AuditRow): audit.AuditEvent {
  return {
    id: r.id,
    createdAt: r.created_at,
    userId: r.user_id ?? '',
    actionType: r.action_type,
    resourceType: r.resource_type ?? undefined,
    resourceId: r.resource_id ?? undefined,
    mcpServerId: r.mcp_server_id ?? undefined,
    description: r.description ?? undefined,
    requestData: r.request_data ?? undefined,
    responseData: r.response_data ?? undefined,
    statusCode: r.status_code ?? undefined,
    durationMs: r.duration_ms ?? undefined,
    success: r.success,
    errorMessage: r.error_message ?? undefined,
    ipAddress: r.ip_address ?? undefined,
    userAgent: r.user_agent ?? undefined,
    sessionId: r.session_id ?? undefined,
    traceId: r.trace_id ?? undefined,
    chainSequence: r.chain_seq,
    prevHash: r.prev_hash,
    rowHash: r.row_hash,
    personalDataErased: r.personal_data_erased,
  };
}

/** Every column an offline verifier needs (docs/audit-integrity.md), in column order. */
function toExportRecord(r: AuditRow): Record<string, unknown> {
  return {
    chain_seq: r.chain_seq,
    id: r.id,
    created_at: r.cursor_ts,
    user_id: r.user_id,
    action_type: r.action_type,
    resource_type: r.resource_type,
    resource_id: r.resource_id,
    mcp_server_id: r.mcp_server_id,
    description: r.description,
    request_data: r.request_data,
    response_data: r.response_data,
    status_code: r.status_code,
    duration_ms: r.duration_ms,
    success: r.success,
    error_message: r.error_message,
    ip_address: r.ip_address,
    user_agent: r.user_agent,
    session_id: r.session_id,
    trace_id: r.trace_id,
    subject_key_id: r.subject_key_id,
    personal_commitment: r.personal_commitment,
    prev_hash: r.prev_hash,
    row_hash: r.row_hash,
  };
}

function toSecurityEvent(r: SecurityEventRow): audit.SecurityEvent {
  return {
    id: r.id,
    occurredAt: r.occurred_at,
    eventType: r.event_type,
    severity: SEVERITY_FROM_DB.get(r.severity) ?? audit.Severity.SEVERITY_UNSPECIFIED,
    sourceService: r.source_service ?? undefined,
    userId: r.user_id ?? undefined,
    ipAddress: r.ip_address ?? undefined,
    userAgent: r.user_agent ?? undefined,
    description: r.description ?? undefined,
    threatScore: r.threat_score ?? undefined,
    indicators: r.indicators,
    countryCode: r.country_code ?? undefined,
    city: r.city ?? undefined,
    behaviorSignals: r.behavior_signals,
    status: STATUS_FROM_DB.get(r.status) ?? audit.IncidentStatus.INCIDENT_STATUS_UNSPECIFIED,
    assignedTo: r.assigned_to ?? undefined,
    assignedAt: r.assigned_at ?? undefined,
    notes: r.notes.map((n) => ({ at: new Date(n.at), authorId: n.author_id, text: n.text })),
    resolved: r.resolved,
    resolvedAt: r.resolved_at ?? undefined,
    resolvedBy: r.resolved_by ?? undefined,
    resolutionNotes: r.resolution_notes ?? undefined,
  };
}

function toVerifyResponse(r: VerifyResult): audit.VerifyIntegrityResponse {
  return {
    status: r.status,
    rowsChecked: String(r.rowsChecked),
    erasedRows: String(r.erasedRows),
    archivedRows: String(r.archivedRows),
    firstBreak: r.firstBreak && { kind: r.firstBreak.kind, sequence: r.firstBreak.sequence.toString(), detail: r.firstBreak.detail },
    verifiedHead: r.verifiedHead && { sequence: r.verifiedHead.sequence.toString(), rowHash: r.verifiedHead.rowHash },
    checkpointsChecked: r.checkpointsChecked,
    checkpointsRejected: r.checkpointsRejected,
    checkpointKeyConfigured: r.checkpointKeyConfigured,
    fromSequence: r.from.toString(),
    toSequence: r.to.toString(),
  };
}

/** The `result` of the chain-verification metric: 'valid', 'nothing_verified', or the kind of the first break ('changed', 'checkpoint_mismatch', …). */
function verificationResult(r: VerifyResult): string {
  if (r.firstBreak) return audit.BreakKind[r.firstBreak.kind].replace(/^BREAK_KIND_/, '').toLowerCase();
  return r.status === audit.VerificationStatus.VERIFICATION_STATUS_NOTHING_VERIFIED ? 'nothing_verified' : 'valid';
}
