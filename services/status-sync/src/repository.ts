import { COMMIT_ORDER_HORIZON_CTE, commitOrderPredicates, exactTimestamp, type CommitCursor } from '@mcp/runtime';
import type { QueryRunner } from 'typeorm';
import type { HeartbeatInput, NewStatusReport } from './status';

/** Channel NOTIFY'd by every transaction that writes history rows; watches LISTEN on it. */
export const STATUS_LOG_CHANNEL = 'mcp_server_status_logs';

/** A history row as read back, JSON columns as JSON text. */
export interface StatusLogRow {
  id: string;
  server_id: string;
  previous_status: string | null;
  current_status: string | null;
  source: string;
  details: string | null;
  health_check_result: string | null;
  heartbeat_data: string | null;
  response_time_ms: number | null;
  uptime_seconds: string | null;
  timestamp: Date;
  created_by: string | null;
  sync_session_id: string | null;
  batch_id: string | null;
  /** Commit-order position, for watches. */
  ingest_xid: string;
}

const LOG_COLUMNS = `
  l.id, l.server_id, l.previous_status::text AS previous_status, l.current_status::text AS current_status,
  l.source, l.details, l.health_check_result::text AS health_check_result, l.heartbeat_data::text AS heartbeat_data,
  l.response_time_ms, l.uptime_seconds::text AS uptime_seconds, l.timestamp, l.created_by, l.sync_session_id,
  l.batch_id, l.ingest_xid::text AS ingest_xid`;

/** Exact timestamp (microseconds, UTC) of `column`, for keyset cursors. */

/** The server's status as a JSON object whose state/health always agree with its columns. */
const statusOf = (alias: string, state = `${alias}.status`, health = `${alias}.health`): string =>
  `${alias}.current_status || jsonb_build_object('state', ${state}, 'health', ${health})`;

export interface TimeCursor {
  ts: string;
  id: string;
}

export interface WatchFilter {
  serverId?: string;
  ownerId?: string;
}

/** Where a statement runs: a transaction's QueryRunner, or a statement that is its own transaction (runStatement). */
export interface Executor {
  query(text: string, values: unknown[]): Promise<unknown>;
}

/** A heartbeat applied as steady: the server's state and health, unchanged. */
export interface SteadyBeat {
  serverId: string;
  state: string;
  health: string;
}

export interface HeartbeatOutcome {
  state: string;
  health: string;
  transition: boolean;
  snapshot: boolean;
  /** The history row written, if any. */
  row: StatusLogRow | undefined;
}

export interface StatusHistoryRow {
  id: string;
  timestamp: Date;
  previous_state: string | null;
  current_state: string | null;
  source: string;
  details: string | null;
  response_time_ms: number | null;
  cursor_ts: string;
}

export interface HealthHistoryRow {
  id: string;
  server_id: string;
  timestamp: Date;
  server_name: string;
  previous_health: string | null;
  current_health: string | null;
  source: string;
  response_time_ms: number | null;
  details: string | null;
  cursor_ts: string;
}

export interface DashboardRow {
  id: string;
  name: string;
  status: string;
  cpu_usage: number | null;
  memory_usage: number | null;
  minutes_since_health_check: number | null;
  last_activity_at: Date | null;
  /** 'infinity' for servers never active: the seed's DESC order puts them first. */
  cursor_ts: string;
}

/** mcp_server_status_logs and the current-status columns of mcp_servers. */
export class StatusRepository {
  async existingServers(q: QueryRunner, ids: string[]): Promise<Set<string>> {
    const rows: { id: string }[] = await q.query('SELECT id FROM mcp_servers WHERE id = ANY($1::uuid[])', [ids]);
    return new Set(rows.map((r) => r.id));
  }

  /** The rows recorded under an idempotency key (one per server). */
  async rowsUnderKey(q: QueryRunner, key: string): Promise<StatusLogRow[]> {
    return q.query(
      `SELECT ${LOG_COLUMNS} FROM mcp_server_status_report_keys k
         JOIN mcp_server_status_logs l ON l.id = k.log_id AND l.timestamp = k.log_timestamp
        WHERE k.idempotency_key = $1`,
      [key],
    );
  }

  /**
   * Records reports in one statement: locks the servers (in id order, so
   * concurrent batches cannot deadlock), writes one history row per report
   * whose previous status defaults to the server's status at that moment,
   * and makes each report's current status the server's. Row timestamps are
   * taken after the lock, so they follow the chain's order. With a key, the
   * rows are also recorded under it; `claimed` is how many were (fewer: a
   * concurrent call with the same key committed first).
   */
  async recordReports(
    q: QueryRunner,
    reports: Array<NewStatusReport & { logId: string }>,
    createdBy: string,
    batchId: string | null,
    idempotencyKey: string | null,
  ): Promise<{ rows: StatusLogRow[]; claimed: number }> {
    const col = <T>(pick: (r: NewStatusReport & { logId: string }) => T): T[] => reports.map(pick);
    const rows: Array<StatusLogRow & { claimed: number }> = await q.query(
      `WITH input AS MATERIALIZED (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::jsonb[], $5::text[], $6::text[],
                              $7::jsonb[], $8::jsonb[], $9::int[], $10::bigint[], $11::uuid[])
           AS t(log_id, server_id, current_status, previous_status, source, details,
                health_check_result, heartbeat_data, response_time_ms, uptime_seconds, sync_session_id)
       ), locked AS MATERIALIZED (
         SELECT s.id, ${statusOf('s')} AS status_before
           FROM mcp_servers s WHERE s.id IN (SELECT server_id FROM input) ORDER BY s.id FOR NO KEY UPDATE
       ), report AS MATERIALIZED (
         SELECT i.*, locked.status_before, clock_timestamp() AS at FROM input i JOIN locked ON locked.id = i.server_id
       ), updated AS (
         UPDATE mcp_servers s SET
           status = r.current_status->>'state', health = r.current_status->>'health', current_status = r.current_status,
           last_activity_at = r.at, last_status_log_at = r.at,
           last_health_check = CASE WHEN r.health_check_result IS NULL THEN s.last_health_check ELSE r.at END
         FROM report r WHERE s.id = r.server_id
         RETURNING s.id
       ), logged AS (
         INSERT INTO mcp_server_status_logs AS l (
           id, server_id, previous_status, current_status, source, details, health_check_result, heartbeat_data,
           response_time_ms, uptime_seconds, timestamp, created_by, sync_session_id, batch_id)
         SELECT log_id, server_id, coalesce(previous_status, status_before), current_status, source, details,
                health_check_result, heartbeat_data, response_time_ms, uptime_seconds, at, $12, sync_session_id, $13
           FROM report
         RETURNING ${LOG_COLUMNS}
       ), claimed AS (
         INSERT INTO mcp_server_status_report_keys (idempotency_key, server_id, log_id, log_timestamp)
         SELECT $14, server_id, log_id, at FROM report WHERE $14::uuid IS NOT NULL
         ON CONFLICT DO NOTHING RETURNING 1
       )
       SELECT logged.*, (SELECT count(*) FROM claimed)::int AS claimed FROM logged`,
      [
        col((r) => r.logId),
        col((r) => r.serverId),
        col((r) => r.currentStatus),
        col((r) => r.previousStatus),
        col((r) => r.source),
        col((r) => r.details),
        col((r) => r.healthCheckResult),
        col((r) => r.heartbeatData),
        col((r) => r.responseTimeMs),
        col((r) => r.uptimeSeconds),
        col((r) => r.syncSessionId),
        createdBy,
        batchId,
        idempotencyKey,
      ],
    );
    await this.notify(q);
    return { rows: rows.map(({ claimed: _, ...row }) => row), claimed: rows[0]?.claimed ?? 0 };
  }

  /**
   * The common case of a heartbeat, as one UPDATE without a history row:
   * last-seen and metrics of every beat whose server it leaves exactly as it
   * is (same state and health, not stale, no snapshot due). Those conditions
   * are re-checked on the latest row version if a concurrent transaction
   * changed it first (READ COMMITTED re-evaluation), so a beat racing a
   * transition is never applied as steady. Returns the servers updated;
   * every other beat (a transition, a stale recovery, a snapshot, an unknown
   * server) is for `heartbeats`. Last-seen never moves backwards.
   */
  async steadyHeartbeats(q: Executor, beats: HeartbeatInput[], snapshotIntervalSeconds: number): Promise<SteadyBeat[]> {
    const col = <T>(pick: (b: HeartbeatInput) => T): T[] => beats.map(pick);
    return (await q.query(
      `UPDATE mcp_servers s SET
         cpu_usage = coalesce(b.cpu_usage, s.cpu_usage), memory_usage = coalesce(b.memory_usage, s.memory_usage),
         last_heartbeat_at = greatest(s.last_heartbeat_at, b.at), last_activity_at = greatest(s.last_activity_at, b.at),
         last_health_check = CASE WHEN b.beat_health IS NULL THEN s.last_health_check ELSE greatest(s.last_health_check, b.at) END
       FROM (SELECT t.*, clock_timestamp() AS at
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::numeric[])
                 AS t(server_id, beat_state, beat_health, cpu_usage, memory_usage)) b
       WHERE s.id = b.server_id
         AND s.status = coalesce(b.beat_state, s.status) AND s.health = coalesce(b.beat_health, s.health)
         AND s.stale_since IS NULL
         AND NOT ($6::int > 0 AND (s.last_status_log_at IS NULL
                                   OR s.last_status_log_at <= b.at - make_interval(secs => $6::int)))
       RETURNING s.id AS "serverId", s.status AS state, s.health`,
      [col((b) => b.serverId), col((b) => b.state), col((b) => b.health), col((b) => b.cpuUsage), col((b) => b.memoryUsage), snapshotIntervalSeconds],
    )) as SteadyBeat[];
  }

  /**
   * Heartbeats with every consequence, in one statement: lock the servers (in
   * id order, so concurrent calls cannot deadlock), compare each beat's
   * state/health with the locked (latest) values, update last-seen and
   * metrics, and insert a history row only for a transition (or a stale
   * recovery, or a due snapshot). Two concurrent beats of one server
   * serialise on the row lock, so a transition is decided — and logged —
   * exactly once. The lock is FOR NO KEY UPDATE (what the UPDATE takes
   * anyway), which does not block other transactions' foreign-key checks
   * when they insert history rows for the server. At most one beat per
   * server; servers that do not exist are absent from the result.
   */
  async heartbeats(
    q: QueryRunner,
    beats: Array<HeartbeatInput & { logId: string }>,
    createdBy: string,
    snapshotIntervalSeconds: number,
  ): Promise<Map<string, HeartbeatOutcome>> {
    const col = <T>(pick: (b: HeartbeatInput & { logId: string }) => T): T[] => beats.map(pick);
    const rows: Array<StatusLogRow & { beat_server_id: string; new_state: string; new_health: string; transition: boolean; snapshot: boolean; logged: boolean }> =
      await q.query(
        `WITH input AS MATERIALIZED (
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::int[], $7::bigint[],
                                $8::jsonb[], $9::uuid[])
             AS t(server_id, beat_state, beat_health, cpu_usage, memory_usage, response_time_ms, uptime_seconds,
                  heartbeat_data, log_id)
         ), locked AS MATERIALIZED (
           SELECT id, status, health, current_status, stale_since, last_status_log_at
             FROM mcp_servers WHERE id IN (SELECT server_id FROM input) ORDER BY id FOR NO KEY UPDATE
         ), beat AS MATERIALIZED (
           SELECT i.*, l.status, l.health, l.current_status, l.stale_since, l.last_status_log_at, clock_timestamp() AS at,
                  coalesce(i.beat_state, l.status) AS new_state, coalesce(i.beat_health, l.health) AS new_health
             FROM input i JOIN locked l ON l.id = i.server_id
         ), decision AS MATERIALIZED (
           SELECT beat.*,
                  (new_state, new_health) IS DISTINCT FROM (status, health) OR stale_since IS NOT NULL AS transition,
                  $11::int > 0 AND (last_status_log_at IS NULL
                                    OR last_status_log_at <= at - make_interval(secs => $11::int)) AS snapshot
             FROM beat
         ), updated AS (
           UPDATE mcp_servers s SET
             status = d.new_state, health = d.new_health,
             current_status = ${statusOf('d', 'd.new_state', 'd.new_health')},
             cpu_usage = coalesce(d.cpu_usage, s.cpu_usage), memory_usage = coalesce(d.memory_usage, s.memory_usage),
             last_heartbeat_at = d.at, last_activity_at = d.at,
             last_health_check = CASE WHEN d.beat_health IS NULL THEN s.last_health_check ELSE d.at END,
             stale_since = NULL,
             last_status_log_at = CASE WHEN d.transition OR d.snapshot THEN d.at ELSE s.last_status_log_at END
           FROM decision d WHERE s.id = d.server_id
           RETURNING s.id
         ), logged AS (
           INSERT INTO mcp_server_status_logs AS l (
             id, server_id, previous_status, current_status, source, details, heartbeat_data,
             response_time_ms, uptime_seconds, timestamp, created_by)
           SELECT d.log_id, d.server_id, ${statusOf('d')}, ${statusOf('d', 'd.new_state', 'd.new_health')}, 'heartbeat',
                  CASE WHEN d.stale_since IS NOT NULL THEN 'heartbeat resumed: recovered from stale'
                       WHEN NOT d.transition THEN 'periodic snapshot' END,
                  d.heartbeat_data, d.response_time_ms, d.uptime_seconds, d.at, $10
             FROM decision d WHERE d.transition OR d.snapshot
           RETURNING ${LOG_COLUMNS}
         )
         SELECT d.server_id AS beat_server_id, d.new_state, d.new_health, d.transition, d.snapshot,
                logged.id IS NOT NULL AS logged, logged.*
           FROM decision d LEFT JOIN logged ON logged.server_id = d.server_id`,
        [
          col((b) => b.serverId),
          col((b) => b.state),
          col((b) => b.health),
          col((b) => b.cpuUsage),
          col((b) => b.memoryUsage),
          col((b) => b.responseTimeMs),
          col((b) => b.uptimeSeconds),
          col((b) => b.heartbeatData),
          col((b) => b.logId),
          createdBy,
          snapshotIntervalSeconds,
        ],
      );
    if (rows.some((r) => r.logged)) await this.notify(q);
    return new Map(
      rows.map(({ beat_server_id, new_state, new_health, transition, snapshot, logged, ...logRow }) => [
        beat_server_id,
        { state: new_state, health: new_health, transition, snapshot, row: logged ? logRow : undefined },
      ]),
    );
  }

  /**
   * Marks servers whose last heartbeat is older than their stale_after_seconds
   * UNHEALTHY, with a `system` history row, unless their environment is in a
   * maintenance window. The condition includes "not yet marked"
   * (stale_since IS NULL) and is re-checked on the locked row, so with any
   * number of replicas sweeping at once each staleness episode is marked once;
   * SKIP LOCKED lets replicas share the work instead of queueing on each other.
   */
  async markStale(q: QueryRunner, createdBy: string, limit: number): Promise<StatusLogRow[]> {
    const rows: StatusLogRow[] = await q.query(
      `WITH candidates AS MATERIALIZED (
         SELECT s.id, s.status, s.health, s.current_status, s.last_heartbeat_at, s.stale_after_seconds
           FROM mcp_servers s LEFT JOIN environments e ON e.id = s.environment_id
          WHERE s.is_enabled AND s.stale_since IS NULL
            AND s.last_heartbeat_at < now() - make_interval(secs => s.stale_after_seconds)
            AND NOT coalesce(e.maintenance_window_start <= now()
                             AND (e.maintenance_window_end IS NULL OR now() < e.maintenance_window_end), false)
          ORDER BY s.id LIMIT $2
          FOR NO KEY UPDATE OF s SKIP LOCKED
       ), marked AS MATERIALIZED (
         SELECT c.*, clock_timestamp() AS at FROM candidates c
       ), updated AS (
         UPDATE mcp_servers s SET health = 'UNHEALTHY', stale_since = m.at, last_status_log_at = m.at,
                current_status = ${statusOf('m', 'm.status', `'UNHEALTHY'`)}
           FROM marked m WHERE s.id = m.id
         RETURNING s.id
       )
       INSERT INTO mcp_server_status_logs AS l (server_id, previous_status, current_status, source, details, timestamp, created_by)
       SELECT m.id, ${statusOf('m')}, ${statusOf('m', 'm.status', `'UNHEALTHY'`)}, 'system',
              format('stale: no heartbeat for %s s (stale after %s s)',
                     floor(extract(epoch FROM m.at - m.last_heartbeat_at)), m.stale_after_seconds),
              m.at, $1
         FROM marked m
       RETURNING ${LOG_COLUMNS}`,
      [createdBy, limit],
    );
    if (rows.length > 0) await this.notify(q);
    return rows;
  }

  /** Forgets idempotency keys no client will retry any more. */
  async purgeReportKeys(q: QueryRunner, olderThanHours: number): Promise<number> {
    const rows = await q.query(
      `DELETE FROM mcp_server_status_report_keys WHERE received_at < now() - make_interval(hours => $1) RETURNING 1`,
      [olderThanHours],
    );
    return rows.length;
  }

  /**
   * Delivered at commit; the payload (this transaction's id) lets watches tell
   * a commit they cannot read yet (held back by an older open transaction).
   */
  private async notify(q: QueryRunner): Promise<void> {
    await q.query('SELECT pg_notify($1, pg_current_xact_id()::text)', [STATUS_LOG_CHANNEL]);
  }

  /** A window start fixed by the first page, so later pages keep the same window. */
  async windowStart(q: QueryRunner, hours: number): Promise<string> {
    const [row] = await q.query(`SELECT ${exactTimestamp('now() - make_interval(hours => $1)')} AS since`, [hours]);
    return row.since;
  }

  /** The seed's get_server_status_history(server, hours), newest first, plus the row id for keyset paging. */
  async statusHistory(q: QueryRunner, serverId: string, since: string, cursor: TimeCursor | undefined, limit: number): Promise<StatusHistoryRow[]> {
    return q.query(
      `SELECT mssl.id, mssl.timestamp, mssl.previous_status->>'state' AS previous_state,
              mssl.current_status->>'state' AS current_state, mssl.source, mssl.details, mssl.response_time_ms,
              ${exactTimestamp('mssl.timestamp')} AS cursor_ts
         FROM mcp_server_status_logs mssl
        WHERE mssl.server_id = $1 AND mssl.timestamp > $2::timestamptz
          AND ($3::timestamptz IS NULL OR (mssl.timestamp, mssl.id) < ($3::timestamptz, $4::uuid))
        ORDER BY mssl.timestamp DESC, mssl.id DESC LIMIT $5`,
      [serverId, since, cursor?.ts ?? null, cursor?.id ?? null, limit],
    );
  }

  /** The seed view server_health_history (same joins and columns), plus the ids keyset paging needs. */
  async healthHistory(q: QueryRunner, since: string, cursor: TimeCursor | undefined, limit: number): Promise<HealthHistoryRow[]> {
    return q.query(
      `SELECT mssl.id, mssl.server_id, mssl.timestamp, ati.instance_name_on_toolbox AS server_name,
              mssl.previous_status->>'health' AS previous_health, mssl.current_status->>'health' AS current_health,
              mssl.source, mssl.response_time_ms, mssl.details, ${exactTimestamp('mssl.timestamp')} AS cursor_ts
         FROM mcp_server_status_logs mssl
         JOIN account_tool_instances ati ON mssl.server_id = ati.id
        WHERE mssl.timestamp > $1::timestamptz
          AND ($2::timestamptz IS NULL OR (mssl.timestamp, mssl.id) < ($2::timestamptz, $3::uuid))
        ORDER BY mssl.timestamp DESC, mssl.id DESC LIMIT $4`,
      [since, cursor?.ts ?? null, cursor?.id ?? null, limit],
    );
  }

  /**
   * Seed 004's server performance dashboard query. Its ORDER BY
   * last_activity_at DESC puts never-active servers (NULL) first; the keyset
   * sorts them as 'infinity' to keep that order, with the id as tie-breaker.
   */
  async dashboard(q: QueryRunner, ownerId: string, cursor: TimeCursor | undefined, limit: number): Promise<DashboardRow[]> {
    return q.query(
      `SELECT s.id, s.name, s.status, s.cpu_usage::float8 AS cpu_usage, s.memory_usage::float8 AS memory_usage,
              (EXTRACT(EPOCH FROM (NOW() - s.last_health_check)) / 60)::float8 AS minutes_since_health_check,
              s.last_activity_at,
              CASE WHEN s.last_activity_at IS NULL THEN 'infinity' ELSE ${exactTimestamp('s.last_activity_at')} END AS cursor_ts
         FROM mcp_servers s
        WHERE s.is_enabled = true
          AND s.owner_id = $1
          AND ($2::timestamptz IS NULL
               OR (coalesce(s.last_activity_at, 'infinity'), s.id) < ($2::timestamptz, $3::uuid))
        ORDER BY coalesce(s.last_activity_at, 'infinity') DESC, s.id DESC LIMIT $4`,
      [ownerId, cursor?.ts ?? null, cursor?.id ?? null, limit],
    );
  }

  /** Rows committed after `cursor`, in commit order, below the commit horizon (CommitOrderStream in @mcp/runtime). */
  async rowsAfterCommitCursor(
    q: QueryRunner,
    filter: WatchFilter,
    cursor: CommitCursor,
    notBefore: Date,
    limit: number,
  ): Promise<{ rows: StatusLogRow[]; horizon: string }> {
    const params: unknown[] = [notBefore, filter.serverId ?? null, filter.ownerId ?? null, limit];
    const param = (value: unknown) => `$${params.push(value)}`;
    const rows: Array<StatusLogRow & { horizon: string }> = await q.query(
      `WITH ${COMMIT_ORDER_HORIZON_CTE}
       SELECT ${LOG_COLUMNS}, (SELECT horizon FROM commit_order_horizon)::text AS horizon
         FROM mcp_server_status_logs l
        WHERE l.timestamp >= $1
          AND ($2::uuid IS NULL OR l.server_id = $2)
          AND ($3::uuid IS NULL OR l.server_id IN (SELECT id FROM mcp_servers WHERE owner_id = $3))
          AND ${commitOrderPredicates('l', cursor, param).join(' AND ')}
        ORDER BY l.ingest_xid, l.id LIMIT $4`,
      params,
    );
    const horizon = rows[0]?.horizon ?? (await q.query('SELECT commit_horizon(pg_current_snapshot())::text AS h'))[0].h;
    return { rows: rows.map(({ horizon: _, ...row }) => row), horizon };
  }
}

export interface EnvironmentRow {
  id: string;
  name: string;
  description: string | null;
  environment_type: string;
  config: string;
  resource_limits: string;
  maintenance_window_start: Date | null;
  maintenance_window_end: Date | null;
  current_deployment_version: string | null;
  is_active: boolean;
  created: boolean;
}

export type EnvironmentWrite = Omit<EnvironmentRow, 'created'>;

export interface ServerRow {
  id: string;
  name: string;
  description: string | null;
  owner_id: string | null;
  environment_id: string | null;
  transport: string;
  endpoint_url: string | null;
  command: string | null;
  config: string;
  is_enabled: boolean;
  cpu_limit: number | null;
  memory_limit_mb: number | null;
  health_check_interval_seconds: number;
  health_check_timeout_seconds: number;
  stale_after_seconds: number;
  restart_policy: string;
  max_restarts: number;
  status: string;
  health: string;
  cpu_usage: number | null;
  memory_usage: number | null;
  last_health_check: Date | null;
  last_heartbeat_at: Date | null;
  last_activity_at: Date | null;
  current_status: string;
  stale_since: Date | null;
  created: boolean;
}

/** Registry fields written by UpsertServer; null numeric settings take the column defaults. */
export interface ServerWrite {
  id: string;
  name: string;
  description: string | null;
  owner_id: string;
  environment_id: string | null;
  transport: string;
  endpoint_url: string | null;
  command: string | null;
  config: string;
  is_enabled: boolean;
  cpu_limit: number | null;
  memory_limit_mb: number | null;
  health_check_interval_seconds: number | null;
  health_check_timeout_seconds: number | null;
  stale_after_seconds: number | null;
  restart_policy: string;
  max_restarts: number | null;
}

/** An mcp_servers row aliased `m`, as the API shows it. */
const SERVER_COLUMNS = `
  id, name, description, owner_id, environment_id, transport, endpoint_url, command, config::text AS config, is_enabled,
  cpu_limit::float8 AS cpu_limit, memory_limit_mb, health_check_interval_seconds, health_check_timeout_seconds,
  stale_after_seconds, restart_policy, max_restarts, status, health, cpu_usage::float8 AS cpu_usage,
  memory_usage::float8 AS memory_usage, last_health_check, last_heartbeat_at, last_activity_at,
  (${statusOf('m')})::text AS current_status, stale_since`;

/** Environments and the registry fields of servers. */
export class RegistryRepository {
  async userExists(q: QueryRunner, userId: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL', [userId]);
    return rows.length > 0;
  }

  async environmentExists(q: QueryRunner, id: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM environments WHERE id = $1', [id]);
    return rows.length > 0;
  }

  async upsertEnvironment(q: QueryRunner, e: EnvironmentWrite): Promise<EnvironmentRow> {
    const [row] = await q.query(
      `INSERT INTO environments (id, name, description, environment_type, config, resource_limits,
         maintenance_window_start, maintenance_window_end, current_deployment_version, is_active)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
         environment_type = EXCLUDED.environment_type, config = EXCLUDED.config, resource_limits = EXCLUDED.resource_limits,
         maintenance_window_start = EXCLUDED.maintenance_window_start, maintenance_window_end = EXCLUDED.maintenance_window_end,
         -- a new deployment version keeps the one it replaces, for rollback (seed 004)
         previous_deployment_version = CASE
           WHEN EXCLUDED.current_deployment_version IS DISTINCT FROM environments.current_deployment_version
           THEN environments.current_deployment_version ELSE environments.previous_deployment_version END,
         last_deployed_at = CASE
           WHEN EXCLUDED.current_deployment_version IS DISTINCT FROM environments.current_deployment_version
           THEN now() ELSE environments.last_deployed_at END,
         current_deployment_version = EXCLUDED.current_deployment_version, is_active = EXCLUDED.is_active
       RETURNING id, name, description, environment_type, config::text AS config, resource_limits::text AS resource_limits,
         maintenance_window_start, maintenance_window_end, current_deployment_version, is_active, (xmax = 0) AS created`,
      [
        e.id,
        e.name,
        e.description,
        e.environment_type,
        e.config,
        e.resource_limits,
        e.maintenance_window_start,
        e.maintenance_window_end,
        e.current_deployment_version,
        e.is_active,
      ],
    );
    return row;
  }

  /** Writes the registry fields only; the current-status columns keep their values (or defaults). */
  async upsertServer(q: QueryRunner, s: ServerWrite): Promise<ServerRow> {
    const [row] = await q.query(
      `INSERT INTO mcp_servers AS m (id, name, description, owner_id, environment_id, transport, endpoint_url, command,
         config, is_enabled, cpu_limit, memory_limit_mb, health_check_interval_seconds, health_check_timeout_seconds,
         stale_after_seconds, restart_policy, max_restarts)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13, 30), coalesce($14, 5), coalesce($15, 90),
               $16, coalesce($17, 3))
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
         owner_id = EXCLUDED.owner_id, environment_id = EXCLUDED.environment_id, transport = EXCLUDED.transport,
         endpoint_url = EXCLUDED.endpoint_url, command = EXCLUDED.command, config = EXCLUDED.config,
         is_enabled = EXCLUDED.is_enabled, cpu_limit = EXCLUDED.cpu_limit, memory_limit_mb = EXCLUDED.memory_limit_mb,
         health_check_interval_seconds = EXCLUDED.health_check_interval_seconds,
         health_check_timeout_seconds = EXCLUDED.health_check_timeout_seconds,
         stale_after_seconds = EXCLUDED.stale_after_seconds, restart_policy = EXCLUDED.restart_policy,
         max_restarts = EXCLUDED.max_restarts
       RETURNING ${SERVER_COLUMNS}, (xmax = 0) AS created`,
      [
        s.id,
        s.name,
        s.description,
        s.owner_id,
        s.environment_id,
        s.transport,
        s.endpoint_url,
        s.command,
        s.config,
        s.is_enabled,
        s.cpu_limit,
        s.memory_limit_mb,
        s.health_check_interval_seconds,
        s.health_check_timeout_seconds,
        s.stale_after_seconds,
        s.restart_policy,
        s.max_restarts,
      ],
    );
    return row;
  }
}
