/**
 * What the services promise about each method, as far as hostile input is
 * concerned: which tables a write lands in, and which request fields a
 * write ignores (read-only ones, documented as such in the .proto files).
 */
import * as grpc from '@grpc/grpc-js';

/** Where each write method stores what it is given (checked by finding the stored text there). */
export const WRITE_TABLES: Record<string, string[]> = {
  RecordEvents: ['agent_mcp_connection_logs'],
  StreamEvents: ['agent_mcp_connection_logs'],
  UpsertAgent: ['agents'],
  UpsertConnection: ['agent_mcp_connections'],
  UpsertEnvironment: ['environments'],
  UpsertServer: ['mcp_servers'],
  ReportStatus: ['mcp_server_status_logs'],
  ReportStatusBatch: ['mcp_server_status_logs'],
  Heartbeat: ['mcp_servers', 'mcp_server_status_logs'],
  HeartbeatBatch: ['mcp_servers', 'mcp_server_status_logs'],
  RecordAuditEvents: ['audit_logs'],
  RecordSecurityEvents: ['security_events'],
  AssignIncident: ['security_events'],
  AddIncidentNote: ['security_events'],
  ResolveIncident: ['security_events'],
  CreateCheckpoint: ['audit_checkpoints'],
  EraseSubject: ['audit_logs'],
  RunRetention: ['system_logs'],
  UpsertPolicy: ['retention_policies'],
  PlaceLegalHold: ['legal_holds'],
  ReleaseLegalHold: ['legal_holds'],
};

/** Every table a hostile call could write to; their row counts are compared around each scenario. */
export const DATA_TABLES = [...new Set(Object.values(WRITE_TABLES).flat())];

/**
 * Fields a write accepts and ignores: read-only ones, `server_name` (used
 * only when the server is not registered yet, and it is), and heartbeat data
 * (stored only with a transition, and the fixture's heartbeat changes nothing).
 */
export const IGNORED_ON_WRITE = new Set([
  'RecordEvents events[0].agent_id',
  'StreamEvents events[0].agent_id',
  'UpsertConnection server_name',
  'UpsertServer server.current_status',
  'Heartbeat heartbeat_data',
  'HeartbeatBatch heartbeats[0].heartbeat_data',
  'RecordAuditEvents events[0].prev_hash',
  'RecordAuditEvents events[0].row_hash',
  'RecordSecurityEvents events[0].assigned_to',
  'RecordSecurityEvents events[0].resolved_by',
  'RecordSecurityEvents events[0].resolution_notes',
  'UpsertPolicy policy.updated_by',
]);

/** Answers that say what happened to this request; anything else (UNKNOWN, INTERNAL, UNAVAILABLE, …) is a server fault. */
export const PRECISE_CODES = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.ALREADY_EXISTS,
  grpc.status.OUT_OF_RANGE,
]);
