/**
 * Integration-test harness shared by every service: a fresh migrated database
 * (from @mcp/db's vitest globalSetup), the real service on 127.0.0.1:<free port>
 * started through startService (so through the real guard), a generated client,
 * and API keys for any role. Import from '@mcp/runtime/dist/testing'.
 */
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { Client } from 'pg';
import { provisionPrincipal } from './auth/admin';
import { waitForServing } from './health-client';
import { startService, type RunningService, type StartServiceOptions } from './run-service';

export interface ServiceHarness<C extends grpc.Client> {
  db: TestDatabase;
  /** A superuser connection to the test database, for fixtures and assertions. */
  pg: Client;
  service: RunningService;
  client: C;
  address: string;
  /** Key of a principal with the admin role. */
  adminToken: string;
  /** Metadata carrying `authorization: Bearer <token>` (default: the admin's key). */
  metadata(token?: string): grpc.Metadata;
  /** A new user with these roles, and its key. */
  principal(username: string, roles: string[]): Promise<{ userId: string; token: string }>;
  /** Calls a unary method with a bearer key and a deadline; `request` must be a complete message (use fromPartial). */
  unary<Res>(method: string, request: unknown, options?: Partial<grpc.CallOptions> & { token?: string }): Promise<Res>;
  close(): Promise<void>;
}

export interface ServiceHarnessOptions<C extends grpc.Client>
  extends Pick<StartServiceOptions, 'serviceName' | 'createDataSource' | 'createServices'> {
  clientConstructor: new (address: string, credentials: grpc.ChannelCredentials) => C;
  /** Extra environment for the service (on top of DATABASE_URL, GRPC_*, LOG_LEVEL). */
  env?: Record<string, string>;
  /** For a service configured with TLS: how the harness's client connects. Default plaintext. */
  channelCredentials?: grpc.ChannelCredentials;
}

/** A real service in this process, through startService, on 127.0.0.1 and a free port, once it is SERVING. */
export async function startInProcessService(
  options: Pick<StartServiceOptions, 'serviceName' | 'createDataSource' | 'createServices'> & {
    databaseUrl: string;
    /** Extra environment (on top of DATABASE_URL, GRPC_*, LOG_LEVEL). */
    env?: Record<string, string>;
    /** How the health check connects to a service configured with TLS. Default plaintext. */
    channelCredentials?: grpc.ChannelCredentials;
  },
): Promise<{ service: RunningService; address: string }> {
  const service = await startService({
    serviceName: options.serviceName,
    defaultPort: 0,
    env: {
      DATABASE_URL: options.databaseUrl,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      ...options.env,
    },
    createDataSource: options.createDataSource,
    createServices: options.createServices,
  });
  const address = `127.0.0.1:${service.server.port}`;
  await waitForServing(address, undefined, '', options.channelCredentials);
  return { service, address };
}

export async function startServiceHarness<C extends grpc.Client>(options: ServiceHarnessOptions<C>): Promise<ServiceHarness<C>> {
  const db = await freshDatabase();
  const channelCredentials = options.channelCredentials ?? grpc.credentials.createInsecure();
  const { service, address } = await startInProcessService({ ...options, databaseUrl: db.url, channelCredentials });
  const client = new options.clientConstructor(address, channelCredentials);
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  const admin = await provisionPrincipal(pg, { username: 'test-admin', roles: ['admin'] });
  const metadata = (token = admin.token): grpc.Metadata => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${token}`);
    return m;
  };
  return {
    db,
    pg,
    service,
    client,
    address,
    adminToken: admin.token,
    metadata,
    principal: async (username, roles) => {
      const p = await provisionPrincipal(pg, { username, roles });
      return { userId: p.userId, token: p.token };
    },
    unary: (method, request, { token, ...callOptions } = {}) =>
      new Promise((resolve, reject) => {
        const fn = (client as unknown as Record<string, Function>)[method];
        if (typeof fn !== 'function') return reject(new Error(`no method ${method} on the client`));
        const deadline = callOptions.deadline ?? Date.now() + 20_000;
        fn.call(client, request, metadata(token), { ...callOptions, deadline }, (err: unknown, res: unknown) =>
          err ? reject(err) : resolve(res as never),
        );
      }),
    close: async () => {
      client.close();
      await pg.end();
      await service.shutdown('test done');
      await db.drop();
    },
  };
}

/** The gRPC error a promise rejected with; fails the test if it resolved. */
export async function expectGrpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'code' in err) return err as grpc.ServiceError;
    throw new Error(`expected a gRPC error, got ${String(err)}`);
  }
  throw new Error('expected the call to fail');
}

/** Metric points collected on demand from the process's meter provider. */
export class TestMetricReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}

  /** The data points of a counter, as `attributes -> value`. */
  async counter(name: string): Promise<Array<{ attributes: Record<string, unknown>; value: number }>> {
    const { resourceMetrics } = await this.collect();
    const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
    return (metric?.dataPoints ?? []).map((p) => ({ attributes: p.attributes, value: p.value as number }));
  }
}

/**
 * Installs a meter provider that tests read with `counter(name)`. Call it
 * before the service exists: platformMetrics creates its instruments on first use.
 */
export function captureMetrics(): TestMetricReader {
  const reader = new TestMetricReader();
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  return reader;
}

/** A span as an OTLP/HTTP JSON export carries it, with the exporting service's name. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** 1 internal, 2 server, 3 client. */
  kind: number;
  attributes?: Array<{ key: string; value: { intValue?: string | number; stringValue?: string } }>;
  links?: Array<{ traceId: string; spanId: string }>;
  service: string;
}

/** An OTLP/HTTP (JSON) receiver for tests that run services with the telemetry preload. */
export async function startOtlpReceiver(): Promise<{ spans: ReceivedSpan[]; metricNames: Set<string>; endpoint: string; close(): void }> {
  const spans: ReceivedSpan[] = [];
  const metricNames = new Set<string>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const payload = JSON.parse(body || '{}');
      for (const rs of payload.resourceSpans ?? []) {
        const service = rs.resource.attributes.find((a: { key: string }) => a.key === 'service.name')?.value.stringValue;
        for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ ...span, service });
      }
      for (const rm of payload.resourceMetrics ?? []) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) metricNames.add(m.name);
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    spans,
    metricNames,
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.close(),
  };
}
