/**
 * The generic machinery behind every service client: one grpc-js channel, and
 * for each unary method of a ts-proto service definition a promise method that
 * takes a DeepPartial request (built with the generated `fromPartial`), sends
 * the API key, applies a deadline to each attempt, retries only where safe and
 * keeps the caller's OpenTelemetry context across retries. Adding a service is
 * one `defineService(...)` line (see clients.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { context, trace } from '@opentelemetry/api';
import {
  channelCredentials,
  channelOptions,
  DEFAULT_DEADLINE_MS,
  resolveApiKey,
  type ClientOptions,
  type RetryEvent,
} from './options';
import { DEFAULT_RETRY_POLICY, retryDecision, sleep, type RetryPolicy } from './retry';

type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;
/** Same shape as ts-proto's DeepPartial: every field optional, recursively. */
export type DeepPartial<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : T extends ReadonlyArray<infer U>
      ? ReadonlyArray<DeepPartial<U>>
      : T extends {}
        ? { [K in keyof T]?: DeepPartial<T[K]> }
        : Partial<T>;

/** One method of a ts-proto `outputServices=grpc-js` service definition. */
export interface MethodDefinitionLike {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(value: never): Buffer;
  responseDeserialize(value: Buffer): unknown;
}
export type ServiceDefinitionLike = { readonly [method: string]: MethodDefinitionLike };

export type UnaryMethodName<D> = {
  [K in keyof D]: D[K] extends { requestStream: false; responseStream: false } ? K : never;
}[keyof D] &
  string;
export type ServerStreamMethodName<D> = {
  [K in keyof D]: D[K] extends { requestStream: false; responseStream: true } ? K : never;
}[keyof D] &
  string;
export type RequestOf<D, K extends keyof D> = D[K] extends { requestSerialize: (value: infer R) => Buffer } ? R : never;
export type ResponseOf<D, K extends keyof D> = D[K] extends { responseDeserialize: (value: Buffer) => infer R } ? R : never;

export interface CallOptions {
  /** Deadline of each attempt, in ms (default: the client's deadlineMs). */
  deadlineMs?: number;
  /** Cancels the call, and any wait before a retry. */
  signal?: AbortSignal;
  /** Extra metadata, sent with the client's authorization. */
  metadata?: grpc.Metadata;
  /** false: exactly one attempt. */
  retry?: false | Partial<RetryPolicy>;
}

/** The promise methods: one per unary RPC, named as in the generated client. */
export type PromiseMethods<D> = {
  [K in UnaryMethodName<D>]: (request?: DeepPartial<RequestOf<D, K>>, options?: CallOptions) => Promise<ResponseOf<D, K>>;
};

interface MessageType<T> {
  fromPartial(object: unknown): T;
}

/** How one service is called: where it listens by default and which calls may be repeated. */
export interface ServiceSpec<D extends ServiceDefinitionLike> {
  /** e.g. 'connection-log': the default address comes from $MCP_CONNECTION_LOG_ADDRESS. */
  service: string;
  defaultPort: number;
  definition: D;
  /** The generated namespace (e.g. `connectionlog` of @mcp/proto); request types are found as <Method>Request (buf STANDARD naming). */
  messages: object;
  /**
   * Methods a DEADLINE_EXCEEDED may retry: reads, and writes that are
   * idempotent because their requests carry client-assigned ids (see `prepare`).
   */
  idempotent: readonly UnaryMethodName<D>[];
  /** Completes a request before its first attempt (assigns client ids and timestamps), so every attempt sends the same keys. */
  prepare?: { [K in UnaryMethodName<D>]?: (request: RequestOf<D, K>) => void };
}

export interface ServiceClientBase<D extends ServiceDefinitionLike> {
  readonly address: string;
  readonly spec: ServiceSpec<D>;
  /** The underlying grpc-js client (one channel). */
  readonly grpcClient: grpc.Client;
  /** Builds the complete request message a method sends, from a partial one (ids assigned). */
  request<K extends UnaryMethodName<D> | ServerStreamMethodName<D>>(method: K, partial?: DeepPartial<RequestOf<D, K>>): RequestOf<D, K>;
  /** Calls a unary method by name (what the named promise methods do). */
  unary<K extends UnaryMethodName<D>>(method: K, request?: DeepPartial<RequestOf<D, K>>, options?: CallOptions): Promise<ResponseOf<D, K>>;
  /** Calls a unary method with a complete request message, as is: no fromPartial, no `prepare` (the caller assigned the keys). */
  send<K extends UnaryMethodName<D>>(method: K, request: RequestOf<D, K>, options?: CallOptions): Promise<ResponseOf<D, K>>;
  /** Opens one server-streaming call, in the caller's trace context, with the client's metadata; no deadline. */
  openStream<K extends ServerStreamMethodName<D>>(
    method: K,
    request: RequestOf<D, K>,
    options?: { metadata?: grpc.Metadata },
  ): grpc.ClientReadableStream<ResponseOf<D, K>>;
  /** The retry policy in effect (for streams' reconnect backoff). */
  readonly retryPolicy: RetryPolicy;
  readonly onRetry?: (info: RetryEvent) => void;
  close(): void;
}

export type ServiceClient<D extends ServiceDefinitionLike> = ServiceClientBase<D> & PromiseMethods<D>;

function pascal(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

function envAddress(service: string, port: number, env: NodeJS.ProcessEnv): string {
  const name = `MCP_${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_ADDRESS`;
  return env[name] || `127.0.0.1:${port}`;
}

export function createServiceClient<D extends ServiceDefinitionLike>(spec: ServiceSpec<D>, options: ClientOptions = {}): ServiceClient<D> {
  const env = process.env;
  const address = options.address ?? envAddress(spec.service, spec.defaultPort, env);
  const grpcClient = new grpc.Client(address, channelCredentials(options.credentials, env), {
    ...channelOptions(options),
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  const apiKey = resolveApiKey(options.apiKey, env);
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const retryPolicy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const idempotent = new Set<string>(spec.idempotent);
  const prepare = (spec.prepare ?? {}) as Record<string, ((request: unknown) => void) | undefined>;
  const definition = spec.definition as ServiceDefinitionLike;

  const requestTypes = new Map<string, MessageType<unknown>>();
  for (const [method, def] of Object.entries(definition)) {
    if (def.requestStream) continue;
    const type = (spec.messages as Record<string, unknown>)[`${pascal(method)}Request`] as MessageType<unknown> | undefined;
    if (typeof type?.fromPartial !== 'function') throw new Error(`${spec.service}: no ${pascal(method)}Request message for ${def.path}`);
    requestTypes.set(method, type);
  }

  const metadataFor = (extra?: grpc.Metadata): grpc.Metadata => {
    const m = extra ? extra.clone() : new grpc.Metadata();
    if (apiKey && !m.get('authorization').length) m.set('authorization', `Bearer ${apiKey}`);
    return m;
  };

  const buildRequest = (method: string, partial: unknown): unknown => {
    const type = requestTypes.get(method);
    if (!type) throw new Error(`${spec.service}: ${method} is not a method with a single request`);
    const request = type.fromPartial(partial ?? {});
    prepare[method]?.(request);
    return request;
  };

  const attempt = (def: MethodDefinitionLike, request: unknown, options: CallOptions): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const signal = options.signal;
      let onAbort: (() => void) | undefined;
      const call = grpcClient.makeUnaryRequest(
        def.path,
        def.requestSerialize as (value: unknown) => Buffer,
        def.responseDeserialize,
        request,
        metadataFor(options.metadata),
        { deadline: Date.now() + (options.deadlineMs ?? deadlineMs) },
        (err, res) => {
          if (onAbort) signal?.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve(res);
        },
      );
      if (signal) {
        onAbort = () => call.cancel();
        if (signal.aborted) call.cancel();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });

  const unary = async (method: string, partial: unknown, callOptions: CallOptions = {}): Promise<unknown> =>
    send(method, buildRequest(method, partial), callOptions);

  const send = async (method: string, request: unknown, callOptions: CallOptions = {}): Promise<unknown> => {
    const def = definition[method];
    if (!def || def.requestStream || def.responseStream) throw new Error(`${spec.service}: ${method} is not a unary method`);
    const policy = callOptions.retry === false ? { ...retryPolicy, maxAttempts: 1 } : { ...retryPolicy, ...callOptions.retry };
    // Every attempt, and the wait before it, runs in the caller's context:
    // the instrumentation's client span of each attempt is a child of the caller's span.
    const callerContext = context.active();
    for (let n = 1; ; n++) {
      try {
        return await context.with(callerContext, () => attempt(def, request, callOptions));
      } catch (err) {
        if (callOptions.signal?.aborted) throw err;
        const decision = n < policy.maxAttempts ? retryDecision(err, idempotent.has(method), policy, n - 1) : { retry: false as const };
        if (!decision.retry) throw err;
        const e = err as grpc.ServiceError;
        const event: RetryEvent = {
          method: def.path,
          attempt: n,
          code: e.code,
          details: e.details,
          delayMs: decision.delayMs,
          serverDelayMs: decision.serverDelayMs,
        };
        trace.getSpan(callerContext)?.addEvent('mcp.client.retry', {
          'rpc.method': def.path,
          'rpc.grpc.status_code': e.code,
          'mcp.retry.attempt': n,
          'mcp.retry.delay_ms': Math.round(decision.delayMs),
        });
        options.onRetry?.(event);
        await context.with(callerContext, () => sleep(decision.delayMs, callOptions.signal));
      }
    }
  };

  const base: ServiceClientBase<D> = {
    address,
    spec,
    grpcClient,
    retryPolicy,
    onRetry: options.onRetry,
    request: (method, partial) => buildRequest(method, partial) as never,
    unary: (method, request, callOptions) => unary(method, request, callOptions) as never,
    send: (method, request, callOptions) => send(method, request, callOptions) as never,
    openStream: (method, request, streamOptions = {}) => {
      const def = definition[method];
      if (!def || def.requestStream || !def.responseStream) throw new Error(`${spec.service}: ${method} is not a server-streaming method`);
      return grpcClient.makeServerStreamRequest(
        def.path,
        def.requestSerialize as (value: unknown) => Buffer,
        def.responseDeserialize,
        request,
        metadataFor(streamOptions.metadata),
        {},
      ) as grpc.ClientReadableStream<never>;
    },
    close: () => grpcClient.close(),
  };
  const methods: Record<string, unknown> = {};
  for (const [method, def] of Object.entries(definition)) {
    if (!def.requestStream && !def.responseStream) {
      methods[method] = (request?: unknown, callOptions?: CallOptions) => unary(method, request, callOptions);
    }
  }
  return Object.assign(base, methods) as ServiceClient<D>;
}
