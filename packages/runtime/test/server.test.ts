import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { connectionlog, SERVICE_PROTO_FILES } from '@mcp/proto';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallHandlers } from '../src/calls';
import { loadConfig, type PlatformConfig } from '../src/config';
import { LIVENESS_HEALTH_NAME, startServer, type RunningServer, type StartServerOptions } from '../src/server';
import { captureLogs, eventually, sleep , admitAll } from './support';

const CONNECTION_LOG = 'mcp.connectionlog.v1.ConnectionLogService';

function configWith(grpcSettings: Record<string, number>): PlatformConfig {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-runtime-server-'));
  const file = path.join(dir, 'mcp.json');
  fs.writeFileSync(file, JSON.stringify({ grpc: grpcSettings }));
  return loadConfig({ path: file, env: {} });
}

type UpsertOutcome = { err: grpc.ServiceError | null; res?: connectionlog.UpsertAgentResponse };

let running: RunningServer | undefined;
const clients: grpc.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await running?.shutdown('test over');
  running = undefined;
});

async function start(overrides: Partial<StartServerOptions> & { upsertDelayMs?: number } = {}) {
  const { logger, lines } = captureLogs();
  const handlers = createCallHandlers({ logger, guard: admitAll });
  const { upsertDelayMs = 0, ...options } = overrides;
  running = await startServer({
    serviceName: 'connection-log',
    services: [
      {
        fullName: CONNECTION_LOG,
        definition: connectionlog.ConnectionLogServiceService,
        implementation: {
          upsertAgent: handlers.unary('status:read', async (req: connectionlog.UpsertAgentRequest) => {
            await sleep(upsertDelayMs);
            return { agent: req.agent, created: true };
          }),
        },
        protoFile: SERVICE_PROTO_FILES[CONNECTION_LOG],
      },
    ],
    config: configWith({ health_probe_interval_ms: 100, shutdown_grace_ms: 3000 }),
    logger,
    host: '127.0.0.1',
    port: 0,
    readiness: async () => true,
    ...options,
  });
  const client = new connectionlog.ConnectionLogServiceClient(running.address, grpc.credentials.createInsecure());
  clients.push(client);
  const upsert = (name: string) =>
    new Promise<UpsertOutcome>((resolve) =>
      client.upsertAgent(
        { agent: { id: '', userId: 'u-1', name, isActive: true } },
        (err, res) => resolve({ err, res }),
      ),
    );
  return { running, lines, upsert };
}

function healthClient(address: string) {
  const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'grpc.health.v1.Health');
  const client = new Health(address, grpc.credentials.createInsecure());
  clients.push(client);
  return (service: string) =>
    new Promise<string>((resolve, reject) =>
      client.check({ service }, (err: grpc.ServiceError | null, res: { status: string }) =>
        err ? reject(err) : resolve(res.status),
      ),
    );
}

describe('startServer', () => {
  it('serves the registered service and logs where it listens', async () => {
    const { running, lines, upsert } = await start();
    expect(running.port).toBeGreaterThan(0);
    expect(running.address).toBe(`127.0.0.1:${running.port}`);
    const { err, res } = await upsert('agent-a');
    expect(err).toBeNull();
    expect(res).toMatchObject({ created: true, agent: { name: 'agent-a', userId: 'u-1' } });
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'listening', grpc_service: CONNECTION_LOG, address: running.address, level: 'info' }),
    );
    // No TLS credentials were given: said loudly.
    expect(lines.some((l) => l.level === 'warn' && /PLAINTEXT/.test(String(l.msg)))).toBe(true);
  });

  it('health follows readiness: NOT_SERVING, then SERVING, then NOT_SERVING (also when it throws)', async () => {
    let ready: boolean | 'throw' = false;
    const { running, lines } = await start({
      readiness: async () => {
        if (ready === 'throw') throw new Error('database unreachable');
        return ready;
      },
    });
    const check = healthClient(running.address);
    expect(await check('')).toBe('NOT_SERVING');
    expect(await check(CONNECTION_LOG)).toBe('NOT_SERVING');
    expect(await check(LIVENESS_HEALTH_NAME)).toBe('SERVING'); // alive, if not ready: no restart for a database outage

    ready = true;
    expect(await eventually(async () => (await check('')) === 'SERVING')).toBe(true);
    expect(await check(CONNECTION_LOG)).toBe('SERVING');
    expect(running.isServing()).toBe(true);

    ready = false;
    expect(await eventually(async () => (await check(CONNECTION_LOG)) === 'NOT_SERVING')).toBe(true);
    ready = true;
    expect(await eventually(async () => (await check('')) === 'SERVING')).toBe(true);
    ready = 'throw';
    expect(await eventually(async () => (await check('')) === 'NOT_SERVING')).toBe(true);
    await sleep(400); // several more failing probes
    expect(await check(LIVENESS_HEALTH_NAME)).toBe('SERVING');

    const changes = lines.filter((l) => l.msg === 'health status changed').map((l) => l.status);
    expect(changes).toEqual(['SERVING', 'NOT_SERVING', 'SERVING', 'NOT_SERVING']);
    const failures = lines.filter((l) => l.msg === 'not ready' && l.err !== undefined);
    expect(failures).toHaveLength(1);
    expect(failures[0].err).toMatchObject({ message: 'database unreachable' });
  });

  it('setServing(false) overrides readiness until setServing(true)', async () => {
    const { running } = await start();
    const check = healthClient(running.address);
    expect(await eventually(async () => (await check('')) === 'SERVING')).toBe(true);
    running.setServing(false);
    expect(await check('')).toBe('NOT_SERVING');
    await sleep(300); // probes keep succeeding
    expect(await check('')).toBe('NOT_SERVING');
    running.setServing(true);
    expect(await check('')).toBe('SERVING');
  });

  it('answers reflection: list_services names the service and health', async () => {
    const { running } = await start();
    const reflectionProtoDir = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
    const definition = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
      keepCase: true,
      includeDirs: [reflectionProtoDir],
    });
    const Reflection = grpc.makeGenericClientConstructor(
      definition['grpc.reflection.v1.ServerReflection'] as grpc.ServiceDefinition,
      'grpc.reflection.v1.ServerReflection',
    );
    const client = new Reflection(running.address, grpc.credentials.createInsecure());
    clients.push(client);

    const call = client.ServerReflectionInfo() as grpc.ClientDuplexStream<object, Record<string, unknown>>;
    const ask = (request: object) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        call.once('data', resolve);
        call.once('error', reject);
        call.write(request);
      });
    const listed = (await ask({ list_services: '' })) as { list_services_response: { service: Array<{ name: string }> } };
    const names = listed.list_services_response.service.map((s) => s.name).sort();
    expect(names).toEqual(['grpc.health.v1.Health', CONNECTION_LOG]);

    // The descriptors resolve, imports (google/protobuf/timestamp.proto) included.
    const described = (await ask({ file_containing_symbol: CONNECTION_LOG })) as {
      file_descriptor_response?: { file_descriptor_proto: Buffer[] };
    };
    expect(described.file_descriptor_response?.file_descriptor_proto.length).toBeGreaterThan(0);
    call.end();
  });

  it('shutdown drains in-flight calls, refuses new ones, then runs the hooks in order', async () => {
    const order: string[] = [];
    const { running, upsert } = await start({
      upsertDelayMs: 500,
      onShutdown: [
        async () => {
          order.push('first hook');
          throw new Error('hook failure must not stop the next hook');
        },
        async () => {
          order.push('second hook');
        },
      ],
    });
    expect((await upsert('warm-up')).err).toBeNull(); // connection established
    const inFlight = [upsert('a'), upsert('b'), upsert('c')].map((p) => p.then((o) => (order.push('call done'), o)));
    await sleep(100);
    const stopped = running.shutdown('SIGTERM');
    const sameStop = running.shutdown('again');
    await sleep(50);
    const refused = await upsert('too late');
    expect(refused.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(running.isServing()).toBe(false);

    const outcomes = await Promise.all(inFlight);
    for (const o of outcomes) expect(o.err).toBeNull();
    expect(outcomes.map((o) => o.res?.agent?.name)).toEqual(['a', 'b', 'c']);
    await stopped;
    await sameStop;
    expect(order).toEqual(['call done', 'call done', 'call done', 'first hook', 'second hook']);
  });

  it('cancels calls still running after shutdown_grace_ms', async () => {
    const { running, upsert } = await start({ upsertDelayMs: 5_000, config: configWith({ shutdown_grace_ms: 200 }) });
    const slow = upsert('slow');
    await sleep(100);
    const startedAt = Date.now();
    await running.shutdown('test');
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    const { err } = await slow;
    expect(err?.code).toBe(grpc.status.CANCELLED);
  });
});
