import * as grpc from '@grpc/grpc-js';
import { retention } from '@mcp/proto';
import { badRequestDetail, retryInfoDetail, statusDetailsMetadata } from '@mcp/proto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badRequestViolations, createRetentionClient, DEFAULT_DEADLINE_MS, retryDelayMs, uuidv7, type ClientOptions } from '../src';

describe('status details (decoded without @mcp/runtime)', () => {
  it('reads what the services encode: RetryInfo and BadRequest', () => {
    const md = statusDetailsMetadata(grpc.status.RESOURCE_EXHAUSTED, 'slow down', [
      retryInfoDetail(1_234),
      badRequestDetail([{ field: 'events[3].latency_ms', description: 'must be >= 0' }]),
    ]);
    expect(retryDelayMs(md)).toBe(1_234);
    expect(badRequestViolations(md)).toEqual([{ field: 'events[3].latency_ms', description: 'must be >= 0' }]);
    expect(retryDelayMs(new grpc.Metadata())).toBeUndefined();
    const garbage = new grpc.Metadata();
    garbage.set('grpc-status-details-bin', Buffer.from([0xff, 0xff, 0xff]));
    expect(retryDelayMs(garbage)).toBeUndefined();
  });
});

describe('uuidv7', () => {
  it('is a version 7 UUID, monotonic within the process', () => {
    const ids = Array.from({ length: 10_000 }, () => uuidv7());
    expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('channel and call defaults', () => {
  let server: grpc.Server;
  let address: string;
  /** What the server saw of each call: its deadline, and when the call arrived. */
  const calls: Array<{ deadline: number; arrivedAt: number }> = [];

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(retention.RetentionServiceService, {
      listPolicies: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<retention.ListPoliciesResponse>) => {
        const deadline = call.getDeadline();
        calls.push({ deadline: deadline instanceof Date ? deadline.getTime() : deadline, arrivedAt: Date.now() });
        cb(null, { policies: [] });
      },
    } as unknown as retention.RetentionServiceServer);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => server?.forceShutdown());

  /** A client whose grpc-js channel is built by grpc-js from the options the client passes it, which are kept. */
  function clientRecordingChannelOptions(options: ClientOptions = {}) {
    const seen: { channelOptions?: grpc.ChannelOptions } = {};
    const client = createRetentionClient({
      address,
      apiKey: null,
      credentials: 'insecure',
      ...options,
      channelOptions: {
        channelFactoryOverride: (target: string, credentials: grpc.ChannelCredentials, channelOptions: grpc.ChannelOptions) => {
          seen.channelOptions = { ...channelOptions };
          return new grpc.Channel(target, credentials, channelOptions);
        },
      },
    });
    return { client, seen };
  }

  it('opens the channel with keepalive (30 s ping, 10 s ping timeout, also while idle), or the keepalive asked for', async () => {
    const byDefault = clientRecordingChannelOptions();
    await byDefault.client.listPolicies({}); // the channel is real: the call goes through it
    byDefault.client.close();
    expect(byDefault.seen.channelOptions).toMatchObject({
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
    });

    const tuned = clientRecordingChannelOptions({ keepalive: { timeMs: 5_000, timeoutMs: 2_000, permitWithoutCalls: false } });
    tuned.client.close();
    expect(tuned.seen.channelOptions).toMatchObject({
      'grpc.keepalive_time_ms': 5_000,
      'grpc.keepalive_timeout_ms': 2_000,
      'grpc.keepalive_permit_without_calls': 0,
    });
  });

  it('sends every unary call with a deadline: 10 s by default, the client\'s or the call\'s when given', async () => {
    expect(DEFAULT_DEADLINE_MS).toBe(10_000);
    const byDefault = createRetentionClient({ address, apiKey: null, credentials: 'insecure' });
    const configured = createRetentionClient({ address, apiKey: null, credentials: 'insecure', deadlineMs: 3_000 });
    calls.length = 0;
    await byDefault.listPolicies({});
    await configured.listPolicies({});
    await configured.listPolicies({}, { deadlineMs: 1_500 });
    byDefault.close();
    configured.close();
    // The deadline travels as a relative grpc-timeout: the server's copy lands within a few ms of the client's.
    const remaining = calls.map((c) => c.deadline - c.arrivedAt);
    expect(remaining).toHaveLength(3);
    for (const [i, expected] of [10_000, 3_000, 1_500].entries()) {
      expect(remaining[i]).toBeLessThanOrEqual(expected);
      expect(remaining[i]).toBeGreaterThan(expected - 500);
    }
  });
});

describe('TLS credentials', () => {
  let dir: string;
  let server: grpc.Server;
  let address: string;
  const file = (name: string) => path.join(dir, name);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-client-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
    for (const [name, cn, ext] of [
      ['server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      ['client', 'svc-agent-gateway', 'extendedKeyUsage=clientAuth'],
    ]) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
      fs.writeFileSync(file(`${name}.ext`), `${ext}\n`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    }
    server = new grpc.Server();
    server.addService(retention.RetentionServiceService, {
      listPolicies: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<retention.ListPoliciesResponse>) => {
        // The calling service is named by its certificate's CN.
        const peer = (call.getAuthContext() as { sslPeerCertificate?: { subject?: { CN?: string } } }).sslPeerCertificate;
        cb(null, { policies: [retention.Policy.fromPartial({ table: peer?.subject?.CN ?? 'anonymous' })] });
      },
    } as unknown as retention.RetentionServiceServer);
    const creds = grpc.ServerCredentials.createSsl(fs.readFileSync(file('ca.pem')), [{ cert_chain: fs.readFileSync(file('server.pem')), private_key: fs.readFileSync(file('server.key')) }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => {
    server?.forceShutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('mutual TLS from file paths, from buffers, and from MCP_TLS_* environment variables', async () => {
    const viaPaths = createRetentionClient({ address, apiKey: null, credentials: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') } });
    expect((await viaPaths.listPolicies({})).policies[0].table).toBe('svc-agent-gateway');
    viaPaths.close();

    const viaBuffers = createRetentionClient({
      address,
      apiKey: null,
      credentials: { ca: fs.readFileSync(file('ca.pem')), cert: fs.readFileSync(file('client.pem')), key: fs.readFileSync(file('client.key')) },
    });
    expect((await viaBuffers.listPolicies({})).policies[0].table).toBe('svc-agent-gateway');
    viaBuffers.close();

    const saved = { ...process.env };
    Object.assign(process.env, { MCP_TLS_CA_FILE: file('ca.pem'), MCP_TLS_CERT_FILE: file('client.pem'), MCP_TLS_KEY_FILE: file('client.key'), MCP_RETENTION_ADDRESS: address });
    try {
      const viaEnv = createRetentionClient({ apiKey: null });
      expect(viaEnv.address).toBe(address);
      expect((await viaEnv.listPolicies({})).policies[0].table).toBe('svc-agent-gateway');
      viaEnv.close();
    } finally {
      for (const k of ['MCP_TLS_CA_FILE', 'MCP_TLS_CERT_FILE', 'MCP_TLS_KEY_FILE', 'MCP_RETENTION_ADDRESS']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('refuses a server it cannot verify, and a certificate without its key', async () => {
    const untrusting = createRetentionClient({ address, apiKey: null, credentials: { cert: file('client.pem'), key: file('client.key') }, retry: { maxAttempts: 1 } });
    expect(((await untrusting.listPolicies({}).catch((e) => e)) as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    untrusting.close();
    expect(() => createRetentionClient({ address, credentials: { ca: file('ca.pem'), cert: file('client.pem') } })).toThrow(/cert and key/);
  });
});
