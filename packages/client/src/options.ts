import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { RetryPolicy } from './retry';

/** TLS towards the service: CA to trust, and a client certificate for mutual TLS. Paths or contents. */
export interface TlsOptions {
  /** CA bundle that signed the server's certificate; default: the system roots. */
  ca?: string | Buffer;
  /** Client certificate and key, for mutual TLS (the certificate's CN names the calling service account). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name to verify the server certificate against, when it differs from the address' host. */
  serverName?: string;
}

export interface KeepaliveOptions {
  /** Ping the server after this long without activity. Default 30 000 (the services' own keepalive). */
  timeMs?: number;
  /** Drop the connection when a ping is not answered within this. Default 10 000. */
  timeoutMs?: number;
  /** Ping even when no call is open (keeps an idle tail's connection checked). Default true. */
  permitWithoutCalls?: boolean;
}

export interface ClientOptions {
  /** host:port. Default: $MCP_<SERVICE>_ADDRESS (e.g. MCP_CONNECTION_LOG_ADDRESS), else 127.0.0.1:<the service's port>. */
  address?: string;
  /**
   * 'insecure' (plaintext), TLS options, or ready grpc-js credentials. Default:
   * TLS when $MCP_TLS_CA_FILE (and optionally $MCP_TLS_CERT_FILE / $MCP_TLS_KEY_FILE)
   * is set, else plaintext.
   */
  credentials?: 'insecure' | TlsOptions | grpc.ChannelCredentials;
  /** Sent as `authorization: Bearer <key>` on every call. Default: $MCP_API_KEY. `null`: send none (mTLS only). */
  apiKey?: string | null;
  /** Deadline of each attempt of a unary call, in ms. Default 10 000. Overridable per call. */
  deadlineMs?: number;
  /** Retry policy of unary calls (and the reconnect backoff of streams). */
  retry?: Partial<RetryPolicy>;
  keepalive?: KeepaliveOptions;
  /** grpc-js client interceptors (run for every attempt). */
  interceptors?: grpc.Interceptor[];
  /** Extra grpc-js channel options (merged last). */
  channelOptions?: grpc.ChannelOptions;
  /** Called before every retry or reconnect: for logs and metrics. */
  onRetry?: (info: RetryEvent) => void;
}

export interface RetryEvent {
  method: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  code: grpc.status;
  details: string;
  /** How long the client waits before the next attempt. */
  delayMs: number;
  /** The server's google.rpc.RetryInfo delay, when it sent one. */
  serverDelayMs?: number;
}

export const DEFAULT_DEADLINE_MS = 10_000;

function readMaybeFile(value: string | Buffer | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  if (Buffer.isBuffer(value)) return value;
  // PEM text passed inline, or a path.
  return value.includes('-----BEGIN') ? Buffer.from(value) : fs.readFileSync(value);
}

function tlsFromEnv(env: NodeJS.ProcessEnv): TlsOptions | undefined {
  if (!env.MCP_TLS_CA_FILE && !env.MCP_TLS_CERT_FILE) return undefined;
  return { ca: env.MCP_TLS_CA_FILE || undefined, cert: env.MCP_TLS_CERT_FILE || undefined, key: env.MCP_TLS_KEY_FILE || undefined };
}

export function channelCredentials(option: ClientOptions['credentials'], env: NodeJS.ProcessEnv = process.env): grpc.ChannelCredentials {
  if (option instanceof grpc.ChannelCredentials) return option;
  const tls = option === 'insecure' ? undefined : (option ?? tlsFromEnv(env));
  if (!tls) return grpc.credentials.createInsecure();
  const cert = readMaybeFile(tls.cert);
  const key = readMaybeFile(tls.key);
  if ((cert === undefined) !== (key === undefined)) throw new Error('TLS: cert and key go together (mutual TLS needs both)');
  return grpc.credentials.createSsl(readMaybeFile(tls.ca) ?? null, key ?? null, cert ?? null, {});
}

export function channelOptions(options: ClientOptions): grpc.ChannelOptions {
  const k = options.keepalive ?? {};
  const tls = options.credentials && typeof options.credentials === 'object' && !(options.credentials instanceof grpc.ChannelCredentials)
    ? options.credentials
    : undefined;
  return {
    'grpc.keepalive_time_ms': k.timeMs ?? 30_000,
    'grpc.keepalive_timeout_ms': k.timeoutMs ?? 10_000,
    'grpc.keepalive_permit_without_calls': (k.permitWithoutCalls ?? true) ? 1 : 0,
    ...(tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {}),
    ...options.channelOptions,
  };
}

/** The API key to send: the option, else $MCP_API_KEY; null/'' sends none. */
export function resolveApiKey(option: string | null | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (option === null) return undefined;
  return option || env.MCP_API_KEY || undefined;
}
