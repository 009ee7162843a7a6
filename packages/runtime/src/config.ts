import * as fs from 'node:fs';
import * as path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import schema from './config/mcp.schema.json';
import { compilePattern, type RedactionPolicy } from './redaction';

export interface GlobalSecurityPolicy {
  require_authentication: boolean;
  require_tls: boolean;
  min_tls_version: '1.2' | '1.3';
  require_mfa: boolean;
  session_timeout_minutes: number;
  enable_audit_logging: boolean;
  enable_intrusion_detection: boolean;
}

export interface NetworkSecurity {
  allowed_ip_ranges: string[];
  rate_limiting: { requests_per_minute: number; block_on_exceed: boolean };
}

export interface AuthenticationSettings {
  max_failed_attempts: number;
  failure_window_seconds: number;
  lockout_seconds: number;
  identity_cache_ttl_ms: number;
}

export interface TlsSettings {
  cert_file?: string;
  key_file?: string;
  client_ca_file?: string;
  require_client_certificate: boolean;
}

export interface ServerSettings {
  access_restrictions: {
    allowed_paths: string[];
    denied_paths: string[];
    allowed_operations: string[];
    denied_operations: string[];
    allowed_databases: string[];
  };
  resource_limits: { cpu_limit: number; memory_limit_mb: number; timeout_seconds: number };
  audit: { log_level: 'debug' | 'info' | 'warn' | 'error'; log_sensitive_data: boolean };
  health: {
    check_interval_seconds: number;
    timeout_seconds: number;
    restart_policy: 'always' | 'on-failure' | 'never';
    max_restarts: number;
    stale_after_seconds: number;
  };
}

export interface GrpcSettings {
  max_receive_message_bytes: number;
  max_send_message_bytes: number;
  keepalive_time_ms: number;
  keepalive_timeout_ms: number;
  shutdown_grace_ms: number;
  health_probe_interval_ms: number;
}

/** The sections of config/mcp.json, keys as in the file (see config/mcp.schema.json). */
export interface PlatformFileConfig {
  security: {
    global_policy: GlobalSecurityPolicy;
    network_security: NetworkSecurity;
    authentication: AuthenticationSettings;
    tls: TlsSettings;
  };
  /** Keyed by MCP server name. */
  servers: Record<string, ServerSettings>;
  audit: { redaction: Required<RedactionPolicy> };
  grpc: GrpcSettings;
}

/** The file's settings plus those that come only from the environment. */
export interface PlatformConfig extends PlatformFileConfig {
  /** The file read, or "built-in defaults". */
  source: string;
  /** DATABASE_URL; services that need a database fail at start without it. */
  databaseUrl: string | undefined;
  /** GRPC_HOST, default 0.0.0.0. */
  grpcHost: string;
  /** GRPC_PORT, else the caller's default port. */
  grpcPort: number;
  /** LOG_LEVEL, default "info". */
  logLevel: string;
}

export interface LoadConfigOptions {
  /** Default: $MCP_CONFIG, else <repo>/config/mcp.json if present, else built-in defaults. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** The service's port when GRPC_PORT is unset; default 50051. */
  defaultPort?: number;
}

/** The configuration is unusable; the message names the source, each bad field and why. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** packages/runtime/{src,dist}/ -> the repository root. */
const REPO_CONFIG_FILE = path.resolve(__dirname, '..', '..', '..', 'config', 'mcp.json');
const BUILT_IN_DEFAULTS = 'built-in defaults';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

// useDefaults fills every omitted setting from the schema's `default`s: the schema is the single source of defaults.
const validateFile = new Ajv({ allErrors: true, useDefaults: true }).compile<PlatformFileConfig>(schema);

function describeSchemaError(error: ErrorObject): string {
  const at = error.instancePath || '/';
  switch (error.keyword) {
    case 'additionalProperties':
      return `${error.instancePath}/${String(error.params.additionalProperty)} is not a known setting`;
    case 'enum':
      const allowed = (error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v));
      return `${at} must be one of ${allowed.join(',')}`;
    case 'propertyNames':
      return `${error.instancePath}/${String(error.params.propertyName)} is not a valid name`;
    default:
      return `${at} ${error.message ?? 'is invalid'}`;
  }
}

function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(displayPath(file), [`cannot read: ${(err as Error).message}`]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(displayPath(file), [`not valid JSON: ${(err as Error).message}`]);
  }
}

function validatedFileConfig(raw: unknown, source: string): PlatformFileConfig {
  if (!validateFile(raw)) {
    // Ajv reports a bad property name twice (the name, and the pattern it failed); the name says it all.
    const errors = (validateFile.errors ?? []).filter((e) => !e.propertyName);
    throw new ConfigError(source, errors.map(describeSchemaError));
  }
  const problems = raw.audit.redaction.patterns.flatMap((pattern, i) => {
    try {
      compilePattern(pattern);
      return [];
    } catch (err) {
      return [`/audit/redaction/patterns/${i} is not a valid regular expression: ${(err as Error).message}`];
    }
  });
  if (problems.length > 0) throw new ConfigError(source, problems);
  const { security, servers, audit, grpc } = raw;
  return { security, servers, audit, grpc };
}

function integerFromEnv(env: NodeJS.ProcessEnv, name: string, min: number, max: number, problems: string[]) {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
    return undefined;
  }
  return value;
}

/**
 * Loads, validates and completes the platform configuration, then applies
 * the environment: DATABASE_URL, GRPC_HOST, GRPC_PORT, LOG_LEVEL,
 * SHUTDOWN_GRACE_MS. Throws ConfigError listing every problem at once.
 */
export function loadConfig(options: LoadConfigOptions = {}): PlatformConfig {
  const env = options.env ?? process.env;
  const file =
    options.path ?? (env.MCP_CONFIG || (fs.existsSync(REPO_CONFIG_FILE) ? REPO_CONFIG_FILE : undefined));
  const source = file === undefined ? BUILT_IN_DEFAULTS : displayPath(file);
  const fileConfig = validatedFileConfig(file === undefined ? {} : readConfigFile(file), source);

  const problems: string[] = [];
  const grpcPort = integerFromEnv(env, 'GRPC_PORT', 0, 65535, problems);
  const shutdownGraceMs = integerFromEnv(env, 'SHUTDOWN_GRACE_MS', 0, 3_600_000, problems);
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }
  if (problems.length > 0) throw new ConfigError('environment', problems);

  if (shutdownGraceMs !== undefined) fileConfig.grpc.shutdown_grace_ms = shutdownGraceMs;
  return {
    ...fileConfig,
    source,
    databaseUrl: env.DATABASE_URL || undefined,
    grpcHost: env.GRPC_HOST || '0.0.0.0',
    grpcPort: grpcPort ?? options.defaultPort ?? 50051,
    logLevel,
  };
}
